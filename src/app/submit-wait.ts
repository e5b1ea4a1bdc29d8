/** After a submission: `submit --wait` watches and collects; Ctrl-C applies the interrupt policy. */
import { markTiming } from "../core/timing.js";
import { cancelRun } from "./cancel.js";
import type { CancelOutcome } from "./cancel.js";
import { collectRun } from "./collect.js";
import type { CollectOutcome } from "./collect.js";
import type { RunContext } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { watchRun } from "./status.js";
import type { WatchOptions, WatchOutcome } from "./status.js";

/** What to do with a run's jobs when Ctrl-C interrupts `submit --wait`. */
export type InterruptPolicy = "cancel" | "leave" | "ask";

/** Applies the interrupt policy; `ask` asks (true = cancel). Returns the cancellation, or null when the jobs were left running. */
export async function handleInterrupt(run: RunContext | RunExecutor, policy: InterruptPolicy, ask: () => Promise<boolean>): Promise<CancelOutcome | null> {
  const cancel = policy === "cancel" || (policy === "ask" && (await ask()));
  return cancel ? cancelRun(run) : null;
}

export interface WaitOutcome {
  watch: WatchOutcome;
  /** Null when the watch was interrupted. */
  collect: CollectOutcome | null;
}

/** `submit --wait`: watch until every job is final, then collect (reusing the last poll's job facts). */
export async function waitAndCollect(run: RunContext | RunExecutor, options: WatchOptions = {}): Promise<WaitOutcome> {
  const watch = await watchRun(run, options);
  if (watch.aborted) return { watch, collect: null };
  const collect = await collectRun(run, { jobs: watch.status.jobs, ...(watch.remote ? { remote: watch.remote } : {}), ...(watch.merged && watch.remote ? { merged: watch.merged } : {}) });
  markTiming("collected");
  return { watch, collect };
}
