/**
 * Reconciling a submission whose outcome is unknown: the submitter was
 * killed, or its SSH connection dropped, while the submit script ran, so the
 * local record is still in phase "submitting" without (all) its job ids.
 * Every job hpcpipe submits carries the comment `hpcpipe:<run id>` and the
 * name `hp-<plan job id>-...`, so ONE squeue (and, for jobs squeue has
 * forgotten, ONE sacct matched by name and run directory) tells which plan
 * jobs are on the cluster. They are recorded before anything is submitted
 * again, so no job is ever submitted twice.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { CompiledPlan } from "../plan/plan.js";
import { RunStateError } from "../runs/index.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import { AccountingDisabledError, failureOf, parseTaggedSacct, parseTaggedSqueue, taggedSacctArgv, taggedSqueueArgv } from "../slurm/index.js";

export { parseTaggedSacct, parseTaggedSqueue, RECONCILE_SQUEUE_FORMAT } from "../slurm/index.js";
import type { Transport } from "../transport/index.js";
import type { RunContext } from "./run-context.js";

/** What the cluster says about the jobs of one run. */
export interface FoundJobs {
  /** SLURM job id per plan job id (array job id for arrays). */
  jobs: Record<string, string>;
  /** Contradictions (a plan job on the cluster twice): never guessed around. */
  problems: string[];
  /** Scheduler queries made (1 or 2). */
  queries: number;
}

function addFound(found: Map<string, Set<string>>, planId: string, slurmId: string): void {
  const ids = found.get(planId) ?? new Set<string>();
  ids.add(slurmId);
  found.set(planId, ids);
}

/**
 * Which plan jobs of the run are on the cluster: ONE squeue over the user's
 * jobs (finished ones too, while slurmctld keeps them), and when some plan
 * job is not there, ONE sacct (skipped when accounting is disabled). Jobs of
 * earlier attempts (the record's history) are left out.
 */
export async function findRunJobs(transport: Transport, record: RunRecord, plan: Pick<CompiledPlan, "jobs">): Promise<FoundJobs> {
  const known = new Map(plan.jobs.map((j) => [j.id, j]));
  const earlier = new Set((record.history ?? []).flatMap((h) => Object.values(h.jobs)));
  const found = new Map<string, Set<string>>();
  const take = (list: Array<{ planId: string; slurmId: string }>): void => {
    for (const { planId, slurmId } of list) if (known.has(planId) && !earlier.has(slurmId)) addFound(found, planId, slurmId);
  };
  const run = async (argv: string[]): Promise<string> => {
    const result = await transport.exec(argv, { retrySafe: true, timeoutMs: 120_000 });
    const code = result.code ?? -1;
    if (code !== 0) throw failureOf(argv, { code, stdout: result.stdout, stderr: result.stderr });
    return result.stdout;
  };
  let queries = 1;
  take(parseTaggedSqueue(await run(taggedSqueueArgv()), record.run_id));
  const missing = plan.jobs.filter((j) => !found.has(j.id));
  if (missing.length > 0) {
    queries += 1;
    // Names are hp-<plan job id>-<step name>: letters, digits, '_', '-' only.
    const names = [...new Set(missing.map((j) => j.name))].filter((n) => /^[A-Za-z0-9_.-]+$/.test(n));
    try {
      if (names.length > 0) {
        take(parseTaggedSacct(await run(taggedSacctArgv(names, record.created)), record.run_id));
      }
    } catch (error) {
      if (!(error instanceof AccountingDisabledError)) throw error;
    }
  }
  const jobs: Record<string, string> = {};
  const problems: string[] = [];
  for (const job of plan.jobs) {
    const ids = [...(found.get(job.id) ?? [])];
    const recorded = record.jobs[job.id];
    if (recorded !== undefined && !ids.includes(recorded)) ids.push(recorded);
    if (ids.length > 1) problems.push(`plan job ${job.id} (${job.steps.join(", ")}) is on the cluster ${ids.length} times (SLURM ${ids.sort().join(", ")})`);
    else if (ids[0] !== undefined) jobs[job.id] = ids[0];
  }
  return { jobs, problems, queries };
}

/** The local mark of a submitter at work: `<run dir>/submitter.json`. */
export function submitterFile(store: RunStore, runId: string): string {
  return join(store.runDir(runId), "submitter.json");
}

/** Marks this process as the run's submitter (removed by `clearSubmitter`). */
export async function markSubmitter(store: RunStore, runId: string): Promise<void> {
  await writeFile(submitterFile(store, runId), `${JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() })}\n`, { mode: 0o600 });
}

export async function clearSubmitter(store: RunStore, runId: string): Promise<void> {
  await rm(submitterFile(store, runId), { force: true });
}

/** The pid of another live process on this machine that is submitting the run, or null. */
export async function liveSubmitter(store: RunStore, runId: string): Promise<number | null> {
  let mark: unknown;
  try {
    mark = JSON.parse(await readFile(submitterFile(store, runId), "utf8"));
  } catch {
    return null;
  }
  const { pid, host } = (mark ?? {}) as { pid?: unknown; host?: unknown };
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0 || pid === process.pid || host !== hostname()) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: alive but not ours to signal; anything else: gone.
    return (error as NodeJS.ErrnoException).code === "EPERM" ? pid : null;
  }
}

/** Pids of the user's processes on the cluster (this login host) running the run's submit script. */
export async function remoteSubmitScripts(transport: Transport, runId: string): Promise<number[]> {
  const result = await transport.exec(["ps", "-x", "-o", "pid=,args="], { retrySafe: true, timeoutMs: 60_000 });
  if (result.code !== 0) return [];
  const needle = `/${runId}/scripts/submit.sh`;
  return result.stdout
    .split("\n")
    .filter((line) => line.includes(needle))
    .map((line) => Number(line.trim().split(/\s+/)[0]))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

export interface ReconcileOptions {
  /** How long to wait for a submit script still running on the cluster (default 60 s). */
  waitMs?: number;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  onProgress?: (message: string) => void;
}

export interface Reconciliation {
  /** The record after reconciling (unchanged when it was not "submitting"). */
  record: RunRecord;
  /** Every plan job is on the cluster: the submission had completed. */
  complete: boolean;
  /** Plan jobs no SLURM job answers to (never submitted). */
  missing: string[];
  /** False when the record was not in phase "submitting" (nothing to do). */
  reconciled: boolean;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * For a record left in phase "submitting": refuses while another local
 * process is still submitting the run, waits (bounded) until no submit
 * script of the run runs on the cluster, finds the run's jobs there and
 * records them:
 * - every plan job found: phase "submitted" (the submission had completed);
 * - none: phase "submit_failed", nothing was submitted;
 * - some: phase "submitted" with the found ids, the others show as never
 *   submitted and the record's error says so (`submit --resume` submits
 *   them once the submitted jobs have ended).
 * A plan job found twice is refused (RunStateError), never guessed around.
 */
export async function reconcileSubmission(
  ctx: { store: RunStore; record: RunRecord; plan: Pick<CompiledPlan, "jobs">; transport: Transport },
  options: ReconcileOptions = {},
): Promise<Reconciliation> {
  const { store, plan, transport } = ctx;
  const record = ctx.record;
  const runId = record.run_id;
  if (record.phase !== "submitting") return { record, complete: plan.jobs.every((j) => record.jobs[j.id] !== undefined), missing: [], reconciled: false };
  const progress = options.onProgress ?? (() => undefined);
  const local = await liveSubmitter(store, runId);
  if (local !== null) {
    throw new RunStateError(
      `run ${runId} is being submitted right now by process ${local} on this machine; try again once it has finished ` +
        `(if no hpcpipe process has pid ${local}, remove ${submitterFile(store, runId)})`,
      runId,
    );
  }
  const sleep = options.sleep ?? defaultSleep;
  const deadline = Date.now() + (options.waitMs ?? 60_000);
  for (let pids = await remoteSubmitScripts(transport, runId); pids.length > 0; pids = await remoteSubmitScripts(transport, runId)) {
    if (Date.now() >= deadline) {
      throw new RunStateError(`run ${runId}: its submit script is still running on the cluster (pid ${pids.join(", ")}); try again once it has finished`, runId);
    }
    progress(`run ${runId}: waiting for its submit script on the cluster to finish (pid ${pids.join(", ")})`);
    await sleep(options.pollMs ?? 1_000);
  }
  const found = await findRunJobs(transport, record, plan);
  if (found.problems.length > 0) {
    const error = `reconciling the submission from the cluster found contradictions: ${found.problems.join("; ")}; cancel the extra job(s) by hand`;
    await store.updateRecord(runId, { error: error.slice(0, 60_000) });
    throw new RunStateError(`run ${runId}: ${error}`, runId);
  }
  const missing = plan.jobs.filter((j) => found.jobs[j.id] === undefined);
  const count = Object.keys(found.jobs).length;
  const tag = `hpcpipe:${runId}`;
  let updated: RunRecord;
  if (missing.length === 0) {
    updated = await store.updateRecord(runId, { phase: "submitted", jobs: found.jobs, error: null });
    progress(`run ${runId}: its submission had completed: all ${count} job(s) found on the cluster (comment ${tag}) and recorded`);
  } else if (count === 0) {
    const error = `the submission was interrupted before any job was submitted (reconciled from the cluster: no job carries the comment ${tag})`;
    updated = await store.updateRecord(runId, { phase: "submit_failed", jobs: {}, error });
    progress(`run ${runId}: ${error}`);
  } else {
    const never = missing.map((j) => `${j.id} (${j.steps.join(", ")})`).join(", ");
    const error =
      `the submission was interrupted after ${count} of ${plan.jobs.length} job(s) (reconciled from the cluster, comment ${tag}); ` +
      `never submitted: ${never}; once the submitted jobs have ended, \`hpcpipe submit ... --resume ${runId}\` submits the rest`;
    updated = await store.updateRecord(runId, { phase: "submitted", jobs: found.jobs, error: error.slice(0, 60_000) });
    progress(`run ${runId}: ${error}`);
  }
  return { record: updated, complete: missing.length === 0, missing: missing.map((j) => j.id), reconciled: true };
}

/**
 * A run context whose record no longer says "submitting": reconciled from
 * the cluster first when it did (for status, cancel, collect and logs).
 */
export async function reconcileRun(run: RunContext, options: ReconcileOptions = {}): Promise<RunContext> {
  if (run.record.phase !== "submitting") return run;
  const { record } = await reconcileSubmission(run, options);
  return { ...run, record };
}
