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
