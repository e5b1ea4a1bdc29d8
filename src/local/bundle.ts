/**
 * Writes a compiled plan's bundle (job scripts, lib.sh, context, items) into
 * a local run directory laid out like the remote one. No path of the plan
 * may leave the run directory.
 */
import { chmod, lstat, mkdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { EXECUTABLE_MODE, executableBundleFiles, FILE_MODE } from "../plan/bundle-files.js";
import type { CompiledPlan } from "../plan/plan.js";
import { preview } from "../core/preview.js";

export class LocalRunError extends Error {
  override name = "LocalRunError";
}

/** The directories every run has, relative to the run directory. */
export const RUN_SUBDIRS = ["scripts", "states", "logs", "ctx", "out", "work", "items"] as const;

/** Checks a bundle path and returns it resolved under `runDir`; throws for absolute paths and escapes. */
export function bundlePath(runDir: string, rel: string): string {
  if (typeof rel !== "string" || rel === "" || rel.includes("\0")) {
    throw new LocalRunError(`refusing bundle path ${preview(rel)}: empty or contains NUL`);
  }
  if (isAbsolute(rel) || rel.startsWith("~")) {
    throw new LocalRunError(`refusing bundle path ${preview(rel)}: must be relative to the run directory`);
  }
  if (rel.split(/[\\/]/).some((seg) => seg === "..")) {
    throw new LocalRunError(`refusing bundle path ${preview(rel)}: escapes the run directory`);
  }
  const root = resolve(runDir);
  const full = resolve(root, rel);
  const back = relative(root, full);
  if (back === "" || back.startsWith(`..${sep}`) || back === ".." || isAbsolute(back)) {
    throw new LocalRunError(`refusing bundle path ${preview(rel)}: escapes the run directory`);
  }
  return full;
}

/** The plan must have been compiled for this run directory: its scripts embed it as HPCPIPE_RUN_DIR. */
export function checkRunDir(plan: CompiledPlan, runDir: string): string {
  const wanted = resolve(runDir);
  if (resolve(plan.layout.runDir) !== wanted) {
    throw new LocalRunError(
      `the plan was compiled for run directory ${preview(plan.layout.runDir)}, but the local run uses ${preview(wanted)}: ` +
        "its scripts would write elsewhere; compile the plan for the local run directory",
    );
  }
  return wanted;
}

/** Every file of the bundle: plan.files plus the job scripts (executable). */
export function bundleFiles(plan: CompiledPlan): Map<string, { text: string; executable: boolean }> {
  const files = new Map<string, { text: string; executable: boolean }>();
  const executable = executableBundleFiles(plan);
  for (const [path, text] of Object.entries(plan.files)) files.set(path, { text, executable: executable.has(path) });
  for (const job of plan.jobs) {
    const prior = files.get(job.scriptPath);
    if (prior !== undefined && prior.text !== job.script) {
      throw new LocalRunError(`job ${job.id}: script path ${preview(job.scriptPath)} is also a different file of the bundle`);
    }
    files.set(job.scriptPath, { text: job.script, executable: true });
  }
  return files;
}

/** Creates the run directory (mode 700) and its layout, and writes the bundle. Checks every path before writing anything. */
export async function materialiseBundle(plan: CompiledPlan, runDir: string): Promise<string> {
  const root = checkRunDir(plan, runDir);
  const files = bundleFiles(plan);
  const targets = [...files].map(([rel, f]) => ({ rel, full: bundlePath(root, rel), ...f }));

  await mkdir(root, { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
  for (const d of RUN_SUBDIRS) await mkdir(join(root, d), { recursive: true, mode: 0o700 });
  for (const t of targets) {
    await mkdir(dirname(t.full), { recursive: true, mode: 0o700 });
    const existing = await lstat(t.full).catch(() => null);
    if (existing !== null && !existing.isFile()) throw new LocalRunError(`refusing to write ${t.rel}: it exists and is not a regular file`);
    await writeFile(t.full, t.text, { mode: t.executable ? EXECUTABLE_MODE : FILE_MODE });
    await chmod(t.full, t.executable ? EXECUTABLE_MODE : FILE_MODE);
  }
  return root;
}
