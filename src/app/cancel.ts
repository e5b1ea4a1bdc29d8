/** Cancelling a run: ONE batched scancel for every job it submitted; the record says "cancelled". */
import { RunStateError } from "../runs/index.js";
import type { RunRecord } from "../runs/index.js";
import { requireJobIds } from "./collect.js";
import type { RunContext } from "./connect.js";

export interface CancelOutcome {
  /** SLURM job ids passed to scancel (array job ids cancel every task). */
  cancelled: string[];
  record: RunRecord;
}

export async function cancelRun(run: RunContext): Promise<CancelOutcome> {
  const { record } = run;
  requireJobIds(record);
  const ids = [...new Set(Object.values(record.jobs))];
  if (ids.length === 0) {
    throw new RunStateError(`run ${record.run_id} has no submitted jobs to cancel (phase ${record.phase}${record.error ? `: ${record.error}` : ""})`, record.run_id);
  }
  await run.scheduler.cancel(ids);
  const updated = await run.store.updateRecord(record.run_id, { phase: "cancelled" });
  return { cancelled: ids, record: updated };
}
