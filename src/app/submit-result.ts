/**
 * Recording what the submit script printed: the SLURM job id of every plan
 * job ("submitted"), or the sbatch error and the jobs the script cancelled
 * ("submit_failed"), or output that cannot be trusted ("submit_failed", the
 * ids it did report kept so that the run can be cancelled).
 */
import { markTiming } from "../core/timing.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import { parseSubmitOutput } from "../slurm/index.js";
import type { ExecResult } from "../transport/index.js";
import { clearSubmitter } from "./reconcile.js";

/** The submit script failed (an sbatch error it could not retry away); it cancelled what it had submitted. */
export class SubmitFailedError extends Error {
  override name = "SubmitFailedError";
  constructor(
    message: string,
    readonly runId: string,
    readonly record: RunRecord,
  ) {
    super(message);
  }
}

/** The submit script printed job lines hpcpipe cannot trust (unknown plan job, not a job id, a job twice). */
export class SubmitOutputError extends Error {
  override name = "SubmitOutputError";
  constructor(
    message: string,
    readonly problems: readonly string[],
  ) {
    super(message);
  }
}

function tail(text: string, max = 4000): string {
  const t = text.trim();
  return t.length <= max ? t : `...${t.slice(t.length - max)}`;
}

/** The plan job the submit script stopped at (the first one it reported no id for), for messages. */
function stoppedAt(plan: CompiledPlan, jobs: Readonly<Record<string, string>>): string {
  const job = plan.jobs.find((j) => jobs[j.id] === undefined);
  if (!job) return "";
  const steps = job.steps.length > 4 ? `${job.steps.slice(0, 4).join(", ")}, ...` : job.steps.join(", ");
  return `at job ${job.id} (${steps})`;
}

/** Records the submit script's outcome; returns the "submitted" record, or throws SubmitFailedError or SubmitOutputError once it is recorded. */
export async function recordSubmission(store: RunStore, plan: CompiledPlan, result: ExecResult): Promise<RunRecord> {
  const { jobs, problems } = parseSubmitOutput(result.stdout, plan);
  const ids = Object.values(jobs);
  if (result.code !== 0) {
    const error = `the submit script failed (exit ${result.code ?? result.signal}): ${tail(result.stderr) || "no message"}`;
    const stopped = stoppedAt(plan, jobs);
    const record = await store.updateRecord(plan.runId, { phase: "submit_failed", jobs, error: [error, ...(stopped ? [`it stopped ${stopped}`] : []), ...problems].join("\n").slice(0, 60_000) });
    await clearSubmitter(store, plan.runId);
    const cancelled = ids.length > 0 ? ` It cancelled the ${ids.length} job(s) it had submitted (SLURM ${ids.join(", ")}).` : " No job was submitted.";
    throw new SubmitFailedError(`run ${plan.runId}: ${error}.${cancelled}${stopped ? ` The submission stopped ${stopped}.` : ""}`, plan.runId, record);
  }
  const missing = plan.jobs.filter((j) => jobs[j.id] === undefined).map((j) => j.id);
  if (problems.length > 0 || missing.length > 0) {
    const all = [...problems, ...(missing.length > 0 ? [`no SLURM job id was reported for ${missing.join(", ")}`] : [])];
    await store.updateRecord(plan.runId, { phase: "submit_failed", jobs, error: `the submit script's output could not be trusted: ${all.join("; ")}`.slice(0, 60_000) });
    throw new SubmitOutputError(
      `run ${plan.runId}: the submit script's output could not be trusted:\n  ${all.join("\n  ")}\n` +
        `The job ids it did report are recorded: \`hpcpipe cancel ${plan.runId}\` cancels them.`,
      all,
    );
  }
  markTiming("submitted");
  const record = await store.updateRecord(plan.runId, { phase: "submitted", jobs, error: null });
  await clearSubmitter(store, plan.runId);
  return record;
}
