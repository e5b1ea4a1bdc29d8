/**
 * What a submission uploads: the plan's files (scripts, lib.sh, context,
 * items) sent as they are, and the spec's bundle files and map item files
 * hashed and staged through the cluster's content-addressed store.
 */
import { readFile } from "node:fs/promises";
import { executableBundleFiles } from "../plan/bundle-files.js";
import type { CompiledPlan } from "../plan/plan.js";
import { formatBytes, hashBundle } from "../store/index.js";
import type { StagedFile } from "../store/index.js";
import { BundleError, listBundleFiles, withInputs } from "./bundle-path.js";
import type { PreparedPlan } from "./prepare.js";

/** Most bytes of the spec's bundle files sent in one submission (they travel in one tar stream held in memory). */
export const MAX_BUNDLE_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * The spec's `bundle` paths (files or directories, relative to the spec's
 * directory) read from disk, keyed `work/<path>`. Refuses paths outside the
 * spec's directory, symlinked directories and special files.
 */
export async function readLocalBundle(specDir: string, paths: readonly string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let total = 0;
  for (const file of await listBundleFiles(specDir, paths)) {
    total += file.size;
    if (total > MAX_BUNDLE_BYTES) throw new BundleError(`the bundle is over ${MAX_BUNDLE_BYTES} bytes; put large inputs on the cluster and name them in the context instead`);
    out.set(file.rel, await readFile(file.abs));
  }
  return out;
}

/** Every file uploaded for a run: the plan's (scripts, lib.sh, context, items) and the spec's bundle under work/. */
export function submissionFiles(plan: CompiledPlan, bundle: ReadonlyMap<string, Buffer>): { files: Map<string, string | Buffer>; executable: Set<string> } {
  const files = new Map<string, string | Buffer>();
  const executable = executableBundleFiles(plan);
  for (const [path, text] of Object.entries(plan.files)) files.set(path, text);
  for (const job of plan.jobs) if (!files.has(job.scriptPath)) files.set(job.scriptPath, job.script);
  for (const [path, data] of bundle) {
    if (files.has(path)) throw new BundleError(`bundle file ${path} collides with a file of the plan`);
    files.set(path, data);
  }
  return { files, executable };
}

/** The spec's bundle files with their SHA-256 (read as streams; no size cap: nothing is held in memory). */
export async function stagedBundle(specDir: string, paths: readonly string[], progress: (message: string) => void, hashCacheDir: string | null): Promise<StagedFile[]> {
  const files = await listBundleFiles(specDir, paths);
  if (files.length === 0) return [];
  const bytes = files.reduce((t, f) => t + f.size, 0);
  progress(`hashing ${files.length} bundle file(s), ${formatBytes(bytes)}`);
  // Files unchanged since they were last hashed here keep their hash (size, times and inode checked).
  return hashBundle(files, hashCacheDir);
}

/** Everything staged through the store: the hashed bundle, then the map item files (a clash of paths is refused). */
export async function stagedInputs(loaded: PreparedPlan["loaded"], progress: (message: string) => void, hashCacheDir: string | null): Promise<StagedFile[]> {
  return withInputs(await stagedBundle(loaded.specDir, loaded.bundle, progress, hashCacheDir), loaded.inputs);
}
