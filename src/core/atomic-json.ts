import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { jsonChunks } from "./json-stream.js";

export interface WriteJsonOptions {
  /** Spaces of indentation; default 2. */
  indent?: number;
  /** File mode of the result; default 0o644. */
  mode?: number;
}

/**
 * Writes JSON so a reader sees the old file or the whole new one, never a
 * half-written one: temp file `pipeline_*` in the target's directory, fsync,
 * rename over the target, fsync the directory. The temp file is removed on failure.
 */
export async function writeJsonAtomic(path: string, data: unknown, options: WriteJsonOptions = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `pipeline_${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, "wx", options.mode ?? 0o644);
    try {
      // In pieces (each writeFile goes on from the position the last one left): a merged
      // result of a million items is larger than one string may be. A small value is one write.
      let pending: string | null = null;
      for (const chunk of jsonChunks(data, options.indent ?? 2)) {
        if (pending !== null) await fh.writeFile(pending, "utf8");
        pending = chunk;
      }
      await fh.writeFile(`${pending ?? ""}\n`, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncDir(dir);
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}
