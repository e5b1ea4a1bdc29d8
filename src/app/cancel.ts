/** Cancelling a run: its executor stops every job (one batched scancel on a cluster); the record says "cancelled". */
import type { RunContext } from "./connect.js";
import type { CancelOutcome, RunExecutor } from "./executor.js";
import { executorOf } from "./slurm-executor.js";

export type { CancelOutcome } from "./executor.js";

export function cancelRun(run: RunContext | RunExecutor): Promise<CancelOutcome> {
  return executorOf(run).cancel();
}
