/**
 * `submit --resume RUN`: over one connection, check that none of the run's
 * jobs still waits or runs, read its state files, and submit again only
 * what did not succeed with the same definition, into the same remote run
 * directory (steps that succeeded keep their states and published values;
 * the job wrapper also skips them). The inputs (context, items) must be the
 * ones the run was submitted with.
 */
import type { CompiledPlan } from "../plan/plan.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import type { Transport } from "../transport/index.js";
import { queryJobStatuses, spoolRemoteStates } from "./collect.js";
import { connectOptionsOf, defaultTransportFactory, loadRun, schedulerOver } from "./connect.js";
import { clearSubmitter, markSubmitter, reconcileSubmission } from "./reconcile.js";
import { checkNothingActive, checkSameInputs, doneSteps, ResumeError, statesOf } from "./resume.js";
import { stagedInputs } from "./submit-bundle.js";
import type { Submitted, SubmitOptions } from "./submit-options.js";
import { prepareFor, requireSlurm } from "./submit-prepare.js";
import { sendRun } from "./submit-send.js";
import { withoutStepCache } from "./submit-step-cache.js";

/** Resubmits what did not succeed; the connection stays open for what follows (`finishSubmit`). */
export async function resumeRun(options: SubmitOptions, runId: string, store: RunStore): Promise<Submitted> {
  const progress = options.onProgress ?? (() => undefined);
  const loadedRun = await loadRun(runId, store);
  const { plan: previousPlan, config } = loadedRun;
  let previous = loadedRun.record;
  const prepare = (done?: ReadonlySet<string>) => prepareFor(options, runId, done);
  // The spec compiled in full, to compare and to find the steps done; let go before it is compiled again
  // without them (at a million items each compiled plan is some 300 MB).
  let full: CompiledPlan | null = null;
  {
    const compiled = prepare();
    requireSlurm(compiled.config, options);
    if (compiled.config.name !== config.name) throw new ResumeError(`run ${runId} ran on cluster ${config.name}, not ${compiled.config.name}`);
    // The previous plan's items are read whole in this scope only: the run's plan stays its index.
    checkSameInputs(runId, await store.readPlan(runId), compiled.plan);
    full = compiled.plan;
  }

  const connect = options.connect ?? defaultTransportFactory;
  const transport = await connect(config, connectOptionsOf(options));
  const open = { store, config, transport, close: () => transport.close() };
  try {
    if (previous.phase === "submitting") {
      // Its submission's outcome is unknown: the cluster says which jobs exist before anything is resubmitted.
      const reconciled = await reconcileSubmission({ store, record: previous, plan: previousPlan, transport }, { onProgress: progress });
      previous = reconciled.record;
      if (reconciled.complete) {
        progress(`run ${runId}: nothing to resubmit; its jobs are recorded (hpcpipe status ${runId})`);
        return { ...open, record: previous, plan: previousPlan, roundTrips: 0, runThen: true };
      }
    }
    const done = await succeededSteps(store, runId, transport, previous, previousPlan, full);
    full = null;
    const { plan, loaded } = prepare(done);
    progress(`run ${runId}: ${done.size} step(s) already succeeded; resubmitting ${plan.jobs.length} job(s)`);
    if (plan.jobs.length === 0) {
      const record = await store.updateRecord(runId, { error: null });
      progress(`run ${runId}: every step already succeeded; nothing to resubmit (hpcpipe collect ${runId})`);
      return { ...open, record, plan: previousPlan, roundTrips: 0, runThen: false };
    }
    const staged = await stagedInputs(loaded, progress, store.root);
    const sendable = withoutStepCache(plan);
    await store.writePlan(plan);
    await store.updateRecord(runId, nextAttempt(previous, plan));
    await markSubmitter(store, runId);
    try {
      const sent = await sendRun({ transport, config, store, ...sendable, staged, progress, submitTimeoutMs: options.submitTimeoutMs, onTransfer: options.onTransfer });
      return { ...open, ...sent, runThen: true };
    } finally {
      await clearSubmitter(store, runId);
    }
  } catch (error) {
    await transport.close();
    throw error;
  }
}

/** The steps of `full` that already succeeded with the same definition; refuses while a job of the run still waits or runs. */
async function succeededSteps(store: RunStore, runId: string, transport: Transport, previous: RunRecord, previousPlan: CompiledPlan, full: CompiledPlan): Promise<ReadonlySet<string>> {
  const scheduler = schedulerOver(transport);
  if (Object.keys(previous.jobs).length > 0) checkNothingActive(runId, await queryJobStatuses(scheduler, previousPlan, previous.jobs));
  // Spooled to the run's store directory as the transfer streams in, read back one file at a time.
  const remote = await spoolRemoteStates(transport, previous.remote_dir, await store.resultDir(runId));
  try {
    return doneSteps(full, remote.source !== undefined ? statesOf(remote.source) : remote.states);
  } finally {
    remote.source?.close?.();
  }
}

/** The record's change for the next attempt: back to "submitting" with no jobs, the previous attempt kept in its history. */
function nextAttempt(previous: RunRecord, plan: CompiledPlan): Parameters<RunStore["updateRecord"]>[1] {
  const attempt = (previous.attempt ?? 1) + 1;
  const history = [...(previous.history ?? []), { attempt: previous.attempt ?? 1, jobs: previous.jobs, phase: previous.phase, updated: previous.updated }];
  return { phase: "submitting", jobs: {}, error: null, attempt, history, plan_signature: plan.signature };
}
