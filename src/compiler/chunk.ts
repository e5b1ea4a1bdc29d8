export interface Chunk {
  /** Tasks in this chunk; SLURM task ids 0..count-1. */
  count: number;
  /** Logical index of this chunk's task 0. */
  offset: number;
  /** `%N` for this chunk, or null. */
  throttle: number | null;
  chunk: number;
  chunks: number;
  /** Index of an earlier chunk this one must wait for (afterany), when the throttle is smaller than the chunk count. */
  after: number | null;
}

/**
 * Splits a logical array of `total` tasks into chunks of at most
 * `maxArraySize` tasks, each indexed from 0 with an offset, and splits a
 * throttle so the total concurrency over all chunks never exceeds it: the
 * throttle is shared out when it is at least the chunk count; otherwise chunks
 * run one task at a time and at most `throttle` chunks at once (chained).
 */
export function chunkArray(total: number, maxArraySize: number, throttle: number | null): Chunk[] {
  if (!Number.isInteger(total) || total < 1) throw new Error(`array size must be a whole number >= 1, got ${total}`);
  if (!Number.isInteger(maxArraySize) || maxArraySize < 1) throw new Error(`MaxArraySize must be >= 1, got ${maxArraySize}`);
  if (throttle !== null && (!Number.isInteger(throttle) || throttle < 1)) throw new Error(`throttle must be >= 1, got ${throttle}`);
  const chunks = Math.ceil(total / maxArraySize);
  const out: Chunk[] = [];
  for (let k = 0; k < chunks; k++) {
    const offset = k * maxArraySize;
    const count = Math.min(maxArraySize, total - offset);
    let share: number | null = null;
    let after: number | null = null;
    if (throttle !== null) {
      if (throttle >= chunks) share = Math.floor(throttle / chunks) + (k < throttle % chunks ? 1 : 0);
      else {
        share = 1;
        after = k >= throttle ? k - throttle : null;
      }
    }
    out.push({ count, offset, throttle: share, chunk: k, chunks, after });
  }
  return out;
}
