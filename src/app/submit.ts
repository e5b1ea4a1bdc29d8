/**
 * Submitting a pipeline to a SLURM cluster over SSH, in a constant number of
 * round trips: the run record and plan are written locally first; then ONE
 * upload of the whole bundle (scripts, context, items, the spec's bundle
 * files under work/) and ONE run of the generated submit script, whose
 * `hpcpipe-job <plan job> <slurm id>` lines are recorded.
 *
 * The phases live beside this file: submit-prepare (spec, config, plan, the
 * first record), submit-bundle (what is uploaded and staged),
 * submit-connect, submit-step-cache, submit-send (upload, then
 * submit-script and submit-result), submit-resume (`--resume`) and
 * submit-wait (`--wait`, Ctrl-C).
 */
import { markTiming } from "../core/timing.js";
import { RunStore } from "../runs/index.js";
import type { Transport } from "../transport/index.js";
import { connectOptionsOf, defaultTransportFactory } from "./connect.js";
import { clearSubmitter } from "./reconcile.js";
import { stagedInputs } from "./submit-bundle.js";
import { connectEarly, connectForSubmit, dropEarly, letConnectStart } from "./submit-connect.js";
import type { AfterSubmit, Submitted, SubmitOptions, SubmitOutcome } from "./submit-options.js";
import { firstRecord, prepareFor, recordBeforeContact, requireSlurm } from "./submit-prepare.js";
import { resumeRun } from "./submit-resume.js";
import { finishSubmit, sendRun } from "./submit-send.js";
import { withoutStepCache, withStepCache } from "./submit-step-cache.js";

export { parseSubmitOutput } from "../slurm/index.js";
export { BundleError } from "./bundle-path.js";
export { MAX_BUNDLE_BYTES, readLocalBundle, submissionFiles } from "./submit-bundle.js";
export type { SubmitOptions, SubmitOutcome } from "./submit-options.js";
export { SubmitFailedError, SubmitOutputError } from "./submit-result.js";
export { submitScriptArgv } from "./submit-script.js";
export { handleInterrupt, waitAndCollect } from "./submit-wait.js";
export type { InterruptPolicy, WaitOutcome } from "./submit-wait.js";

/**
 * Submits a pipeline: prepare the plan; write the run record ("submitting")
 * and plan.json before contacting the cluster; connect once; upload the
 * bundle in ONE round trip; run the submit script with ONE exec (never
 * retried: a blind re-submit could run every job twice); record the job ids
 * ("submitted"), or the sbatch error and the jobs the script cancelled
 * ("submit_failed"). `then` runs over the same connection after a
 * successful submission (e.g. watch and collect), once what only the
 * sending needed is let go.
 */
export async function submitRun<T = undefined>(options: SubmitOptions, then?: AfterSubmit<T>): Promise<SubmitOutcome<T>> {
  const store = options.store ?? new RunStore();
  const sent = options.resume !== undefined ? await resumeRun(options, options.resume, store) : await sendNewRun(options, store);
  return finishSubmit(sent, then);
}

/** A new run, compiled, asked of the step cache and sent; the connection stays open for what follows. */
async function sendNewRun(options: SubmitOptions, store: RunStore): Promise<Submitted> {
  const progress = options.onProgress ?? (() => undefined);
  const connect = options.connect ?? defaultTransportFactory;
  // The spec, its values and the cluster config are checked before anything reaches the cluster: a
  // refused input opens no connection (and asks no one for a one-time code).
  const { plan, loaded, config } = prepareFor(options, options.runId);
  markTiming("prepared");
  requireSlurm(config, options);
  const early = options.connectEarly ? connectEarly(config, options, connect) : null;
  if (early !== null) await letConnectStart(early);
  const staged = await stagedInputs(loaded, progress, store.root).catch(async (error: unknown) => {
    dropEarly(early);
    throw error;
  });
  await recordBeforeContact(store, plan, firstRecord(plan, config, options, store.now()));
  let transport: Transport | undefined;
  try {
    transport = await connectForSubmit(store, plan.runId, config, () => early ?? connect(config, connectOptionsOf(options)));
    const sendable =
      options.cache === false
        ? withoutStepCache(plan)
        : await withStepCache({ transport, store, config, plan, staged, recompile: (done) => prepareFor(options, plan.runId, done).plan, progress });
    markTiming("cache-applied");
    const sent = await sendRun({ transport, config, store, ...sendable, staged, progress, submitTimeoutMs: options.submitTimeoutMs, onTransfer: options.onTransfer });
    return { ...sent, store, config, transport, runThen: true, close: closer(transport, store, plan.runId) };
  } catch (error) {
    try {
      await transport?.close();
    } finally {
      await clearSubmitter(store, plan.runId);
    }
    throw error;
  }
}

/** Closes the connection, then clears the submitter mark. Its own function: a closure made in sendNewRun would keep that function's first plan alive. */
function closer(transport: Transport, store: RunStore, runId: string): () => Promise<void> {
  return async () => {
    try {
      await transport.close();
    } finally {
      await clearSubmitter(store, runId);
    }
  };
}
