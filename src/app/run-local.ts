import { cp, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeJsonAtomic } from "../core/atomic-json.js";
import type { CompletedState } from "../core/completed-state.js";
import type { Logger } from "../core/logger.js";
import { runPlanLocally } from "../local/index.js";
import type { LocalJobResult, LocalRunEvent } from "../local/index.js";
import { bundleSource } from "./bundle-path.js";
import type { PreparedPlan } from "./prepare.js";

export interface LocalRunOutcome {
  state: CompletedState;
  runDir: string;
  jobs: Map<string, LocalJobResult>;
  /** Where the merged result was written. */
  resultPath: string;
}

/** Copies the spec's `bundle` paths into the run's work directory; refuses paths outside the spec's directory. */
export async function copyBundle(specDir: string, paths: readonly string[], workDir: string): Promise<void> {
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  for (const original of paths) {
    const { from, rel } = await bundleSource(specDir, original);
    await cp(from, join(workDir, rel), { recursive: true, errorOnExist: false, force: true });
  }
}

/**
 * Runs a prepared plan with the local executor: the same job scripts, with
 * bash, dependencies and arrays honoured; then writes the merged result to
 * `<run dir>/result.json`.
 */
export async function runLocal(
  prepared: PreparedPlan,
  options: { cpus?: number; signal?: AbortSignal; logger?: Logger; onEvent?: (e: LocalRunEvent) => void } = {},
): Promise<LocalRunOutcome> {
  const { plan, loaded } = prepared;
  const runDir = plan.layout.runDir;
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  await copyBundle(loaded.specDir, loaded.bundle, join(runDir, plan.layout.work));
  // The compiled plan beside the result, as a cluster run's record keeps it: `hpcpipe report` reads the tree from it.
  await writeJsonAtomic(join(runDir, "plan.json"), plan, { mode: 0o600 });
  const result = await runPlanLocally(plan, {
    runDir,
    ...(options.cpus !== undefined ? { cpus: options.cpus } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
  const resultPath = join(runDir, "result.json");
  await writeJsonAtomic(resultPath, result.state, { mode: 0o600 });
  return { state: result.state, runDir: result.runDir, jobs: result.jobs, resultPath };
}
