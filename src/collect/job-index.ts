/**
 * Where each concrete step key of a plan runs: which job, which logical
 * array task, and the task body around it. The merger uses it to decide
 * which steps a job that ended without writing states should account for.
 */
import { itemsPerTaskOf, packedItemCount, packedItems } from "../plan/plan.js";
import type { CompiledPlan, PlanJob, PlanStep, TaskBody } from "../plan/plan.js";
import { arrayTaskIds, logicalTask } from "../plan/task-map.js";

export interface StepSlot {
  job: PlanJob;
  /** SLURM array task id inside the job (0 for a plain job). */
  taskId: number;
  /** Logical task index (task id + chunk offset): what the scheduler's facts are keyed by. */
  task: number;
  /** What `{i}` stands for: the item index inside a map (for a packed map, one of the task's items); a packed group's child index; else `task`. */
  index: number;
  /** The steps of the task body, with `{i}` replaced. */
  keys: string[];
  steps: PlanStep[];
  position: number;
  unitKey: string | null;
}

export { arrayTaskIds } from "../plan/task-map.js";

/** The body a task runs: a map repeats its one body; a group array runs body i for logical task i. */
export function bodyOfTask(job: PlanJob, taskId: number): TaskBody | undefined {
  if (job.shape === "map") return job.bodies[0];
  if (job.array === null) return job.bodies[0];
  const logical = logicalTask(job.array, taskId);
  return job.bodies.length >= job.array.total ? job.bodies[logical] : job.bodies[logical - job.array.offset];
}

/** The body run for one item of a task (see itemsOfTask): a packed group's child `item`, else the task's body. */
export function bodyOfItem(job: PlanJob, taskId: number, item: number): TaskBody | undefined {
  if (job.shape === "group" && itemsPerTaskOf(job) > 1) return job.bodies[item];
  return bodyOfTask(job, taskId);
}

/** Replaces the item placeholder of a key inside a map with an index (the item; for an unpacked map, the logical task). */
export function concreteKey(key: string, task: number): string {
  return key.replaceAll("{i}", String(task));
}

/**
 * The items a task runs: the task itself, or for a packed map (group) every
 * item (child) it runs (`[task*n, min((task+1)*n, items))`).
 */
export function itemsOfTask(plan: Pick<CompiledPlan, "items">, job: PlanJob, task: number): number[] {
  const perTask = itemsPerTaskOf(job);
  if (perTask <= 1) return [task];
  return packedItems(perTask, task, packedItemCount(plan.items, job));
}

/** Every concrete step key of the plan with the job, task and body that runs it; a packed task maps to all its items. */
export function buildStepIndex(plan: CompiledPlan): Map<string, StepSlot> {
  const index = new Map<string, StepSlot>();
  for (const job of plan.jobs) {
    for (const taskId of arrayTaskIds(job)) {
      const task = logicalTask(job.array, taskId);
      for (const item of itemsOfTask(plan, job, task)) {
        const body = bodyOfItem(job, taskId, item);
        if (body === undefined) continue;
        const keys = body.steps.map((s) => concreteKey(s.key, item));
        const unitKey = body.unitKey === null ? null : concreteKey(body.unitKey, item);
        keys.forEach((key, position) => {
          index.set(key, { job, taskId, task, index: item, keys, steps: body.steps, position, unitKey });
        });
      }
    }
  }
  return index;
}

/** The item index in `key` of the map whose key is `mapKey` (`<mapKey>.<i>` or `<mapKey>.<i>.<...>`), or null. */
export function mapItemOfKey(mapKey: string, key: string): number | null {
  if (key.length <= mapKey.length + 1 || !key.startsWith(mapKey) || key.charCodeAt(mapKey.length) !== 46) return null;
  let end = key.indexOf(".", mapKey.length + 1);
  if (end < 0) end = key.length;
  const digits = key.slice(mapKey.length + 1, end);
  if (!/^(0|[1-9][0-9]{0,14})$/.test(digits)) return null;
  return Number(digits);
}

/**
 * The array task id of a map job (one chunk, or a remapped rerun: `taskIds`, logical task -> task id) that
 * runs item `item`, or undefined when no task of this job runs it.
 */
export function taskIdOfItem(job: PlanJob, taskIds: ReadonlyMap<number, number> | null, perTask: number, item: number): number | undefined {
  const task = perTask <= 1 ? item : Math.floor(item / perTask);
  const taskId = taskIds !== null ? taskIds.get(task) : job.array === null ? (task === 0 ? 0 : undefined) : task - job.array.offset;
  if (taskId === undefined || taskId < 0 || (job.array !== null && taskIds === null && taskId >= job.array.count)) return undefined;
  return taskId;
}

/** Looks up the slot of a concrete step key; what the merger needs of buildStepIndex. */
export interface StepSlots {
  get(key: string): StepSlot | undefined;
}

interface MapBody {
  job: PlanJob;
  /** Where a task id of the job runs: logical task -> task id (remapped arrays only). */
  taskIds: Map<number, number> | null;
  perTask: number;
  count: number;
}

/** A map job whose map key is concrete (no `{i}` of an outer map): looked up by key, not indexed. */
export const byMapKey = (job: PlanJob): boolean => job.shape === "map" && job.map !== undefined && !job.map.key.includes("{");

/**
 * The same answers as buildStepIndex without a row per item: map jobs are
 * looked up by the map key and the item index in the key (a million items
 * cost nothing up front); other jobs (plain, groups) are indexed whole.
 * Like buildStepIndex, a later job running the same key wins.
 */
export function stepSlots(plan: CompiledPlan): StepSlots {
  const fixed = buildStepIndex({ ...plan, jobs: plan.jobs.filter((j) => !byMapKey(j)) });
  const maps = new Map<string, MapBody[]>();
  for (const job of plan.jobs) {
    if (!byMapKey(job) || job.map === undefined) continue;
    const array = job.array;
    const taskIds = array?.indices == null ? null : new Map(array.indices.map((logical, id) => [logical, id]));
    const list = maps.get(job.map.key) ?? [];
    list.unshift({ job, taskIds, perTask: itemsPerTaskOf(job), count: packedItemCount(plan.items, job) });
    maps.set(job.map.key, list);
  }
  const ofMap = (key: string): StepSlot | undefined => {
    for (const [mapKey, bodies] of maps) {
      const item = mapItemOfKey(mapKey, key);
      if (item === null) continue;
      for (const { job, taskIds, perTask, count } of bodies) {
        if (perTask > 1 && item >= count) continue;
        const taskId = taskIdOfItem(job, taskIds, perTask, item);
        if (taskId === undefined) continue;
        const body = bodyOfItem(job, taskId, item);
        if (body === undefined) continue;
        const keys = body.steps.map((s) => concreteKey(s.key, item));
        const position = keys.indexOf(key);
        if (position === -1) continue;
        const unitKey = body.unitKey === null ? null : concreteKey(body.unitKey, item);
        return { job, taskId, task: perTask <= 1 ? item : Math.floor(item / perTask), index: item, keys, steps: body.steps, position, unitKey };
      }
    }
    return undefined;
  };
  return { get: (key) => ofMap(key) ?? fixed.get(key) };
}
