import { constants } from "node:fs";
import { chmod, copyFile, cp, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeJsonAtomic } from "../core/atomic-json.js";
import { writeResultFile } from "../core/result-file.js";
import type { CompletedState } from "../core/completed-state.js";
import type { Logger } from "../core/logger.js";
import { runPlanLocally } from "../local/index.js";
import type { LocalJobResult, LocalRunEvent } from "../local/index.js";
import { hashFile, mapLimit } from "../store/hash.js";
import type { StagedFile } from "../store/staging.js";
import { BundleError, bundleSource } from "./bundle-path.js";
import type { PreparedPlan } from "./prepare.js";

export interface LocalRunOutcome {
  state: CompletedState;
  runDir: string;
  jobs: Map<string, LocalJobResult>;
  /** Where the merged result was written. */
  resultPath: string;
}

/**
 * Copies the spec's `bundle` paths into the run's work directory (refusing
 * paths outside the spec's directory), then lays out the staged map item
 * files (`inputs`, keyed `work/...`) as the cluster does: same paths,
 * read-only, each copy checked against the hash the plan carries.
 */
export async function copyBundle(specDir: string, paths: readonly string[], workDir: string, inputs: readonly StagedFile[] = []): Promise<void> {
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  for (const original of paths) {
    const { from, rel } = await bundleSource(specDir, original);
    await cp(from, join(workDir, rel), { recursive: true, errorOnExist: false, force: true });
  }
  await layoutInputs(inputs, workDir);
}

/**
 * Copies (a reflink where the filesystem can) each staged file to
 * `<work>/<rel without work/>`, through a temp file and a rename, mode 0444.
 * Never a hard link: a step writing to its input must not change the user's file.
 */
export async function layoutInputs(inputs: readonly StagedFile[], workDir: string): Promise<void> {
  await mapLimit(inputs, 4, async (file) => {
    if (!file.rel.startsWith("work/")) throw new BundleError(`staged file ${file.abs} has no place under work/ (${file.rel})`);
    const dest = join(workDir, file.rel.slice("work/".length));
    const tmp = `${dest}.hpcpipe-copy.${process.pid}`;
    await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
    await copyFile(file.abs, tmp, constants.COPYFILE_FICLONE);
    const digest = await hashFile(tmp);
    if (digest.sha256 !== file.sha256) {
      await rm(tmp, { force: true });
      throw new BundleError(`${file.abs} changed since the spec was loaded (its SHA-256 is no longer ${file.sha256}); run again`);
    }
    await chmod(tmp, 0o444);
    await rename(tmp, dest);
  });
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
  await copyBundle(loaded.specDir, loaded.bundle, join(runDir, plan.layout.work), loaded.inputs);
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
  await writeResultFile(resultPath, result.state, { mode: 0o600 });
  return { state: result.state, runDir: result.runDir, jobs: result.jobs, resultPath };
}
