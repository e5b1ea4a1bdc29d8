/**
 * Sending a run over an open connection, in a constant number of round
 * trips: ONE upload of the plan's files (the bundle's blobs go through the
 * store, sending only the missing ones), then ONE run of the submit script,
 * then the outcome recorded. The record is in phase "submitting" on entry.
 */
import type { CompiledPlan } from "../plan/plan.js";
import { taskCount } from "../plan/task-map.js";
import type { RunRecord } from "../runs/index.js";
import { ensureBlobs, layoutWithRepair, storeDir } from "../store/index.js";
import type { StagedFile, StageOptions } from "../store/index.js";
import { parseFetchedStates } from "./collect.js";
import type { RemoteStates } from "./collect.js";
import { schedulerOver } from "./connect.js";
import { clearSubmitter } from "./reconcile.js";
import type { AfterSubmit, Submitted, SubmitOutcome } from "./submit-options.js";
import { recordSubmission } from "./submit-result.js";
import { runSubmitScript } from "./submit-script.js";
import type { ScriptContext } from "./submit-script.js";

/** What a submission sends: the plan and its files, after the step cache (if asked) left out what it restores. */
export interface Sendable {
  plan: CompiledPlan;
  files: Map<string, string | Buffer>;
  executable: Set<string>;
  /** Declared outputs of the steps restored from the step cache, laid out from the store. */
  cachedOutputs: StagedFile[];
}

export interface SendContext extends ScriptContext, Sendable {
  /** The spec's bundle files, hashed: staged through the cluster's content-addressed store. */
  staged: StagedFile[];
  /** Bytes of bundle blobs sent so far, of the total to send (for a progress bar). */
  onTransfer?: ((sent: number, total: number) => void) | undefined;
}

/** What a sending hands on: the outcome, without the files it sent. */
export interface Sent {
  record: RunRecord;
  plan: CompiledPlan;
  /** Channels the submission itself used (upload + submit script). */
  roundTrips: number;
  /** The state files among the uploaded files, when no job was submitted (every step restored from the step cache). */
  sentStates?: RemoteStates;
}

/**
 * ONE upload of the bundle and ONE run of the submit script over an open
 * connection, recording the outcome (the record is in phase "submitting").
 */
export async function sendRun(ctx: SendContext): Promise<Sent> {
  const { transport, plan, store, progress } = ctx;
  const before = transport.roundTrips;
  await uploadRun(ctx);
  if (plan.jobs.length === 0) {
    // Every step was restored from the step cache: the run is complete without a job.
    const record = await store.updateRecord(plan.runId, { phase: "submitted", jobs: {}, error: null });
    await clearSubmitter(store, plan.runId);
    progress("every step was restored from the step cache; nothing to submit");
    return { record, plan, roundTrips: transport.roundTrips - before, sentStates: sentStates(ctx.files) };
  }
  const tasks = plan.jobs.reduce((n, j) => n + taskCount(j), 0);
  // Finished jobs stay in slurmctld for MinJobAge and other users' jobs count too: near the limit is enough to wait.
  if (tasks > ctx.config.max_job_count * 0.9) {
    progress(
      `note: ${tasks} jobs and array tasks are close to or over the cluster's MaxJobCount (max_job_count: ${ctx.config.max_job_count} in the cluster config): ` +
        "SLURM counts every task of a pending array, so sbatch waits (\"sleeping and retrying\") until earlier tasks end and leave slurmctld " +
        "(MinJobAge), and after about 13 minutes of waiting (sbatch tries for 2 minutes, 6 times) the submission fails; more items per task (items_per_task) makes fewer tasks",
    );
  }
  progress(`submitting ${plan.jobs.length} job(s)`);
  const ran = await runSubmitScript(ctx);
  if ("record" in ran) {
    // The connection dropped under the script, and the cluster showed that the submission had completed.
    await clearSubmitter(store, plan.runId);
    return { record: ran.record, plan, roundTrips: transport.roundTrips - before };
  }
  const roundTrips = transport.roundTrips - before;
  const record = await recordSubmission(store, plan, ran.result);
  // What the script said on the way (sbatch warnings, transient errors it retried) is worth showing: shown as
  // it came, or here when the transport did not stream it.
  if (ran.shown === 0) for (const line of ran.result.stderr.split("\n").filter((l) => l.trim() !== "").slice(0, 20)) progress(`submit script: ${line.slice(0, 500)}`);
  return { record, plan, roundTrips };
}

/** Runs `then` (when asked) over the submission's connection, then closes it; the outcome of the whole submission. */
export async function finishSubmit<T>(sent: Submitted, then: AfterSubmit<T> | undefined): Promise<SubmitOutcome<T>> {
  try {
    const { store, record, plan, config, transport, sentStates: states } = sent;
    const after = then && sent.runThen ? await then({ store, record, plan, config, transport, scheduler: schedulerOver(transport), ...(states ? { sentStates: states } : {}) }) : undefined;
    return { record, plan, roundTrips: sent.roundTrips, then: after };
  } finally {
    await sent.close();
  }
}

/** The state files among a run's uploaded files, as a read of its states/ would return them. */
function sentStates(files: ReadonlyMap<string, string | Buffer>): RemoteStates {
  const states = new Map<string, Buffer>();
  for (const [path, text] of files) if (/^states\/[^/]+\.json$/.test(path)) states.set(path, Buffer.isBuffer(text) ? text : Buffer.from(text));
  return parseFetchedStates(states);
}

/** Stages the bundle's blobs, uploads the plan's files, lays out the run's work directory; a failure is recorded ("submit_failed": nothing was submitted) and thrown. */
async function uploadRun(ctx: SendContext): Promise<void> {
  const { transport, plan, config, store, files, executable, staged, cachedOutputs, progress } = ctx;
  const storeOptions: StageOptions = { store: storeDir(config), group: config.store_group, timeoutMs: 6 * 60 * 60_000, ...(ctx.onTransfer ? { onBytes: ctx.onTransfer } : {}) };
  try {
    const status = { onStatus: progress };
    if (staged.length > 0) await ensureBlobs(transport, staged, { ...storeOptions, ...status });
    progress(`uploading ${files.size} file(s) to ${config.name}:${plan.layout.runDir}`);
    await transport.putFiles(plan.layout.runDir, files, { executable, timeoutMs: 30 * 60_000 });
    // The bundle and the restored steps' outputs in ONE layout (a bad bundle blob is sent again; a lost output fails it).
    if (staged.length > 0 || cachedOutputs.length > 0) await layoutWithRepair(transport, plan.layout.runDir, staged, { ...storeOptions, ...status }, cachedOutputs);
  } catch (error) {
    await store.updateRecord(plan.runId, { phase: "submit_failed", error: `the upload failed, nothing was submitted: ${(error as Error).message}`.slice(0, 60_000) });
    throw error;
  }
}
