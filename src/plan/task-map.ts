/**
 * ONE mapping between SLURM array task ids and the logical tasks of a plan
 * job (what `{i}` and the scheduler's facts are keyed by). A full array (or
 * a chunk of one) runs task id t as logical task `offset + t`. A rerun of
 * some of its tasks (resume today; later cache deltas and retries) is
 * REMAPPED onto dense ids 0..n-1 with the logical task of each id in
 * `indices`, never submitted with the original ids: an id at or above the
 * cluster's MaxArraySize is refused by sbatch, and dense ids keep a rerun
 * of any part of a large logical array inside the limit.
 */
import type { ArraySpec } from "./plan.js";

/** How many SLURM array tasks a job submits: 1 for a plain job, else the remapped tasks or the chunk's count. */
export function taskCount(job: { array: ArraySpec | null }): number {
  return job.array === null ? 1 : (job.array.indices?.length ?? job.array.count);
}

/** The SLURM array task ids of a job: 0 for a plain job, else 0..n-1 (n = the remapped tasks, or the chunk's count). */
export function arrayTaskIds(job: { array: ArraySpec | null }): number[] {
  const a = job.array;
  if (a === null) return [0];
  const n = taskCount(job);
  // A loop, not Array.from with a callback: a status poll asks this for every array of a million-task map.
  const ids = new Array<number>(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  return ids;
}

/** The logical task array task id `taskId` runs (0 for a plain job). */
export function logicalTask(array: ArraySpec | null, taskId: number): number {
  if (array === null) return 0;
  if (array.indices === null) return array.offset + taskId;
  const logical = array.indices[taskId];
  if (logical === undefined) throw new RangeError(`array task id ${taskId} is not one of the ${array.indices.length} remapped tasks`);
  return logical;
}

/** Every logical task of the job, in task id order. */
export function logicalTasks(job: { array: ArraySpec | null }): number[] {
  return arrayTaskIds(job).map((t) => logicalTask(job.array, t));
}

/**
 * The array that runs only `logical` (a subset of the tasks `array` covers),
 * remapped onto ids 0..n-1. The throttle is kept, never above n. Refuses
 * tasks outside the array and more tasks than MaxArraySize allows.
 */
export function remapTasks(array: ArraySpec, logical: readonly number[], maxArraySize: number): ArraySpec {
  const covered = new Set(logicalTasks({ array }));
  const wanted = [...new Set(logical)].sort((a, b) => a - b);
  if (wanted.length === 0) throw new RangeError("a remapped array needs at least one task");
  const outside = wanted.find((t) => !covered.has(t));
  if (outside !== undefined) throw new RangeError(`logical task ${outside} is not a task of this array`);
  if (wanted.length > maxArraySize) throw new RangeError(`${wanted.length} tasks are over MaxArraySize ${maxArraySize}: chunk them first`);
  if (array.indices === null && wanted.length === array.count) return array;
  return { ...array, throttle: array.throttle === null ? null : Math.min(array.throttle, wanted.length), indices: wanted };
}

/** The remapped ids' logical tasks as the job script is given them: "3,17,42"; null for an array that is not remapped. */
export function taskMapArgument(array: ArraySpec | null): string | null {
  return array === null || array.indices === null ? null : array.indices.join(",");
}
