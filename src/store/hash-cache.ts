/**
 * A local cache of file hashes, as git's index keeps one: a bundle of 2,000
 * models is hashed once, and a resubmission only stats them. An entry is
 * reused only when the file's size, modification time, change time and inode
 * are all the same: the change time cannot be set back by a user, so an edit
 * that keeps the size and restores the modification time is still noticed.
 * Kept in `<HPCPIPE_HOME>/hash-cache.json` (mode 600), validated on read; a
 * corrupt or foreign file is ignored (everything is hashed again).
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "../core/atomic-json.js";
import { hashFile, mapLimit, SHA256_HEX } from "./hash.js";

const entrySchema = z.tuple([z.number(), z.string().max(32), z.string().max(32), z.number(), z.string().regex(SHA256_HEX)]);
const cacheSchema = z.object({ format: z.literal(1), files: z.record(z.string(), entrySchema) });

/** Most entries kept: the most recently used ones. */
const MAX_ENTRIES = 500_000;

export interface HashedFile {
  abs: string;
  size: number;
  sha256: string;
}

/** Hashes `paths` (a few at once), reusing the hashes of files that did not change since the last time; updates the cache. */
export async function hashWithCache(paths: readonly string[], cacheDir: string | null): Promise<HashedFile[]> {
  const file = cacheDir === null ? null : join(cacheDir, "hash-cache.json");
  let known: Record<string, z.infer<typeof entrySchema>> = {};
  if (file !== null) {
    try {
      const parsed = cacheSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
      if (parsed.success) known = parsed.data.files;
    } catch {
      known = {};
    }
  }
  let changed = false;
  const fresh: Record<string, z.infer<typeof entrySchema>> = {};
  const out = await mapLimit(paths, 8, async (abs) => {
    const st = await stat(abs, { bigint: true });
    const id: [number, string, string, number] = [Number(st.size), String(st.mtimeNs), String(st.ctimeNs), Number(st.ino)];
    const hit = known[abs];
    if (hit && hit[0] === id[0] && hit[1] === id[1] && hit[2] === id[2] && hit[3] === id[3]) {
      fresh[abs] = hit;
      return { abs, size: id[0], sha256: hit[4] };
    }
    const digest = await hashFile(abs);
    if (digest.size !== id[0]) throw new Error(`${abs} changed while it was hashed (${id[0]} then ${digest.size} bytes)`);
    changed = true;
    fresh[abs] = [...id, digest.sha256];
    return { abs, size: digest.size, sha256: digest.sha256 };
  });
  if (file !== null && changed) {
    // The files of this submission first, then the others it knew, up to the cap.
    const merged: Record<string, z.infer<typeof entrySchema>> = { ...fresh };
    let n = Object.keys(merged).length;
    for (const [k, v] of Object.entries(known)) {
      if (n >= MAX_ENTRIES) break;
      if (merged[k] === undefined) {
        merged[k] = v;
        n++;
      }
    }
    try {
      await writeJsonAtomic(file, { format: 1, files: merged }, { mode: 0o600 });
    } catch {
      // A cache that cannot be written costs time next time, nothing else.
    }
  }
  return out;
}
