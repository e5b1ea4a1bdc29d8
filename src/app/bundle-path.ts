import { lstat } from "node:fs/promises";
import { relative, resolve, sep } from "node:path";

/** A spec `bundle` path that is not inside the spec's directory, or does not exist. */
export class BundleError extends Error {
  override name = "BundleError";
}

/** Resolves a spec `bundle` path inside the spec's directory: its absolute path and its `/`-separated path relative to it. */
export async function bundleSource(specDir: string, rel: string): Promise<{ from: string; rel: string }> {
  const from = resolve(specDir, rel);
  const back = relative(specDir, from);
  if (back === "" || back === ".." || back.startsWith(`..${sep}`)) throw new BundleError(`bundle path ${JSON.stringify(rel)} is outside the spec's directory`);
  await lstat(from).catch(() => {
    throw new BundleError(`bundle path ${JSON.stringify(rel)} does not exist (relative to ${specDir})`);
  });
  return { from, rel: back.split(sep).join("/") };
}
