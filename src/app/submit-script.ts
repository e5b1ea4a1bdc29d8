/**
 * Running the generated submit script: ONE exec, never retried blindly (a
 * blind re-submit could run every job twice). When the connection drops
 * under it, the cluster is asked which jobs exist before anything is
 * submitted again.
 */
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import { parseSubmitOutput } from "../slurm/index.js";
import { ConnectionLostError, remotePath, RemoteCommandError } from "../transport/index.js";
import type { ExecResult, ShellWord, Transport } from "../transport/index.js";
import { reconcileSubmission } from "./reconcile.js";

/** What running the submit script needs. */
export interface ScriptContext {
  transport: Transport;
  plan: CompiledPlan;
  config: ClusterConfig;
  store: RunStore;
  progress: (message: string) => void;
  /** Bound on the submit script; default 30 min. */
  submitTimeoutMs?: number | undefined;
}

/** The fixed script that puts `path_prepend` first in PATH, then runs the submit script (all values are arguments). */
const PATH_PREPEND_SCRIPT = 'p=; while [ "$#" -gt 1 ]; do p="$p$1:"; shift; done; PATH="$p$PATH"; export PATH; exec bash "$1"';

/** Lines of the submit script's stderr shown as progress. */
const SHOWN_LINES = 20;

/** How the submit script is run: `bash <run dir>/scripts/submit.sh`, with the config's `path_prepend` first in PATH. */
export function submitScriptArgv(config: Pick<ClusterConfig, "path_prepend">, runDir: string): ShellWord[] {
  const script = remotePath(`${runDir}/scripts/submit.sh`);
  const prepend = config.path_prepend ?? [];
  if (prepend.length === 0) return ["bash", script];
  return ["bash", "-c", PATH_PREPEND_SCRIPT, "hpcpipe-submit", ...prepend.map((dir) => remotePath(dir)), script];
}

/**
 * Runs the submit script over the open connection (the record is in phase
 * "submitting"). Returns its result, or the reconciled record when the
 * connection dropped and every job turned out to be on the cluster. When it
 * fails otherwise, the record keeps "submitting" with what is known (the job
 * ids it printed) and the error is thrown.
 */
export async function runSubmitScript(ctx: ScriptContext): Promise<{ result: ExecResult; shown: number } | { record: RunRecord }> {
  const { transport, plan, config, store, progress } = ctx;
  // What the script says on the way (sbatch's warnings, its "temporarily unable to accept job, sleeping
  // and retrying" while the cluster is at MaxJobCount, our retries) is shown as it comes: a submission
  // can wait minutes there. At most SHOWN_LINES lines.
  let shown = 0;
  const onStderrLine = (line: string): void => {
    if (line.trim() === "") return;
    shown += 1;
    if (shown <= SHOWN_LINES) progress(`submit script: ${line.slice(0, 500)}`);
    else if (shown === SHOWN_LINES + 1) progress("submit script: (more lines, not shown)");
  };
  const runScript = (): Promise<ExecResult> =>
    transport.exec(submitScriptArgv(config, plan.layout.runDir), {
      retrySafe: false,
      timeoutMs: ctx.submitTimeoutMs ?? 30 * 60_000,
      onStderrLine,
    });
  try {
    try {
      return { result: await runScript(), shown };
    } catch (error) {
      if (!(error instanceof ConnectionLostError)) throw error;
      // The outcome is unknown: ask the cluster which jobs exist before anything is submitted again.
      const found = await reconcileAfterDrop(ctx, error);
      if (found !== "none") return { record: found };
      progress("nothing was submitted before the drop; running the submit script again");
      await store.updateRecord(plan.runId, { phase: "submitting", error: null });
      return { result: await runScript(), shown };
    }
  } catch (error) {
    // The script may have submitted some jobs: keep "submitting", say what is known.
    const partial = error instanceof RemoteCommandError ? parseSubmitOutput(error.stdout, plan).jobs : {};
    const why =
      error instanceof ConnectionLostError
        ? "the SSH connection dropped while the submit script ran"
        : `the submit script did not finish: ${(error as Error).message}`;
    const current = await store.readRecord(plan.runId);
    if (current.phase === "submitting") {
      await store.updateRecord(plan.runId, {
        jobs: { ...current.jobs, ...partial },
        error: `${why}; jobs it submitted carry the comment hpcpipe:${plan.runId} (see \`squeue --me -o '%i %k'\`)`.slice(0, 60_000),
      });
    }
    throw error;
  }
}

/**
 * After the connection dropped under the submit script: reconcile the run
 * from the cluster over a reopened connection (waiting for the script to be
 * gone there). Returns the record when every job is on the cluster (the
 * submission had completed), "none" when no job is (nothing was submitted,
 * so the script may run again); otherwise records what was found and throws
 * a ConnectionLostError saying which jobs were never submitted. When the
 * cluster cannot be asked, the original error is thrown (the record stays
 * "submitting" and a later command reconciles it).
 */
async function reconcileAfterDrop(ctx: ScriptContext, drop: ConnectionLostError): Promise<RunRecord | "none"> {
  const { store, plan, transport, progress } = ctx;
  progress("the SSH connection dropped while the submit script ran; asking the cluster which jobs were submitted before anything is submitted again");
  let outcome;
  try {
    outcome = await reconcileSubmission({ store, record: await store.readRecord(plan.runId), plan, transport }, { onProgress: progress });
  } catch (error) {
    progress(`could not reconcile now: ${(error as Error).message.split("\n")[0] ?? ""}`);
    throw drop;
  }
  if (outcome.complete) return outcome.record;
  if (Object.keys(outcome.record.jobs).length === 0) return "none";
  throw new ConnectionLostError(
    `run ${plan.runId}: the SSH connection dropped while the submit script ran, and it stopped after ${Object.keys(outcome.record.jobs).length} of ${plan.jobs.length} job(s). ` +
      `The submitted ones are recorded (\`hpcpipe status ${plan.runId}\`); never submitted: ${outcome.missing.join(", ")}. ` +
      `Once the submitted jobs have ended, \`hpcpipe submit ... --resume ${plan.runId}\` submits the rest (or \`hpcpipe cancel ${plan.runId}\`).`,
    drop.host,
    drop.port,
    drop.operation,
    { cause: drop },
  );
}
