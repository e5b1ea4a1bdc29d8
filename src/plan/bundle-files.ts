/**
 * ONE rule for which files of a run's bundle are executable, and their
 * modes, wherever the bundle is written: uploaded to the cluster, laid out
 * for the local executor, or written by `submit --dry-run --out`. The job
 * scripts and the shell scripts under scripts/ (submit.sh, lib.sh) are
 * executable by their owner only; everything else (context, items) is
 * private data.
 */
import type { CompiledPlan } from "./plan.js";

export const EXECUTABLE_MODE = 0o700;
export const FILE_MODE = 0o600;

/** The bundle paths that must be executable: every job's script, and `scripts/*.sh|*.sbatch`. */
export function executableBundleFiles(plan: Pick<CompiledPlan, "files" | "jobs">): Set<string> {
  const out = new Set<string>(plan.jobs.map((j) => j.scriptPath));
  for (const path of Object.keys(plan.files)) if (path.startsWith("scripts/") && (path.endsWith(".sh") || path.endsWith(".sbatch"))) out.add(path);
  return out;
}

/** The mode a bundle file is written with. */
export function bundleFileMode(path: string, executable: ReadonlySet<string>): number {
  return executable.has(path) ? EXECUTABLE_MODE : FILE_MODE;
}
