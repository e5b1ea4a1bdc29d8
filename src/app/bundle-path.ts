import { lstat, readdir, stat } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import type { CompiledPlan } from "../plan/plan.js";
import type { StagedFile } from "../store/staging.js";
import { preview } from "../core/preview.js";

/** A spec `bundle` path that is not inside the spec's directory, or does not exist. */
export class BundleError extends Error {
  override name = "BundleError";
}

/** Resolves a spec `bundle` path inside the spec's directory: its absolute path and its `/`-separated path relative to it. */
export async function bundleSource(specDir: string, rel: string): Promise<{ from: string; rel: string }> {
  const from = resolve(specDir, rel);
  const back = relative(specDir, from);
  if (back === "" || back === ".." || back.startsWith(`..${sep}`)) throw new BundleError(`bundle path ${preview(rel)} is outside the spec's directory`);
  await lstat(from).catch(() => {
    throw new BundleError(`bundle path ${preview(rel)} does not exist (relative to ${specDir})`);
  });
  return { from, rel: back.split(sep).join("/") };
}

/** One regular file of a spec's bundle: where it is here, where it goes in the run (`work/<path>`), its size. */
export interface BundleFile {
  abs: string;
  rel: string;
  size: number;
}

/**
 * Every regular file of the spec's `bundle` paths (files or directories,
 * relative to the spec's directory), in a stable order, keyed `work/<path>`.
 * Refuses paths outside the spec's directory, symlinked directories and
 * special files. A symlink to a file is followed (its target's bytes are sent).
 */
export async function listBundleFiles(specDir: string, paths: readonly string[]): Promise<BundleFile[]> {
  const out: BundleFile[] = [];
  const add = async (abs: string, rel: string, original: string): Promise<void> => {
    const link = await lstat(abs);
    const info = link.isSymbolicLink() ? await stat(abs) : link;
    if (info.isDirectory()) {
      if (link.isSymbolicLink()) throw new BundleError(`bundle path ${preview(original)}: ${rel} is a symlink to a directory; bundle the directory itself`);
      for (const name of (await readdir(abs)).sort()) await add(join(abs, name), `${rel}/${name}`, original);
      return;
    }
    if (!info.isFile()) throw new BundleError(`bundle path ${preview(original)}: ${rel} is not a regular file`);
    out.push({ abs, rel: `work/${rel}`, size: info.size });
  };
  for (const original of paths) {
    const { from, rel } = await bundleSource(specDir, original);
    await add(from, rel, original);
  }
  return out;
}

/**
 * The bundle's files and the staged map item files (`work/inputs/<map>/...`),
 * laid out together through the store (one query for both). A bundle file at
 * the path of an item file with other contents is refused.
 */
export function withInputs(bundle: readonly StagedFile[], inputs: readonly StagedFile[]): StagedFile[] {
  const byRel = new Map(bundle.map((f) => [f.rel, f]));
  const out = [...bundle];
  for (const f of inputs) {
    const other = byRel.get(f.rel);
    if (other === undefined) out.push(f);
    else if (other.sha256 !== f.sha256) throw new BundleError(`bundle file ${other.abs} and map item file ${f.abs} would both be ${f.rel}; rename the bundle's inputs/ directory or the map`);
  }
  return out;
}

/**
 * The staged files the step cache's keys see: all but the map items' own
 * files, whose hashes enter the keys through `plan.itemHashes` (as each
 * item's value). Left in, one edited model would change every key; files
 * staged beside the items (`stage_with`) stay in, like the bundle's.
 */
export function cacheKeyFiles(staged: readonly StagedFile[], plan: Pick<CompiledPlan, "items" | "itemHashes">): StagedFile[] {
  // Nothing staged: no set of a million item paths to leave out of nothing.
  if (staged.length === 0) return [];
  const items = new Set<string>();
  for (const key of Object.keys(plan.itemHashes ?? {})) for (const item of plan.items[key] ?? []) items.add(`work/${item}`);
  return items.size === 0 ? [...staged] : staged.filter((f) => !items.has(f.rel));
}
