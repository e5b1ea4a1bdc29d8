import { itemsPerTaskOf, packedItemCount, packedItems } from "../plan/plan.js";
import type { Dependency } from "../plan/plan.js";
import { logicalTasks, remapTasks } from "../plan/task-map.js";
import type { JobDraft } from "./drafts.js";

/** Concrete step keys a task of a job runs (`{i}` replaced by its logical index, or by each item index of a packed task; a packed group's children). */
export function taskKeys(job: JobDraft, logical: number, items: Readonly<Record<string, readonly string[]>>): string[] {
  if (job.shape === "single") return job.bodies.flatMap((b) => b.steps.map((s) => s.key));
  const indices = packedItems(itemsPerTaskOf(job), logical, packedItemCount(items, job));
  return indices.flatMap((i) => {
    const body = job.shape === "map" ? job.bodies[0] : job.bodies[i];
    return (body?.steps ?? []).map((s) => s.key.split("{i}").join(String(i)));
  });
}

/**
 * Leaves out what a resumed run does not need: a job whose every step is
 * done, and array tasks whose every step is done (the rest are remapped onto
 * dense task ids, see src/plan/task-map.ts). A job that depended on a
 * left-out job waits instead for what that job waited for, so the order of
 * the remaining work holds. Returns new drafts; `jobs` is left as it was.
 */
export function pruneDone(
  jobs: readonly JobDraft[],
  done: ReadonlySet<string>,
  items: Readonly<Record<string, readonly string[]>>,
  maxArraySize: number,
): JobDraft[] {
  const removed = new Map<string, Dependency[]>();
  const kept: JobDraft[] = [];
  for (const job of jobs) {
    // A retry controller stays with its job: left out with it (its dependents then wait as the job's would have).
    if (job.retry !== undefined) {
      if (removed.has(job.retry.of)) removed.set(job.id, removed.get(job.retry.of) ?? []);
      else kept.push(job);
      continue;
    }
    const todo = logicalTasks(job).filter((task) => !taskKeys(job, task, items).every((k) => done.has(k)));
    if (todo.length === 0) removed.set(job.id, job.dependencies);
    else if (job.array === null) kept.push(job);
    // The tasks that must run again, remapped onto ids 0..n-1 (one mechanism: src/plan/task-map.ts).
    else kept.push({ ...job, array: remapTasks(job.array, todo, maxArraySize) });
  }
  const resolve = (deps: Dependency[]): Dependency[] =>
    deps.flatMap((d) => {
      const through = removed.get(d.job);
      return through === undefined ? [d] : resolve(through);
    });
  return kept.map((job) => {
    const seen = new Set<string>();
    const dependencies = resolve(job.dependencies).filter((d) => {
      const id = `${d.type}:${d.job}`;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    return { ...job, dependencies };
  });
}
