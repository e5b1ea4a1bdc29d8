/**
 * `hpcpipe report`: gathers what a finished run left — its plan, merged
 * result, the scheduler's times, the ends of failed steps' logs and the
 * image outputs — and renders one self-contained HTML page.
 *
 * A cluster run (a run id of the run store) costs, over ONE connection:
 * collecting first when the run was never collected (one squeue, one
 * transfer of the state files), ONE sacct for the times of every job, and
 * ONE read of every log tail and image. `offline` reads only local files.
 * A local run (a directory made by `hpcpipe run`) is read from disk.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { CompletedStateJson } from "../core/completed-state.js";
import { buildReportModel, imageTargets, logTargets } from "../report/model.js";
import type { FetchedImage, LogTail, ReportModel, ReportPlan, RunFacts, SchedulerTimes, TaskTimes } from "../report/model.js";
import { renderReportHtml } from "../report/html.js";
import { interpretAnswers, readLocalFiles, readRemoteFiles, reportRequests } from "../report/files.js";
import type { FileAnswer, FileRequest } from "../report/files.js";
import { parseReportPlan, parseReportResult } from "../report/plan-schema.js";
import { RUN_ID_PATTERN, RunStateError, RunStore, RunStoreError, UnknownRunError } from "../runs/index.js";
import type { RunRecord } from "../runs/index.js";
import { SchedulerError } from "../slurm/index.js";
import type { JobTimesRecord } from "../slurm/index.js";
import { collectRun } from "./collect.js";
import { connectOptionsOf, withRun } from "./connect.js";
import type { ConnectOptions, RunContext, TransportFactory } from "./connect.js";

/** Largest result.json or plan.json read. */
const MAX_JSON_BYTES = 256 * 1024 * 1024;

export interface ReportOptions extends ConnectOptions {
  /** A run id of the run store, or the path of a local run directory. */
  run: string;
  /** Use only local files: no connection (cluster runs need a collected result). */
  offline?: boolean;
  store?: RunStore;
  connect?: TransportFactory;
  /** Where local run directories are looked for when `run` is a run id the store does not know (default `.hpcpipe/runs`). */
  localRunsDir?: string;
  /** The report's timestamp (tests); default now. */
  now?: () => Date;
}

export interface BuiltReport {
  html: string;
  model: ReportModel;
  /** Where the report goes unless told otherwise: `report.html` in the run's (local) directory. */
  defaultPath: string;
  /** The run was collected first (its result was missing or not final). */
  collected: boolean;
  /** Round trips to the cluster (exec channels), for cluster runs that connected. */
  roundTrips: number | null;
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  const info = await stat(path).catch(() => null);
  if (info === null) return undefined;
  if (!info.isFile()) throw new RunStoreError(`${path}: the ${what} is not a regular file`);
  if (info.size > MAX_JSON_BYTES) throw new RunStoreError(`${path}: the ${what} is ${info.size} bytes, over the ${MAX_JSON_BYTES}-byte limit`);
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RunStoreError(`${path}: the ${what} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}

async function readResult(path: string): Promise<CompletedStateJson | undefined> {
  const json = await readJsonFile(path, "result");
  if (json === undefined) return undefined;
  const parsed = parseReportResult(json);
  if (!parsed.ok) throw new RunStoreError(`${path}: not a valid run result: ${parsed.error}`);
  return parsed.result;
}

function checkedPlan(json: unknown, path: string): ReportPlan & { runId: string; pipeline: string; cluster: string } {
  const parsed = parseReportPlan(json);
  if (!parsed.ok) throw new RunStoreError(`${path}: not a valid plan: ${parsed.error}`);
  return parsed.plan;
}

/** Log tails and images of a run, read by `read`, decided by the model's rules. */
async function gatherFiles(
  plan: ReportPlan | null,
  result: CompletedStateJson,
  attempt: number,
  read: (requests: FileRequest[]) => Promise<Map<string, FileAnswer>>,
): Promise<{ logs: Map<string, LogTail[]>; images: Map<string, FetchedImage> }> {
  const slotLogs = new Map<string, string>();
  const logKeys = logTargets(plan, result, attempt, slotLogs);
  const imagePaths = imageTargets(plan, result, attempt).map((t) => t.path);
  const requests = reportRequests(logKeys, imagePaths, slotLogs);
  const answers = requests.length > 0 ? await read(requests) : new Map<string, FileAnswer>();
  return interpretAnswers(logKeys, imagePaths, answers, slotLogs);
}

// ---------------------------------------------------------------------------- local runs

/** A local run directory: has result.json (and, since hpcpipe writes it, plan.json). */
async function isRunDir(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  return info !== null && info.isDirectory();
}

async function findLocalRun(runId: string, runsDir: string): Promise<string | null> {
  const pipelines = await readdir(runsDir).catch(() => [] as string[]);
  for (const pipeline of pipelines.sort()) {
    const candidate = join(runsDir, pipeline, runId);
    if (await isRunDir(candidate)) return candidate;
  }
  return null;
}

async function localReport(dir: string, now: Date): Promise<BuiltReport> {
  const runDir = resolve(dir);
  const resultPath = join(runDir, "result.json");
  const result = await readResult(resultPath);
  if (result === undefined) {
    throw new UnknownRunError(runDir, runDir, `${runDir} is not a run directory of \`hpcpipe run\` (it has no result.json)`);
  }
  const planPath = join(runDir, "plan.json");
  const planJson = await readJsonFile(planPath, "plan");
  const plan = planJson === undefined ? null : checkedPlan(planJson, planPath);
  // The bundle (scripts/lib.sh) is written just before the first job starts.
  const lib = await stat(join(runDir, "scripts", "lib.sh")).catch(() => null);
  const runId = plan?.runId ?? (typeof result.meta.run_id === "string" ? result.meta.run_id : basename(runDir));
  const facts: RunFacts = {
    kind: "local",
    runId,
    pipeline: plan?.pipeline ?? Object.keys(result.step_states ?? {})[0]?.split(".")[0] ?? basename(dirname(runDir)),
    cluster: plan?.cluster ?? "local",
    attempt: 1,
    started: lib === null ? null : lib.mtime.toISOString(),
    location: runDir,
  };
  const { logs, images } = await gatherFiles(plan, result, 1, (requests) => readLocalFiles(runDir, requests));
  const model = buildReportModel({ plan, result, run: facts, scheduler: null, logs, images, generated: now.toISOString() });
  return { html: renderReportHtml(model), model, defaultPath: join(runDir, "report.html"), collected: false, roundTrips: null };
}

// ---------------------------------------------------------------------------- cluster runs

/** Every SLURM job id of the run: this attempt's and earlier attempts' (steps reused by a resume ran under those). */
export function runJobIds(record: RunRecord): string[] {
  const ids = new Set<string>(Object.values(record.jobs));
  for (const h of record.history ?? []) for (const id of Object.values(h.jobs)) ids.add(id);
  return [...ids];
}

/** The scheduler's records by each task's own job id, in milliseconds. */
export function timesByJobId(records: readonly JobTimesRecord[]): Map<string, TaskTimes> {
  const ms = (s: number | null): number | null => (s === null ? null : s * 1000);
  const out = new Map<string, TaskTimes>();
  for (const r of records) {
    // A pending range shares the array's id with its last task; a task's own row wins.
    if (r.rawId.includes("[") && out.has(r.jobId)) continue;
    out.set(r.jobId, { submit: ms(r.submit), eligible: ms(r.eligible), start: ms(r.start), end: ms(r.end), nodes: r.nodes });
  }
  return out;
}

async function schedulerTimes(run: RunContext): Promise<SchedulerTimes> {
  const ids = runJobIds(run.record);
  if (ids.length === 0) return { available: false, why: "no job ids were recorded" };
  try {
    return { available: true, byJobId: timesByJobId(await run.scheduler.jobTimes(ids)) };
  } catch (err) {
    if (err instanceof SchedulerError) return { available: false, why: firstLine(err.message) };
    throw err;
  }
}

function firstLine(text: string): string {
  const line = text.split("\n")[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

function clusterFacts(record: RunRecord, plan: ReportPlan & { pipeline: string }, partial: string | null): RunFacts {
  return {
    kind: "cluster",
    runId: record.run_id,
    pipeline: plan.pipeline,
    cluster: record.cluster,
    attempt: record.attempt ?? 1,
    // The record keeps when the run was first submitted; a resumed attempt's submission time is only known to sacct.
    started: (record.attempt ?? 1) > 1 ? null : record.created,
    location: record.remote_dir,
    phase: record.phase,
    jobs: record.jobs,
    partial,
  };
}

async function clusterReport(runId: string, options: ReportOptions, store: RunStore, now: Date): Promise<BuiltReport> {
  const record = await store.readRecord(runId);
  const saved = await store.readPlan(runId);
  const plan = checkedPlan(saved, join(store.runDir(runId), "plan.json"));
  const resultPath = store.resultPath(runId);
  const existing = await readResult(resultPath);
  const defaultPath = join(store.runDir(runId), "report.html");

  if (options.offline) {
    if (existing === undefined) {
      throw new RunStateError(
        `run ${runId} was never collected, so there is no result to report offline: run \`hpcpipe collect ${runId}\` first (it needs the cluster), or leave out --offline`,
        runId,
      );
    }
    const partial = record.phase === "collected" ? null : `the run was not final when last collected (phase ${record.phase}); run \`hpcpipe collect ${runId}\` for the final result`;
    const model = buildReportModel({
      plan,
      result: existing,
      run: clusterFacts(record, plan, partial),
      scheduler: { available: false, why: "--offline" },
      logs: new Map(),
      images: new Map(),
      notFetched: `Log tails and images were not fetched (--offline); \`hpcpipe logs ${runId} STEP\` shows a step's log.`,
      generated: now.toISOString(),
    });
    return { html: renderReportHtml(model), model, defaultPath, collected: false, roundTrips: null };
  }

  let roundTrips: number | null = null;
  const built = await withRun(runId, { store, ...connectOptionsOf(options), ...(options.connect ? { connect: options.connect } : {}) }, async (run) => {
    const before = run.transport.roundTrips;
    let result = existing;
    let partial: string | null = null;
    let collected = false;
    if (result === undefined || run.record.phase !== "collected") {
      const outcome = await collectRun(run);
      result = outcome.state.toJSON();
      collected = true;
      if (!outcome.final) {
        const active = outcome.jobs.filter((j) => !j.final).map((j) => `${j.job} (${j.state})`);
        partial = `${active.length} job(s) had not ended when it was collected: ${active.join(", ")}`;
      }
    }
    const current = collected ? await store.readRecord(runId) : run.record;
    const scheduler = await schedulerTimes(run);
    const files = await gatherFiles(plan, result, current.attempt ?? 1, (requests) =>
      readRemoteFiles(run.transport, current.remote_dir, requests, { runId }),
    );
    const model = buildReportModel({
      plan,
      result,
      run: clusterFacts(current, plan, partial),
      scheduler,
      logs: files.logs,
      images: files.images,
      generated: now.toISOString(),
    });
    roundTrips = run.transport.roundTrips - before;
    return { model, collected };
  });
  return { html: renderReportHtml(built.model), model: built.model, defaultPath, collected: built.collected, roundTrips };
}

// ---------------------------------------------------------------------------- entry points

/** Builds the report of a run (a run id or a local run directory); writes nothing. */
export async function buildReport(options: ReportOptions): Promise<BuiltReport> {
  const now = options.now?.() ?? new Date();
  const store = options.store ?? new RunStore();
  if (await isRunDir(options.run)) return localReport(options.run, now);
  if (!RUN_ID_PATTERN.test(options.run)) {
    throw new UnknownRunError(options.run, join(store.root, "runs"), "neither a run directory nor a run id (see `hpcpipe runs`, or give the directory `hpcpipe run` printed)");
  }
  try {
    const record = await store.readRecord(options.run);
    // A run of this machine: everything is in its run directory.
    if (record.executor === "local") return await localReport(record.remote_dir, now);
  } catch (err) {
    if (!(err instanceof UnknownRunError)) throw err;
    const local = await findLocalRun(options.run, resolve(options.localRunsDir ?? join(".hpcpipe", "runs")));
    if (local !== null) return localReport(local, now);
    throw err;
  }
  return clusterReport(options.run, options, store, now);
}

/** Writes the page atomically (a temp file beside it, then rename), mode 600: it may hold logs. */
export async function writeReport(path: string, html: string): Promise<void> {
  const target = resolve(path);
  const temp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await writeFile(temp, html, { mode: 0o600, flag: "wx" });
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "its directory does not exist" : code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "it is a directory" : null;
    throw why === null ? err : new Error(why, { cause: err });
  }
}
