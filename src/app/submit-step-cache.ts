/**
 * The step cache's phase of a submission, over the open connection: ask the
 * store which steps it can restore, and send the plan that leaves them out,
 * with the files that restore them. A failed query is recorded
 * ("submit_failed": nothing was submitted) and thrown.
 */
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { RunStore } from "../runs/index.js";
import type { StagedFile } from "../store/index.js";
import type { Transport } from "../transport/index.js";
import { cacheKeyFiles } from "./bundle-path.js";
import { applyStepCache } from "./step-cache.js";
import { submissionFiles } from "./submit-bundle.js";
import type { Sendable } from "./submit-send.js";

/** What the step cache phase needs: the prepared plan, what was staged, and how to compile again without the done steps. */
export interface StepCacheInput {
  transport: Transport;
  store: RunStore;
  config: ClusterConfig;
  plan: CompiledPlan;
  staged: readonly StagedFile[];
  /** Compiles the plan again leaving out the steps in `done` (same run id). */
  recompile: (done: ReadonlySet<string>) => CompiledPlan;
  progress: (message: string) => void;
}

/** The plan and files to send after the step cache; writes plan.json again when the plan changed. */
export async function withStepCache(input: StepCacheInput): Promise<Sendable> {
  const { transport, store, config, plan, staged, recompile, progress } = input;
  let cached;
  try {
    cached = await applyStepCache(transport, plan, cacheKeyFiles(staged, plan), config, recompile, progress);
  } catch (error) {
    await store.updateRecord(plan.runId, { phase: "submit_failed", error: `asking the step cache failed, nothing was submitted: ${(error as Error).message}`.slice(0, 60_000) });
    throw error;
  }
  const upload = submissionFiles(cached.plan, new Map());
  for (const [path, text] of cached.files) upload.files.set(path, text);
  if (cached.plan !== plan) await store.writePlan(cached.plan);
  return { plan: cached.plan, files: upload.files, executable: upload.executable, cachedOutputs: cached.outputs };
}

/** The plan and files to send without the step cache (`--no-cache`, a resumed run). */
export function withoutStepCache(plan: CompiledPlan): Sendable {
  const { files, executable } = submissionFiles(plan, new Map());
  return { plan, files, executable, cachedOutputs: [] };
}
