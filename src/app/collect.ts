/**
 * Bringing a run's results home: every state file in ONE round trip, each
 * validated, the job facts from ONE scheduler query, merged into one
 * CompletedState with the in-process core's `step_states` keys, written to
 * the run's local `result.json`.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { markTiming } from "../core/timing.js";
import { arrayTaskIds, mapSource, mergeFromSource, parseStateText, SpoolSource } from "../collect/index.js";
import { stateFileNameOf } from "../collect/state-source.js";
import { keyOfStateFile } from "../collect/read-states.js";
import { badPackName, PACK_FILE_MAX_BYTES, PackIndex, packOfFileName, parsePackFile } from "../collect/pack-file.js";
import type { PackContents } from "../collect/pack-file.js";
import type { StateProblem, StateSource } from "../collect/index.js";
import { itemsInlineMax } from "../core/item-lines.js";
import type { CompletedState } from "../core/completed-state.js";
import type { CompiledPlan } from "../plan/plan.js";
import { STATE_FILE_MAX_BYTES } from "../plan/state-file.js";
import type { StateFile } from "../plan/state-file.js";
import { jobFactsOf, mapJobStatuses, RunStateError } from "../runs/index.js";
import type { JobStatus, RunRecord } from "../runs/index.js";
import type { UnknownJobRule } from "../runs/job-status.js";
import type { SlurmScheduler } from "../slurm/index.js";
import type { Transport } from "../transport/index.js";
import type { RunContext } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { executorOf } from "./slurm-executor.js";
import { preview } from "../core/preview.js";
import { parseRetryRecords, RETRY_RECORD_MAX_BYTES } from "../plan/retry.js";
import type { RetryRecords } from "../plan/retry.js";
import { attemptsAnnotator } from "../runs/retries.js";

/** Per state file, as the collector reads them (the readers' contract); a pack file's line has the same cap. */
export const STATE_FILE_CAP = STATE_FILE_MAX_BYTES;
/** Per file of the transfer: a pack file holds a packed task's lines (the per-key files are checked against STATE_FILE_CAP). */
export const TRANSFER_FILE_CAP = PACK_FILE_MAX_BYTES;
/** All state files of one run together; beyond it files come back as problems. */
export const STATES_TOTAL_CAP = 512 * 1024 * 1024;
/** Per-key state files (`<key>.json`) and pack files (`<pack>.items-<first>-<last>.jsonl`) in one glob. */
const STATES_PATTERN = "states/*.json*";

export interface RemoteStates {
  states: Map<string, StateFile>;
  /** Files that could not be used; `file` is the name inside states/ (or a quoted unsafe name that matches no step). */
  problems: StateProblem[];
  /** How many files the cluster sent back. */
  files: number;
  /** The retry controllers' records, when the plan has retries. */
  retries?: RetryRecords;
  /**
   * Read as the merge asks, one file at a time (a local run's states directory): then `states` is empty
   * and `problems` and `files` are known once a merge has read the source.
   */
  source?: StateSource;
}

/** A name the tar stream gave us, reduced to `<name>` when it is exactly `states/<name>` with no further `/`; else null. */
export const stateFileName = stateFileNameOf;

/**
 * Validates what getFiles returned: each file must be `states/<key>.json` or a pack file,
 * within the caps, valid JSON of the state file schema, with the key its
 * name says. Every bad file becomes a problem for its step; none throws.
 * Names are only ever compared and printed (quoted), never used as paths.
 */
export function parseFetchedStates(files: ReadonlyMap<string, Buffer | { error: string }>): RemoteStates {
  const taker = fetchedStates();
  for (const [path, content] of files) taker.take(path, content);
  return taker.done();
}

/** Every retry record (`retries/*.json`) of the run directory in ONE round trip, validated. */
export async function readRetryRecords(transport: Transport, remoteDir: string): Promise<RetryRecords> {
  const files = await transport.getFiles(remoteDir, "retries/*.json", { maxFileBytes: RETRY_RECORD_MAX_BYTES, maxTotalBytes: 4 * RETRY_RECORD_MAX_BYTES, timeoutMs: 60_000 });
  const texts = new Map<string, string>();
  for (const [path, content] of files) {
    if (!path.startsWith("retries/") || path.slice("retries/".length).includes("/")) continue;
    if (Buffer.isBuffer(content)) texts.set(path.slice("retries/".length), content.toString("utf8"));
  }
  return parseRetryRecords(texts);
}

/**
 * parseFetchedStates one file at a time, as a transfer streams them; a file seen twice (a retried transfer)
 * counts once. Pack files are parsed as they come and their lines applied at the end, in range order, over
 * the per-key files (a key's pack line wins), whatever order the transfer gave them in.
 */
function fetchedStates(): { take: (path: string, content: Buffer | { error: string }) => void; done: () => RemoteStates } {
  const states = new Map<string, StateFile>();
  const problems = new Map<string, StateProblem>();
  const seen = new Set<string>();
  const packs = new Map<string, PackContents>();
  const takePack = (name: string, content: Buffer | { error: string }): void => {
    const pack = packOfFileName(name);
    packs.set(
      name,
      pack === null
        ? { byKey: new Map(), stray: [{ file: name, error: badPackName(name) }] }
        : Buffer.isBuffer(content)
          ? parsePackFile(name, pack, content)
          : { byKey: new Map(), stray: [{ file: name, error: content.error }] },
    );
  };
  return {
    take: (path, content) => {
      const name = stateFileName(path);
      if (name === null) {
        // JSON-quoted so the merger cannot read it as any step's file.
        problems.set(path, { file: preview(path), error: `unexpected file name from the cluster: ${preview(path)}` });
        seen.add(path);
        return;
      }
      if (name.endsWith(".jsonl")) {
        seen.add(path);
        return takePack(name, content);
      }
      // The pattern (states/*.json*) also matches names like x.json.bak: not state files.
      if (!name.endsWith(".json")) return;
      seen.add(path);
      problems.delete(path);
      if (!Buffer.isBuffer(content)) {
        problems.set(path, { file: name, error: content.error });
        return;
      }
      const parsed = parseStateText(name, content.toString("utf8"));
      if (parsed.ok) states.set(parsed.key, parsed.state);
      else problems.set(path, { file: name, error: parsed.error });
    },
    done: () => {
      if (packs.size === 0) return { states, problems: [...problems.values()], files: seen.size };
      const index = new PackIndex();
      const bad = [...packs.keys()].filter((n) => !index.add(n)).sort();
      const fromPacks = new Map<string, StateProblem | null>();
      const stray: StateProblem[] = [];
      for (const file of [...index.ordered(), ...bad]) {
        const contents = packs.get(file) as PackContents;
        for (const [key, line] of contents.byKey) {
          if (line.ok) states.set(key, line.state);
          else states.delete(key);
          fromPacks.set(key, line.ok ? null : { file, error: line.error, key });
        }
        // One by one: a pack file may have more bad lines than push() takes arguments.
        for (const p of contents.stray) stray.push(p);
      }
      const kept = [...problems.values()].filter((p) => !fromPacks.has(keyOfStateFile(p.file) ?? ""));
      const keyed = [...fromPacks.values()].filter((p): p is StateProblem => p !== null);
      return { states, problems: [...kept, ...stray, ...keyed], files: seen.size };
    },
  };
}

/** Most state files one run may have (the archive's entry cap). */
const STATES_MAX_ENTRIES = 10_000_000;

/**
 * Every `states/*.json` and `states/*.jsonl` of the run directory in ONE round trip, validated as
 * the archive streams in: each file is parsed as it arrives and its bytes
 * dropped, so only the parsed states are held, never the archive or its files.
 */
export async function readRemoteStates(transport: Transport, remoteDir: string): Promise<RemoteStates> {
  const taker = fetchedStates();
  const rest = await transport.getFiles(remoteDir, STATES_PATTERN, {
    maxFileBytes: TRANSFER_FILE_CAP,
    maxTotalBytes: STATES_TOTAL_CAP,
    maxEntries: STATES_MAX_ENTRIES,
    timeoutMs: 10 * 60_000,
    onFile: taker.take,
  });
  for (const [path, content] of rest) taker.take(path, content);
  return taker.done();
}

/**
 * ONE scheduler query for every job of the run (two when an array's tasks must be
 * looked up in accounting), mapped onto the plan's jobs and tasks. `known`: the
 * previous poll's answer; tasks it saw end are not looked for again.
 */
export async function queryJobStatuses(
  scheduler: SlurmScheduler,
  plan: CompiledPlan,
  jobs: Readonly<Record<string, string>>,
  known: readonly JobStatus[] | null = null,
  rule?: UnknownJobRule,
): Promise<JobStatus[]> {
  const ids = [...new Set(Object.values(jobs))];
  // The ids are sbatch's (array and plain job ids) and tasks are mapped by index: no task's own job id is read.
  return mapJobStatuses(plan, jobs, await scheduler.statusAnswers(ids, { expect: expectedTasks(plan, jobs, known), taskJobIds: false }), rule);
}

/** Per SLURM array job id, the task ids not yet seen final: a task squeue leaves out of its array is then asked of accounting. */
export function expectedTasks(plan: CompiledPlan, jobs: Readonly<Record<string, string>>, known: readonly JobStatus[] | null): Map<string, number[]> {
  const ended = new Map((known ?? []).map((j) => [j.job, j.tasks]));
  const out = new Map<string, number[]>();
  for (const job of plan.jobs) {
    const id = jobs[job.id];
    if (id === undefined || job.array === null) continue;
    const seen = ended.get(job.id);
    const open = seen === undefined ? arrayTaskIds(job) : seen.taskIdsWhere((k) => !k.final);
    if (open.length > 0) out.set(id, open);
  }
  return out;
}

/** Refuses runs whose job ids were never recorded: the submitter stopped before the submit script reported them. */
export function requireJobIds(record: RunRecord): void {
  if (record.phase === "submitting" && Object.keys(record.jobs).length === 0) {
    throw new RunStateError(
      `run ${record.run_id}: its submission did not complete (phase "submitting"${record.error ? `: ${record.error}` : ""}), so no job ids were recorded. ` +
        `Jobs it may have submitted carry the comment hpcpipe:${record.run_id} (see \`squeue --me -o '%i %k'\` on the cluster).`,
      record.run_id,
    );
  }
}

export interface CollectOutcome {
  state: CompletedState;
  /** The local result.json. */
  resultPath: string;
  jobs: JobStatus[];
  problems: StateProblem[];
  /** Every job of the run has ended: the result is complete. */
  final: boolean;
  stateFiles: number;
  record: RunRecord;
}

/**
 * The merged result from state files and job facts. With `itemsDir`, maps of
 * more than itemsInlineMax() items keep their items in a lines file written
 * there (see src/core/item-lines.ts); without it, every item is inline.
 */
export function mergeRun(plan: CompiledPlan, remote: RemoteStates, jobs: readonly JobStatus[], now?: string, itemsDir?: string): CompletedState {
  try {
    // Retries' attempts go into each large map's item lines as they are written, and into the result.
    const annotate = remote.retries !== undefined ? attemptsAnnotator(plan, remote.retries) : undefined;
    const state = mergeFromSource(plan, remote.source ?? mapSource(remote.states, remote.problems), {
      jobFacts: jobFactsOf(jobs),
      ...(now !== undefined ? { now } : {}),
      ...(itemsDir !== undefined ? { items: { dir: itemsDir, max: itemsInlineMax() } } : {}),
      ...(annotate !== undefined ? { annotateItem: annotate } : {}),
    });
    if (annotate !== undefined && state.step_states !== undefined) annotate(state.step_states);
    return state;
  } finally {
    // A spooled transfer is read once.
    remote.source?.close?.();
  }
}

/** RemoteStates read one file at a time from `source`: its problems and file count are known once a merge has read it. */
export function streamedStates(source: StateSource & { readonly problems: StateProblem[]; readonly files: number }, retries?: RetryRecords): RemoteStates {
  return {
    states: new Map(),
    get problems() {
      return source.problems;
    },
    get files() {
      return source.files;
    },
    source,
    ...(retries !== undefined ? { retries } : {}),
  };
}

/** The run's state files as the merge should read them: one at a time where the executor can (local, spooled), else all at once. */
export async function statesForMerge(run: RunExecutor): Promise<RemoteStates> {
  return run.streamStates !== undefined ? await run.streamStates() : run.readStates();
}

/** All state files of one spooled transfer together (they are on disk, not in memory). */
const SPOOL_TOTAL_CAP = 64 * 1024 * 1024 * 1024;

/**
 * Every `states/*.json` and `states/*.jsonl` of the run directory in ONE round trip, spooled to a
 * file in `spoolDir` as the archive streams in and read back one file at a
 * time by the merge (which then removes the spool): memory holds a number
 * per file, not the files. Validated as the merge reads them.
 */
export async function spoolRemoteStates(transport: Transport, remoteDir: string, spoolDir: string): Promise<RemoteStates> {
  const source = new SpoolSource(join(spoolDir, `.states.spool.${process.pid}.${randomBytes(6).toString("hex")}`));
  try {
    const add = (path: string, file: Buffer | { error: string }): void => source.add(path, file);
    const rest = await transport.getFiles(remoteDir, STATES_PATTERN, {
      maxFileBytes: TRANSFER_FILE_CAP,
      maxTotalBytes: SPOOL_TOTAL_CAP,
      maxEntries: STATES_MAX_ENTRIES,
      timeoutMs: 30 * 60_000,
      onFile: add,
    });
    for (const [path, file] of rest) add(path, file);
  } catch (err) {
    source.close();
    throw err;
  }
  return streamedStates(source);
}

/**
 * Collects a run: ONE scheduler query (first, so a job seen final has
 * already written its states), ONE getFiles for every state file, the merge,
 * and `result.json` written atomically (mode 600) in the run's local
 * directory. The record becomes "collected" once every job has ended.
 * `jobs` and `remote` reuse what a watch's last poll already fetched.
 */
export async function collectRun(
  context: RunContext | RunExecutor,
  options: { now?: string; jobs?: JobStatus[]; remote?: RemoteStates; merged?: CompletedState } = {},
): Promise<CollectOutcome> {
  const run = executorOf(context);
  const { record, plan, store } = run;
  requireJobIds(record);
  const jobs = options.jobs ?? (await run.query(null));
  // A run whose every step was restored from the step cache is submitted with no job: its states are there.
  const submitted = Object.keys(record.jobs).length > 0 || record.phase === "submitted" || record.phase === "collected";
  const remote: RemoteStates = options.remote ?? (submitted ? await statesForMerge(run) : { states: new Map(), problems: [], files: 0 });
  markTiming("states-fetched");
  // A watch's last poll already merged these states with these jobs: a million items are not merged twice.
  const state =
    options.merged !== undefined && options.jobs !== undefined && options.remote !== undefined
      ? options.merged
      : mergeRun(plan, remote, jobs, options.now, await store.resultDir(record.run_id));
  markTiming("merged");
  const resultPath = await store.writeResult(record.run_id, state);
  const final = jobs.every((j) => j.final);
  const updated = final && record.phase === "submitted" ? await store.updateRecord(record.run_id, { phase: "collected" }) : record;
  return { state, resultPath, jobs, problems: remote.problems, final, stateFiles: remote.files, record: updated };
}
