/**
 * Named moments of a CLI run. With HPCPIPE_TIMING=1 each mark prints
 * `hpcpipe-timing <name> <epoch ms>` on stderr (the clock a parent process
 * can compare with its own spawn time: bench/submit reads them). Code can
 * also wait for a moment (`reached`): `submit` lets its early SSH handshake
 * put its first bytes on the wire before the plan's compilation holds the
 * event loop.
 *
 * With HPCPIPE_MEMORY_TRACE=1 each mark also prints `hpcpipe-memory <name>
 * rss=<MiB> heap=<MiB> external=<MiB>` (after a full collection when node
 * runs with --expose-gc: what is still held there, not garbage): where a
 * command's memory goes, phase by phase, at a size that is hard to profile.
 */
const enabled = process.env.HPCPIPE_TIMING === "1";
const memoryTrace = process.env.HPCPIPE_MEMORY_TRACE === "1";
const MiB = 1024 * 1024;
const seen = new Set<string>();
const waiters = new Map<string, Array<() => void>>();

export function markTiming(name: string): void {
  seen.add(name);
  for (const wake of waiters.get(name) ?? []) wake();
  waiters.delete(name);
  if (memoryTrace) {
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    process.stderr.write(`hpcpipe-memory ${name} rss=${(m.rss / MiB).toFixed(0)} heap=${(m.heapUsed / MiB).toFixed(0)} external=${(m.external / MiB).toFixed(0)}\n`);
  }
  if (!enabled) return;
  process.stderr.write(`hpcpipe-timing ${name} ${(performance.timeOrigin + performance.now()).toFixed(1)}\n`);
}

/** Resolves once `name` was marked (at once if it already was), or after `timeoutMs`. */
export function reached(name: string, timeoutMs: number): Promise<void> {
  if (seen.has(name)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const list = waiters.get(name) ?? [];
    list.push(() => {
      clearTimeout(timer);
      resolve();
    });
    waiters.set(name, list);
  });
}

/** The marks in a stderr text, first of each name (bench/submit reads them). */
export function timingMarks(stderr: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of stderr.matchAll(/^hpcpipe-timing ([a-z-]{1,40}) (\d{1,16}(?:\.\d{1,3})?)$/gm)) {
    const name = m[1] ?? "";
    if (!out.has(name)) out.set(name, Number(m[2]));
  }
  return out;
}
