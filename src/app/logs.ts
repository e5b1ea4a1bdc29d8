/**
 * A step's stdout/stderr on the cluster (`logs/<key>.out|.err`): read once
 * (ONE getFiles, size-capped), or followed like `tail -F` (one small read
 * per poll from the last offset, over the same connection) until the step's
 * job is final or the caller stops. A packed map item's step logs are a
 * section of one of its task's slot logs (src/core/log-section.ts), found
 * through its line in the task's pack file or, while the task runs (no pack
 * file yet), through its marker in one of the task's slot logs.
 */
import { buildStepIndex, concreteKey } from "../collect/index.js";
import { byMapKey, itemsOfTask, stepSlots } from "../collect/job-index.js";
import type { StepSlots } from "../collect/job-index.js";
import { PACK_FILE_MAX_BYTES, packOfFileName, parsePackFile } from "../collect/pack-file.js";
import { logMarker, logSection, SectionFilter, slotLogOf } from "../core/log-section.js";
import type { StepSlot } from "../collect/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import { itemsPerTaskOf } from "../plan/plan.js";
import { RunStateError } from "../runs/index.js";
import { PollInterval, pollPolicy } from "../slurm/index.js";
import type { PollPolicy } from "../slurm/index.js";
import { preview } from "../core/preview.js";
import type { RunContext } from "./connect.js";
import type { LogChunk, RunExecutor } from "./executor.js";
import { executorOf } from "./slurm-executor.js";
import { abortableSleep } from "./status.js";

/** Largest log `logs` prints without --follow; more is refused with a pointer to the file. */
export const MAX_LOG_BYTES = 64 * 1024 * 1024;
/** Most bytes one follow poll reads. */
const FOLLOW_CHUNK_BYTES = 1024 * 1024;

export type LogStream = "stdout" | "stderr";

export interface LogTarget {
  /** The concrete step key (item index filled in). */
  key: string;
  slot: StepSlot;
  /** Path relative to the run directory. */
  path: string;
  stream: LogStream;
  /** A packed item: the pack file (`states/<pack>.items-<first>-<last>.jsonl`) whose line of `key` names its slot log. */
  packFile?: string;
  /** Set once the pack line was read: `path` is the slot log, and the log is `key`'s section of it. */
  section?: true;
}

function withoutItems(key: string): string {
  return key.replaceAll(".{i}", "");
}

function matches(template: string, wanted: string): boolean {
  const plain = withoutItems(template);
  return template === wanted || plain === wanted || template.endsWith(`.${wanted}`) || plain.endsWith(`.${wanted}`);
}

/**
 * Finds the step a user means: a full key (`p.renders.front`, `p.check_all.3.check`),
 * a unique suffix (`front`, `check_all.check`), or a group/map with `--task`
 * (the step of that task, when it runs one step). `{i}` is replaced by the task.
 */
export function resolveLogTarget(plan: CompiledPlan, step: string, task?: number, stream: LogStream = "stdout"): LogTarget {
  // Map items are looked up by key, not indexed: a million-item map costs nothing up front.
  const index = stepSlots(plan);
  const target = (key: string, slot: StepSlot): LogTarget => {
    const packFile = packFileOf(plan, slot);
    return { key, slot, path: `logs/${key}.${stream === "stdout" ? "out" : "err"}`, stream, ...(packFile !== null ? { packFile } : {}) };
  };
  const direct = index.get(step);
  if (direct !== undefined) return target(step, direct);

  const templates = [...new Set(plan.jobs.flatMap((j) => j.bodies.flatMap((b) => b.steps.map((s) => s.key))))];
  const found = templates.filter((t) => matches(t, step));
  const fail = (message: string): never => {
    throw new RunStateError(`run ${plan.runId}: ${message}`, plan.runId);
  };
  if (found.length > 1) fail(`step ${preview(step)} is ambiguous: ${found.join(", ")}`);
  const only = found[0];
  if (only !== undefined) {
    if (!only.includes("{i}")) return target(only, index.get(only) ?? fail(`step ${only} runs in no job of the plan`));
    // Items of the map (a packed map runs several per task), else the array's tasks.
    const count = Math.max(0, ...plan.jobs.filter((j) => j.steps.includes(only)).map((j) => plan.items[j.map?.key ?? ""]?.length ?? j.array?.total ?? 0));
    if (task === undefined) fail(`step ${only} runs once per item: give --task 0..${count - 1}`);
    const key = concreteKey(only, task as number);
    return target(key, index.get(key) ?? fail(`step ${only} has no task ${task} (tasks 0..${count - 1})`));
  }
  // A group (or map) named with --task: the single step that task runs.
  if (task !== undefined) {
    const inTask = [...slotsOfTask(plan, index, task)].filter(([key, slot]) => slot.job.array !== null && (key.startsWith(`${step}.`) || key.includes(`.${step}.`)));
    const keys = [...new Set(inTask.map(([key]) => key))];
    if (keys.length === 1) {
      const [key, slot] = inTask[0] as [string, StepSlot];
      return target(key, slot);
    }
    if (keys.length > 1) fail(`task ${task} of ${step} runs several steps; name one: ${keys.join(", ")}`);
  }
  // A step of the pipeline that no job of this run runs: restored from the step cache, or already done when resumed.
  const inTree = (node: CompiledPlan["tree"]): boolean => node.key === step || withoutItems(node.key) === step || node.children.some(inTree);
  if (inTree(plan.tree)) {
    return fail(`step ${preview(step)} ran in no job of this run: it was restored from the step cache or had already succeeded (its state names the run it came from: hpcpipe collect ${plan.runId} --json)`);
  }
  const all = templates.slice(0, 30).join(", ");
  return fail(`no step ${preview(step)} in the plan (steps: ${all}${templates.length > 30 ? ", ..." : ""})`);
}

/** The steps task (or item) `task` runs in each job: maps' items by key, the other jobs from their index. */
function* slotsOfTask(plan: CompiledPlan, slots: StepSlots, task: number): Generator<[string, StepSlot]> {
  for (const [key, slot] of buildStepIndex({ ...plan, jobs: plan.jobs.filter((j) => !byMapKey(j)) })) if (slot.index === task) yield [key, slot];
  for (const job of plan.jobs) {
    if (!byMapKey(job)) continue;
    for (const body of job.bodies) {
      for (const s of body.steps) {
        const key = concreteKey(s.key, task);
        const slot = slots.get(key);
        if (slot !== undefined && slot.job === job) yield [key, slot];
      }
    }
  }
}

/**
 * The pack file a step of a packed map task would have its state in (the task's items' range), or null
 * when its map runs one item per task. Whether the task wrote one (the wrapper's packed layout) is known by reading it.
 */
export function packFileOf(plan: Pick<CompiledPlan, "items">, slot: StepSlot): string | null {
  if (slot.unitKey === null || slot.job.shape !== "map" || itemsPerTaskOf(slot.job) <= 1) return null;
  const items = itemsOfTask(plan, slot.job, slot.task);
  const first = items[0];
  const last = items[items.length - 1];
  const suffix = `.${slot.index}`;
  if (first === undefined || last === undefined || !slot.unitKey.endsWith(suffix)) return null;
  const name = `${slot.unitKey.slice(0, -suffix.length)}.items-${first}-${last}.jsonl`;
  return packOfFileName(name) === null ? null : `states/${name}`;
}

/**
 * Where the step's log is: a packed item's slot log (from its line in the pack file: ONE read of that file),
 * else `logs/<key>.out|.err` as resolved. A pack file not there yet (the task runs, or the old layout) changes nothing.
 */
export async function locateLog(context: RunContext | RunExecutor, target: LogTarget): Promise<LogTarget> {
  if (target.packFile === undefined || target.section === true) return target;
  const bytes = await executorOf(context).readFile(target.packFile, PACK_FILE_MAX_BYTES);
  const name = packOfFileName(target.packFile.slice("states/".length));
  if (bytes === null || name === null) return target;
  const line = parsePackFile(target.packFile, name, bytes).byKey.get(target.key);
  const log = line?.ok === true ? slotLogOf(line.state.meta) : null;
  if (log === null) return target;
  return { ...target, path: `${log}.${target.stream === "stdout" ? "out" : "err"}`, section: true };
}

/** Most slot logs a running packed task is searched in for an item's marker. */
const MAX_SLOTS_SEARCHED = 64;

/**
 * The slot logs (no suffix) a packed task's items write while it runs, `logs/<pack>.items-<first>-<last>.s<k>`
 * for each slot k it may use: `max(1, floor(cpus / item cpus))`, at most one per item of the task.
 */
export function slotLogsOf(target: LogTarget): string[] {
  if (target.packFile === undefined) return [];
  const name = target.packFile.slice("states/".length);
  const pack = packOfFileName(name);
  if (pack === null) return [];
  const job = target.slot.job;
  const itemCpus = job.map?.itemCpus ?? 1;
  const slots = Math.min(Math.max(1, Math.floor((job.resources.cpus ?? 1) / itemCpus)), pack.last - pack.first + 1, MAX_SLOTS_SEARCHED);
  const base = `logs/${name.slice(0, -".jsonl".length)}`;
  return Array.from({ length: slots }, (_, k) => `${base}.s${k}`);
}

/**
 * A packed item whose task has not written its pack file yet (it runs): the slot log holding the key's
 * marker (one read per slot log, the first that has it), as a section; else the target unchanged.
 */
export async function locateRunningLog(context: RunContext | RunExecutor, target: LogTarget): Promise<LogTarget> {
  if (target.packFile === undefined || target.section === true) return target;
  const marker = logMarker(target.key);
  for (const log of slotLogsOf(target)) {
    const path = `${log}.${target.stream === "stdout" ? "out" : "err"}`;
    const data = await executorOf(context).readFile(path, MAX_LOG_BYTES);
    if (data !== null && data.includes(marker)) return { ...target, path, section: true };
  }
  return target;
}

/**
 * Follows the search of `locateRunningLog` from poll to poll: each slot log is read only from where the last
 * poll stopped (at most FOLLOW_CHUNK_BYTES a poll), never whole again, so a follow of an item that has not
 * started yet costs a small read per slot log and poll, whatever the size of the logs.
 */
class SlotLogSearch {
  private readonly seen = new Map<string, { offset: number; tail: Buffer }>();
  private readonly marker: Buffer;

  constructor(private readonly target: LogTarget) {
    this.marker = logMarker(target.key);
  }

  /** The slot log holding the key's marker, as a section target; else the target unchanged. */
  async find(context: RunContext | RunExecutor): Promise<LogTarget> {
    for (const log of slotLogsOf(this.target)) {
      const path = `${log}.${this.target.stream === "stdout" ? "out" : "err"}`;
      const at = this.seen.get(path) ?? { offset: 0, tail: Buffer.alloc(0) };
      const chunk = await readLogFrom(context, { ...this.target, path }, at.offset);
      if (chunk.absent) continue;
      // A rewritten log is read again from its start.
      const data = Buffer.concat([chunk.restarted ? Buffer.alloc(0) : at.tail, chunk.data]);
      if (data.includes(this.marker)) return { ...this.target, path, section: true };
      // A marker split between two reads: its start is kept for the next.
      this.seen.set(path, { offset: (chunk.restarted ? 0 : at.offset) + chunk.data.length, tail: Buffer.from(data.subarray(Math.max(0, data.length - this.marker.length + 1))) });
    }
    return this.target;
  }
}

/**
 * The step's whole log in ONE read (a packed item: its pack line, then its slot log, of which its section is
 * cut: the slot log is read whole, within MAX_LOG_BYTES); null when it does not exist yet.
 */
export async function readLog(run: RunContext | RunExecutor, target: LogTarget): Promise<Buffer | null> {
  let where = await locateLog(run, target);
  let data = await executorOf(run).readFile(where.path, MAX_LOG_BYTES);
  if (data === null && where.packFile !== undefined && where.section !== true) {
    // No pack line and no per-key log: the task still runs, and its slot logs say where the item is.
    where = await locateRunningLog(run, where);
    if (where.section === true) data = await executorOf(run).readFile(where.path, MAX_LOG_BYTES);
  }
  if (data === null || where.section !== true) return data;
  return logSection(data, where.key) ?? Buffer.alloc(0);
}

/** What the step's job (task) is doing now: ONE query for that job. */
export async function stepJobState(context: RunContext | RunExecutor, target: LogTarget): Promise<{ state: string; reason: string | null; final: boolean }> {
  const run = executorOf(context);
  const slurmId = run.record.jobs[target.slot.job.id];
  if (slurmId === undefined) return { state: "NOT_SUBMITTED", reason: null, final: true };
  const statuses = await run.query(null);
  const job = statuses.find((j) => j.job === target.slot.job.id);
  const t = job?.tasks.at(target.slot.taskId);
  return { state: t?.state ?? "UNKNOWN", reason: t?.reason ?? null, final: t?.final ?? false };
}

export type { LogChunk } from "./executor.js";

/** New bytes of the log from `offset` (at most 1 MiB): ONE read, safe to retry. */
export function readLogFrom(run: RunContext | RunExecutor, target: LogTarget, offset: number): Promise<LogChunk> {
  return executorOf(run).readFileFrom(target.path, offset, FOLLOW_CHUNK_BYTES);
}

export interface FollowOptions {
  write: (data: Buffer) => void;
  /** A note for people (the log was restarted, the job ended). */
  note?: (message: string) => void;
  signal?: AbortSignal;
  policy?: PollPolicy;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Follows the log like `tail -F`: prints what is there, then new bytes as
 * they come (a rewritten file is read again from the start), until the
 * step's job is final and everything was read, or `signal` aborts.
 * Returns the job's final state, or null when stopped.
 */
export async function followLog(context: RunContext | RunExecutor, target: LogTarget, options: FollowOptions): Promise<{ state: string; reason: string | null } | null> {
  const run = executorOf(context);
  const interval = new PollInterval(options.policy ?? run.pollPolicy ?? pollPolicy({ initialMs: 500, maxMs: 5_000 }));
  const sleep = options.sleep ?? abortableSleep;
  let offset = 0;
  let ended: { state: string; reason: string | null } | null = null;
  let where = target;
  let filter: SectionFilter | null = null;
  // Slot logs are searched only while the item's task runs (a pending task has written none).
  let running = false;
  const search = new SlotLogSearch(target);
  for (;;) {
    if (options.signal?.aborted) return null;
    // A packed item's slot log: from its line once its task has written its pack file (the task ended), or
    // while the task runs, the slot log that holds the item's marker (none until the item starts).
    if (where.packFile !== undefined && where.section !== true && offset === 0) {
      where = await locateLog(run, where);
      if (where.section !== true && running) where = await search.find(run);
      if (where.section === true) filter = new SectionFilter(where.key);
    }
    const chunk = await readLogFrom(run, where, offset);
    if (chunk.restarted) {
      options.note?.(`${where.path} was rewritten; reading it again from the start`);
      offset = 0;
      if (filter !== null) filter = new SectionFilter(where.key);
    }
    if (chunk.data.length > 0) {
      const shown = filter === null ? chunk.data : filter.push(chunk.data);
      if (shown.length > 0) options.write(shown);
      offset += chunk.data.length;
    }
    if (chunk.data.length >= FOLLOW_CHUNK_BYTES) continue;
    if (ended !== null) {
      const rest = filter?.flush();
      if (rest !== undefined && rest.length > 0) options.write(rest);
      return ended;
    }
    const job = await stepJobState(run, where);
    running = job.state === "RUNNING" || job.state === "COMPLETING";
    if (job.final) {
      // One more read: the job may have written its last lines after the read above.
      ended = { state: job.state, reason: job.reason };
      continue;
    }
    await sleep(interval.next(chunk.data.length > 0), options.signal);
  }
}
