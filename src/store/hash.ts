/** SHA-256 of local files, read as streams (never whole in memory). */
import { createHash } from "node:crypto";
import { closeSync, createReadStream, fstatSync, openSync, readSync } from "node:fs";
import { stat } from "node:fs/promises";

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface FileDigest {
  sha256: string;
  size: number;
}

/** The SHA-256 and size of a file, streamed; refuses a file that changed size while it was read. */
export async function hashFile(path: string): Promise<FileDigest> {
  const before = await stat(path);
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const data = chunk as Buffer;
    size += data.length;
    hash.update(data);
  }
  if (size !== before.size) throw new Error(`${path} changed while it was hashed (${before.size} then ${size} bytes)`);
  return { sha256: hash.digest("hex"), size };
}

/** The same digest, read synchronously in 1 MiB chunks (for the spec loader, which is synchronous); never whole in memory. */
export function hashFileSync(path: string): FileDigest {
  const fd = openSync(path, "r");
  try {
    const before = fstatSync(fd).size;
    const hash = createHash("sha256");
    const buffer = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) {
      size += n;
      hash.update(buffer.subarray(0, n));
    }
    if (size !== before) throw new Error(`${path} changed while it was hashed (${before} then ${size} bytes)`);
    return { sha256: hash.digest("hex"), size };
  } finally {
    closeSync(fd);
  }
}

/** Runs `fn` over `items` with at most `limit` at once, keeping the order of the results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
