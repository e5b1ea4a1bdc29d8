import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

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
  const text = `${JSON.stringify(data, null, options.indent ?? 2)}\n`;
  const dir = dirname(path);
  const tmp = join(dir, `pipeline_${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, "wx", options.mode ?? 0o644);
    try {
      await fh.writeFile(text, "utf8");
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
