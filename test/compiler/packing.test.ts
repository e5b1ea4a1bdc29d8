import { describe, expect, test } from "vitest";
import { shortSignature } from "../../src/core/signature.js";
import { CompileError } from "../../src/compiler/errors.js";
import { formatPlanText } from "../../src/compiler/format.js";
import { resolvePacking, scaleMem } from "../../src/compiler/packing.js";
import { packedItems } from "../../src/plan/plan.js";
import { remapTasks } from "../../src/plan/task-map.js";
import type { Resources } from "../../src/plan/resources.js";
import { MapStep } from "../../src/spec/map-step.js";
import type { MapStepOptions } from "../../src/spec/map-step.js";
import { cmd, compileTree, pipe, target } from "./helpers.js";

const items = (n: number): string[] => Array.from({ length: n }, (_, i) => `it-${i}`);

function mapOf(n: number, over: Partial<MapStepOptions> = {}, resources: Resources = {}): MapStep {
  return new MapStep({ name: "m", items: items(n), as: "it", steps: [cmd("a", { requires: ["it"], resources }), cmd("b", { resources })], ...over });
}

describe("task packing in the compiler", () => {
  test("a packed map is ONE array of ceil(items / n) tasks; the plan records the items per task", () => {
    const plan = compileTree(pipe("p", [mapOf(400, { itemsPerTask: 20 })]));
    expect(plan.jobs).toHaveLength(1);
    const job = plan.jobs[0];
    expect(job?.shape).toBe("map");
    expect(job?.array).toMatchObject({ count: 20, offset: 0, total: 20, chunks: 1, indices: null });
    expect(job?.map).toEqual({ key: "p.m", itemsFile: "items/p.m.txt", itemKey: "it", continueOnItemError: false, itemsPerTask: 20, itemCpus: 1 });
    // Per-item keys stay exactly as unpacked.
    expect(job?.steps).toEqual(["p.m.{i}.a", "p.m.{i}.b"]);
    expect(job?.bodies).toHaveLength(1);
    expect(job?.bodies[0]?.unitKey).toBe("p.m.{i}");
    expect(plan.items["p.m"]).toHaveLength(400);
    expect(plan.files["items/p.m.txt"]?.split("\n")).toHaveLength(401);

    expect(compileTree(pipe("p", [mapOf(401, { itemsPerTask: 20 })])).jobs[0]?.array?.count).toBe(21);
    expect(compileTree(pipe("p", [mapOf(7, { itemsPerTask: 3 })])).jobs[0]?.array?.count).toBe(3);
  });

  test("task t runs items [t*n, min((t+1)*n, items))", () => {
    expect(packedItems(3, 0, 7)).toEqual([0, 1, 2]);
    expect(packedItems(3, 1, 7)).toEqual([3, 4, 5]);
    expect(packedItems(3, 2, 7)).toEqual([6]);
    expect(packedItems(3, 3, 7)).toEqual([]);
    expect(packedItems(1, 5, 7)).toEqual([5]);
  });

  test("items_per_task 1, or a map of one item, compiles exactly like an unpacked map", () => {
    const unpacked = compileTree(pipe("p", [mapOf(5)]));
    expect(compileTree(pipe("p", [mapOf(5, { itemsPerTask: 1 })]))).toEqual(unpacked);
    expect(unpacked.jobs[0]?.map).toEqual({ key: "p.m", itemsFile: "items/p.m.txt", itemKey: "it", continueOnItemError: false });
    const single = compileTree(pipe("p", [mapOf(1, { itemsPerTask: 20 })]));
    expect(single).toEqual(compileTree(pipe("p", [mapOf(1)])));
  });

  test("more items per task than items: one task with every item", () => {
    const plan = compileTree(pipe("p", [mapOf(5, { itemsPerTask: 20 }, { time: "1:00" })]));
    expect(plan.jobs[0]?.array?.count).toBe(1);
    expect(plan.jobs[0]?.map?.itemsPerTask).toBe(5);
    // Two one-minute steps per item, five items one after another.
    expect(plan.jobs[0]?.resources.time).toBe("00:10:00");
  });

  test("a packed array larger than MaxArraySize is chunked over tasks, not items", () => {
    const plan = compileTree(pipe("p", [mapOf(2_500, { itemsPerTask: 3, concurrency: 40 })]), { target: target({ maxArraySize: 300 }) });
    expect(plan.jobs.map((j) => j.array?.count)).toEqual([300, 300, 234]);
    expect(plan.jobs.map((j) => j.array?.offset)).toEqual([0, 300, 600]);
    expect(plan.jobs.map((j) => j.array?.total)).toEqual([834, 834, 834]);
    expect(plan.jobs.every((j) => j.map?.itemsPerTask === 3)).toBe(true);
    expect(plan.jobs.reduce((s, j) => s + (j.array?.throttle ?? 0), 0)).toBe(40);
    // Every item is in exactly one task.
    const covered = plan.jobs.flatMap((j) => Array.from({ length: j.array?.count ?? 0 }, (_, t) => packedItems(3, (j.array?.offset ?? 0) + t, 2_500)).flat());
    expect(covered).toEqual(Array.from({ length: 2_500 }, (_, i) => i));
  });

  test("the task's time is the item's time per wave of items; items run one at a time without task_cpus", () => {
    const plan = compileTree(pipe("p", [mapOf(100, { itemsPerTask: 20 }, { cpus: 2, mem: "1G", time: "1:00" })]));
    expect(plan.jobs[0]?.resources).toEqual({ cpus: 2, mem: "1G", time: "00:40:00" });
    expect(plan.jobs[0]?.map?.itemCpus).toBe(2);
  });

  test("task_cpus runs floor(task_cpus / item cpus) items at once: cpus, memory and GPUs scale, time per wave", () => {
    const plan = compileTree(pipe("p", [mapOf(100, { itemsPerTask: 20, taskCpus: 4 }, { mem: "500M", time: "1:00", gpus: 1 })]));
    expect(plan.jobs[0]?.resources).toEqual({ cpus: 4, mem: "2000M", time: "00:10:00", gpus: 4 });
    const uneven = compileTree(pipe("p", [mapOf(100, { itemsPerTask: 20, taskCpus: 5 }, { cpus: 2, time: "10" })]));
    expect(uneven.jobs[0]?.resources).toEqual({ cpus: 4, time: "03:20:00" });
    expect(uneven.jobs[0]?.map?.itemCpus).toBe(2);
    // Never more at once than a task has items.
    const small = compileTree(pipe("p", [mapOf(2, { itemsPerTask: 2, taskCpus: 8 })]));
    expect(small.jobs[0]?.resources.cpus).toBe(2);
  });

  test("a map throttle counts items: the array's %N is throttle / items at once", () => {
    const plan = compileTree(pipe("p", [mapOf(400, { itemsPerTask: 20, taskCpus: 4, concurrency: 40 })]));
    expect(plan.jobs[0]?.array?.throttle).toBe(10);
    const tiny = compileTree(pipe("p", [mapOf(400, { itemsPerTask: 20, taskCpus: 4, concurrency: 2 })]));
    expect(tiny.jobs[0]?.array?.throttle).toBe(1);
    // The cluster's default throttle counts tasks, as for every array.
    const byCluster = compileTree(pipe("p", [mapOf(400, { itemsPerTask: 20, taskCpus: 4 })]), { target: target({ arrayThrottle: 7 }) });
    expect(byCluster.jobs[0]?.array?.throttle).toBe(7);
  });

  test("task_duration / item_duration gives the items per task (times the items at once)", () => {
    const plan = compileTree(pipe("p", [mapOf(400, { taskDuration: "10:00", itemDuration: "0:30" })]));
    expect(plan.jobs[0]?.map?.itemsPerTask).toBe(20);
    expect(plan.jobs[0]?.array?.count).toBe(20);
    const wide = compileTree(pipe("p", [mapOf(400, { taskDuration: "10:00", itemDuration: "0:30", taskCpus: 4 })]));
    expect(wide.jobs[0]?.map?.itemsPerTask).toBe(80);
    expect(wide.jobs[0]?.array?.count).toBe(5);
    // An item longer than the target still packs nothing.
    const long = compileTree(pipe("p", [mapOf(10, { taskDuration: "1:00", itemDuration: "5:00" })]));
    expect(long.jobs[0]?.map?.itemsPerTask).toBeUndefined();
    expect(long.jobs[0]?.array?.count).toBe(10);
  });

  test("refuses task_cpus below the item's cpus and gres it cannot scale", () => {
    expect(() => compileTree(pipe("p", [mapOf(10, { itemsPerTask: 5, taskCpus: 2 }, { cpus: 4 })]))).toThrow(/task_cpus \(2\) is less than the CPUs one item needs \(4\)/);
    expect(() => compileTree(pipe("p", [mapOf(10, { itemsPerTask: 5, taskCpus: 2 }, { gres: "gpu:1" })]))).toThrow(CompileError);
    // One item at a time keeps gres as it is.
    expect(compileTree(pipe("p", [mapOf(10, { itemsPerTask: 5 }, { gres: "gpu:1" })])).jobs[0]?.resources.gres).toBe("gpu:1");
  });

  test("packing is not part of the map's signature: packed and unpacked runs resume each other", () => {
    expect(shortSignature(mapOf(10, { itemsPerTask: 5, taskCpus: 2 }))).toBe(shortSignature(mapOf(10)));
    const a = compileTree(pipe("p", [mapOf(10, { itemsPerTask: 5 })]));
    const b = compileTree(pipe("p", [mapOf(10)]));
    expect(a.tree).toEqual(b.tree);
    expect(a.signature).toBe(b.signature);
  });

  test("resume: a packed task whose items are all done is left out; a task with any item not done reruns whole", () => {
    const doneItems = [0, 1, 2, 3, 4, 6, 7, 8, 9, 12];
    const done = new Set(doneItems.flatMap((i) => [`p.m.${i}.a`, `p.m.${i}.b`]));
    done.delete("p.m.12.b");
    // Tasks of 5 items: 0 = 0-4 (done), 1 = 5-9 (5 not done), 2 = 10-14, 3 = 15-19.
    const plan = compileTree(pipe("p", [mapOf(20, { itemsPerTask: 5 })]), { done });
    expect(plan.jobs[0]?.array).toMatchObject({ count: 4, indices: [1, 2, 3] });
    const all = new Set(Array.from({ length: 20 }, (_, i) => [`p.m.${i}.a`, `p.m.${i}.b`]).flat());
    expect(compileTree(pipe("p", [mapOf(20, { itemsPerTask: 5 }), cmd("after", { fuse: false })]), { done: all }).jobs.map((j) => j.steps)).toEqual([["p.after"]]);
  });

  test("resume with chunks: the packed tasks still to run are remapped onto ids from 0, their logical tasks in indices", () => {
    const done = new Set(Array.from({ length: 9 }, (_, i) => [`big.m.${i}.a`, `big.m.${i}.b`]).flat());
    // 12 items, 3 per task = 4 tasks; MaxArraySize 2: chunks [0,1] and [2,3]; items 0-8 done = tasks 0, 1, 2.
    const plan = compileTree(pipe("big", [mapOf(12, { itemsPerTask: 3 })]), { target: target({ maxArraySize: 2 }), done });
    expect(plan.jobs).toHaveLength(1);
    expect(plan.jobs[0]?.array).toMatchObject({ offset: 2, count: 2, indices: [3] });
  });

  test("the plan text names the items per task", () => {
    const plan = compileTree(pipe("p", [mapOf(400, { itemsPerTask: 20 })]));
    expect(formatPlanText(plan)).toContain("map p.m: p.m.{i}.a -> p.m.{i}.b per item (20 items per task)");
    expect(formatPlanText(plan)).toContain("1 job(s), 20 task(s)");
    // A rerun of 3 of its tasks (a resume) says array[3], as it submits, not the 20 of the first run.
    const job = plan.jobs[0];
    if (!job?.array) throw new Error("expected an array job");
    job.array = remapTasks(job.array, [2, 7, 19], 1001);
    expect(formatPlanText(plan)).toMatch(/array\[3\] /);
    expect(formatPlanText(plan)).toContain("1 job(s), 3 task(s)");
  });

  test("resolvePacking: no request, or one item per task, is unpacked", () => {
    const problems: string[] = [];
    expect(resolvePacking("k", null, 10, {}, null, problems)).toBeNull();
    expect(resolvePacking("k", { itemsPerTask: 1, taskDurationS: null, itemDurationS: null, taskCpus: 4 }, 10, {}, null, problems)).toBeNull();
    expect(resolvePacking("k", { itemsPerTask: 5, taskDurationS: null, itemDurationS: null, taskCpus: null }, 0, {}, null, problems)).toBeNull();
    expect(problems).toEqual([]);
    expect(scaleMem("4G", 3)).toBe("12G");
    expect(scaleMem("500", 2)).toBe("1000");
  });
});

describe("MapStep packing options", () => {
  test("are checked when the map is built", () => {
    expect(() => mapOf(3, { itemsPerTask: 0 })).toThrow(/itemsPerTask must be a whole number >= 1/);
    expect(() => mapOf(3, { itemsPerTask: 2.5 })).toThrow(/itemsPerTask/);
    expect(() => mapOf(3, { itemsPerTask: 2, taskDuration: "10:00", itemDuration: "1:00" })).toThrow(/not both/);
    expect(() => mapOf(3, { taskDuration: "10:00" })).toThrow(/go together/);
    expect(() => mapOf(3, { taskDuration: "10:00", itemDuration: "0" })).toThrow(/positive SLURM time/);
    expect(() => mapOf(3, { taskDuration: "ten", itemDuration: "1:00" })).toThrow(/positive SLURM time/);
    expect(() => mapOf(3, { taskCpus: 4 })).toThrow(/taskCpus applies to packed tasks/);
    expect(() => mapOf(3, { itemsPerTask: 2, taskCpus: 0 })).toThrow(/taskCpus must be/);
    expect(mapOf(3, { taskDuration: "10:00", itemDuration: "0:30", taskCpus: 2 }).packing).toEqual({ itemsPerTask: null, taskDurationS: 600, itemDurationS: 30, taskCpus: 2 });
    expect(mapOf(3).packing).toBeNull();
  });
});
