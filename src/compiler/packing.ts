/**
 * Task packing: a map whose items are tiny runs several items in one array
 * task, so the scheduler handles ceil(items / n) tasks instead of one per
 * item. Each item still has its own keys, logs and state files.
 */
import { secondsToSlurmTime, slurmTimeToSeconds } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import type { MapPacking } from "../spec/map-step.js";
import { preview } from "../core/preview.js";

export interface ResolvedPacking {
  /** Items each array task runs (>= 2; the last task may run fewer). */
  itemsPerTask: number;
  /** Array tasks: ceil(items / itemsPerTask). */
  tasks: number;
  /** Items a task runs at once: floor(task cpus / item cpus), at most itemsPerTask. */
  slots: number;
  /** CPUs one item uses. */
  itemCpus: number;
  /** What one task asks for. */
  resources: Resources;
  /** The array's `%N` in tasks, from the map's throttle in items (null when it has none). */
  throttle: number | null;
}

/** `4G` times 3 is `12G`; `500` (megabytes) times 2 is `1000`. */
export function scaleMem(mem: string, factor: number): string {
  const m = /^(\d+)([KMGT]?)$/.exec(mem);
  if (m === null) return mem;
  return `${Number(m[1]) * factor}${m[2] ?? ""}`;
}

/**
 * Resolves a map's packing request against its item count and the
 * resources one item needs; null when the map stays one task per item
 * (no request, or it comes to one item per task).
 *
 * - items per task: `items_per_task`, or `max(1, floor(task_duration / item_duration))`
 *   times the items that run at once, capped at the number of items;
 * - items at once (`slots`): `floor(task_cpus / item cpus)` (1 without task_cpus);
 * - the task asks for `slots` times the item's cpus, memory and GPUs, and for
 *   the item's time limit times `ceil(items per task / slots)` (the items run
 *   in `ceil(n / slots)` waves);
 * - a map `throttle` counts items, so the array's `%N` becomes `max(1, floor(throttle / slots))`.
 */
export function resolvePacking(
  key: string,
  packing: MapPacking | null,
  itemCount: number,
  item: Resources,
  throttle: number | null,
  problems: string[],
): ResolvedPacking | null {
  if (packing === null) return null;
  const itemCpus = item.cpus ?? 1;
  let slots = 1;
  if (packing.taskCpus !== null) {
    if (packing.taskCpus < itemCpus) {
      problems.push(`${key}: task_cpus (${packing.taskCpus}) is less than the CPUs one item needs (${itemCpus})`);
      return null;
    }
    slots = Math.floor(packing.taskCpus / itemCpus);
  }
  let n: number;
  if (packing.itemsPerTask !== null) n = packing.itemsPerTask;
  else if (packing.taskDurationS !== null && packing.itemDurationS !== null) {
    n = Math.max(1, Math.floor(packing.taskDurationS / packing.itemDurationS)) * slots;
  } else n = 1;
  n = Math.min(n, itemCount);
  if (n <= 1) return null;
  slots = Math.min(slots, n);

  const resources: Resources = { ...item };
  if (slots > 1) {
    resources.cpus = slots * itemCpus;
    if (item.mem !== undefined) resources.mem = scaleMem(item.mem, slots);
    if (item.gpus !== undefined) resources.gpus = item.gpus * slots;
    if (item.gres !== undefined) {
      problems.push(`${key}: a packed task running ${slots} items at once cannot scale gres ${preview(item.gres)}; use gpus, or lower task_cpus`);
    }
  }
  if (item.time !== undefined) resources.time = secondsToSlurmTime(slurmTimeToSeconds(item.time) * Math.ceil(n / slots));
  return {
    itemsPerTask: n,
    tasks: Math.ceil(itemCount / n),
    slots,
    itemCpus,
    resources,
    throttle: throttle === null ? null : Math.max(1, Math.floor(throttle / slots)),
  };
}
