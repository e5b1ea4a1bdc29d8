/**
 * The run lifecycle's entry points, whatever executes the run: submit (or
 * resume) a pipeline, and open a submitted run on its executor. The ONE
 * place that picks an executor: by the cluster config at submission, by the
 * run record afterwards.
 */
import { dirname, join } from "node:path";
import { loadClusterConfig } from "../cluster/index.js";
import { writeJsonAtomic } from "../core/atomic-json.js";
import type { Logger } from "../core/logger.js";
import type { LocalRunEvent } from "../local/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import { RunStore } from "../runs/index.js";
import type { RunRecord } from "../runs/index.js";
import { withRun } from "./connect.js";
import type { OpenRunOptions } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { localExecutor, supervisorAlive } from "./local-executor.js";
import { spawnSupervisor, superviseRun } from "./local-supervisor.js";
import { preparePlan } from "./prepare.js";
import type { PipelineSource } from "./prepare.js";
import { checkSameInputs, doneSteps, ResumeError, statesOf } from "./resume.js";
import { statesForMerge } from "./collect.js";
import { copyBundle } from "./run-local.js";
import { slurmExecutor } from "./slurm-executor.js";
import { firstRecord } from "./submit-prepare.js";
import { submitRun } from "./submit.js";
import type { SubmitOptions, SubmitOutcome } from "./submit.js";

/** How messages name a run's job ids and directory, by its executor (one place, not in every command). */
export function executorWords(record: Pick<RunRecord, "executor">): { jobIds: string; directory: string } {
  return record.executor === "local" ? { jobIds: "local job", directory: "run directory:" } : { jobIds: "SLURM", directory: "remote directory:" };
}

/** Options only a local run has. */
export interface LocalSubmitOptions {
  /** Most CPUs in use at once (default: this machine's). */
  cpus?: number;
  /** Where run directories go (default: the config's workdir, `.hpcpipe/runs`). */
  runsDir?: string;
  /**
   * Supervise the run inside this process instead of a detached supervisor
   * (`hpcpipe run`): the run lives as long as this process; `signal` cancels it.
   */
  attached?: { signal?: AbortSignal; logger?: Logger; onEvent?: (event: LocalRunEvent) => void };
}

export interface PipelineSubmitOptions extends SubmitOptions {
  local?: LocalSubmitOptions;
}

/**
 * Submits a pipeline (or resumes a run with `resume`) on the executor its
 * cluster config names, then runs `then` with the open run (watch, collect,
 * cancel). A local run is in the background unless `local.attached`.
 */
export async function submitPipeline<T = undefined>(options: PipelineSubmitOptions, then?: (run: RunExecutor) => Promise<T>): Promise<SubmitOutcome<T>> {
  const store = options.store ?? new RunStore();
  const local = options.resume !== undefined ? (await store.readRecord(options.resume)).executor === "local" : loadClusterConfig(options.cluster).executor === "local";
  if (local) return submitLocal({ ...options, store }, then);
  return submitRun({ ...options, store }, then ? (ctx) => then(slurmExecutor(ctx)) : undefined);
}

/** Opens a submitted run on its executor (one connection for a cluster run, closed afterwards) and runs `action` with it. */
export async function openRun<T>(runId: string, options: OpenRunOptions, action: (run: RunExecutor) => Promise<T>): Promise<T> {
  const store = options.store ?? new RunStore();
  const record = await store.readRecord(runId);
  if (record.executor === "local") return action(localExecutor(store, record, await store.readPlan(runId)));
  return withRun(runId, { ...options, store }, (ctx) => action(slurmExecutor(ctx)));
}

/** The record of a new local run, before anything runs: a submission's first record, run by the local executor. */
function localRecord(plan: CompiledPlan, spec: PipelineSource, config: { name: string; source?: string | null }, cpus: number | undefined, now: string): RunRecord {
  return { ...firstRecord(plan, { name: config.name, source: config.source ?? null }, { spec, cluster: "local" }, now), executor: "local", supervisor: null, local: { cpus: cpus ?? null } };
}

async function startLocal<T>(
  store: RunStore,
  record: RunRecord,
  plan: CompiledPlan,
  options: PipelineSubmitOptions,
  then?: (run: RunExecutor) => Promise<T>,
): Promise<SubmitOutcome<T>> {
  const attached = options.local?.attached;
  if (attached === undefined) {
    await spawnSupervisor(store, record.run_id, record.remote_dir);
    const current = await store.readRecord(record.run_id);
    const after = then ? await then(localExecutor(store, current, plan)) : undefined;
    return { record: await store.readRecord(record.run_id), plan, roundTrips: 0, then: after };
  }
  // In this process: the supervisor and `then` (a watch) side by side.
  const supervised = superviseRun({
    store,
    runId: record.run_id,
    ...(attached.signal ? { signal: attached.signal } : {}),
    ...(attached.logger ? { logger: attached.logger } : {}),
    ...(attached.onEvent ? { onEvent: attached.onEvent } : {}),
  });
  let after: T | undefined;
  try {
    // The supervisor records itself first: wait for that before watching.
    for (let i = 0; i < 600 && (await store.readRecord(record.run_id)).phase === "submitting"; i++) await new Promise((r) => setTimeout(r, 10));
    after = then ? await then(localExecutor(store, await store.readRecord(record.run_id), plan)) : undefined;
  } finally {
    await supervised;
  }
  return { record: await store.readRecord(record.run_id), plan, roundTrips: 0, then: after };
}

/** A new local run: compile for this machine, lay out the run directory, record it, start its supervisor. */
async function submitLocal<T>(options: PipelineSubmitOptions & { store: RunStore }, then?: (run: RunExecutor) => Promise<T>): Promise<SubmitOutcome<T>> {
  if (options.resume !== undefined) return resumeLocal(options, options.resume, then);
  const { store } = options;
  const { plan, loaded, config, warnings } = preparePlan({
    spec: options.spec,
    cluster: options.cluster,
    ...(options.runId ? { runId: options.runId } : {}),
    ...(options.set ? { set: options.set } : {}),
    ...(options.fuse !== undefined ? { fuse: options.fuse } : {}),
    ...(options.templatesDir ? { templatesDir: options.templatesDir } : {}),
    ...(options.local?.runsDir ? { localRunsDir: options.local.runsDir } : {}),
  });
  for (const warning of warnings) options.onProgress?.(`warning: ${warning}`);
  const runDir = plan.layout.runDir;
  await copyBundle(loaded.specDir, loaded.bundle, join(runDir, plan.layout.work), loaded.inputs);
  // The compiled plan beside the result, as a cluster run's record keeps it: `hpcpipe report` reads the tree from it.
  await writeJsonAtomic(join(runDir, "plan.json"), plan, { mode: 0o600 });
  await store.writePlan(plan);
  await store.writeRecord(localRecord(plan, options.spec, config, options.local?.cpus, store.now()));
  options.onProgress?.(`running ${plan.jobs.length} job(s) on this machine in ${runDir}`);
  return startLocal(store, await store.readRecord(plan.runId), plan, options, then);
}

/**
 * `--resume RUN` of a local run: once its supervisor has ended, only steps
 * whose state is not a success of the same definition run again, in the
 * same run directory, under a new supervisor.
 */
async function resumeLocal<T>(options: PipelineSubmitOptions & { store: RunStore }, runId: string, then?: (run: RunExecutor) => Promise<T>): Promise<SubmitOutcome<T>> {
  const { store } = options;
  const previous = await store.readRecord(runId);
  const previousPlan = await store.readPlan(runId);
  if (supervisorAlive(previous)) {
    throw new ResumeError(`run ${runId} is still running (supervisor pid ${previous.supervisor?.pid ?? "?"}); wait for it (hpcpipe status ${runId} --watch) or cancel it (hpcpipe cancel ${runId}) before resuming`);
  }
  // The run directory is <runs dir>/<pipeline>/<run id>: compile for the same place.
  const runsDir = dirname(dirname(previous.remote_dir));
  const prepare = (done?: ReadonlySet<string>) =>
    preparePlan({
      spec: options.spec,
      cluster: options.cluster,
      runId,
      localRunsDir: runsDir,
      ...(options.set ? { set: options.set } : {}),
      ...(options.fuse !== undefined ? { fuse: options.fuse } : {}),
      ...(options.templatesDir ? { templatesDir: options.templatesDir } : {}),
      ...(done ? { done } : {}),
    });
  const full = prepare();
  if (full.config.executor !== "local") throw new ResumeError(`run ${runId} ran on this machine, not on cluster ${full.config.name}: resume it with --cluster local`);
  if (full.plan.layout.runDir !== previous.remote_dir) throw new ResumeError(`run ${runId}: its run directory ${previous.remote_dir} is not where the plan would run now (${full.plan.layout.runDir})`);
  checkSameInputs(runId, previousPlan, full.plan);
  const executor = localExecutor(store, previous, previousPlan);
  // One state file at a time (the states directory is read as the keys are asked).
  const remote = await statesForMerge(executor);
  const done = doneSteps(full.plan, remote.source !== undefined ? statesOf(remote.source) : remote.states);
  const { plan, loaded } = prepare(done);
  options.onProgress?.(`run ${runId}: ${done.size} step(s) already succeeded; running ${plan.jobs.length} job(s) again`);
  if (plan.jobs.length === 0) {
    options.onProgress?.(`run ${runId}: every step already succeeded; nothing to run (hpcpipe collect ${runId})`);
    return { record: previous, plan: previousPlan, roundTrips: 0, then: undefined };
  }
  await copyBundle(loaded.specDir, loaded.bundle, join(plan.layout.runDir, plan.layout.work), loaded.inputs);
  await writeJsonAtomic(join(plan.layout.runDir, "plan.json"), plan, { mode: 0o600 });
  await store.writePlan(plan);
  const attempt = (previous.attempt ?? 1) + 1;
  const history = [...(previous.history ?? []), { attempt: previous.attempt ?? 1, jobs: previous.jobs, phase: previous.phase, updated: previous.updated }];
  const cpus = options.local?.cpus ?? previous.local?.cpus ?? null;
  const record = await store.updateRecord(runId, { phase: "submitting", jobs: {}, error: null, attempt, history, plan_signature: plan.signature, supervisor: null, local: { cpus } });
  return startLocal(store, record, plan, options, then);
}
