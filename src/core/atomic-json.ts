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

/** The file a writeJsonAtomic wrote, as stat shows it (a rename keeps all three): which file is in place now. */
export interface WrittenFile {
  ino: number;
  size: number;
  mtimeMs: number;
}

/**
 * Writes JSON so a reader sees the old file or the whole new one, never a
 * half-written one: temp file `pipeline_*` in the target's directory, fsync,
 * rename over the target, fsync the directory. The temp file is removed on failure.
 */
export async function writeJsonAtomic(path: string, data: unknown, options: WriteJsonOptions = {}): Promise<WrittenFile> {
  const dir = dirname(path);
  const tmp = join(dir, `pipeline_${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let renamed = false;
  let written: WrittenFile;
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
      // Of the temp file, before the rename: another writer's file renamed over the target is not taken for this one.
      const info = await fh.stat();
      written = { ino: info.ino, size: info.size, mtimeMs: info.mtimeMs };
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncDir(dir);
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
  return written;
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
