import { describe, expect, it } from "vitest";
import type { ArraySpec } from "../../src/plan/plan.js";
import { arrayTaskIds, logicalTask, logicalTasks, remapTasks, taskMapArgument } from "../../src/plan/task-map.js";

const chunk = (over: Partial<ArraySpec> = {}): ArraySpec => ({ count: 1000, offset: 2000, throttle: 8, chunk: 2, chunks: 3, total: 2500, indices: null, ...over });

describe("the one mapping from array task ids to logical tasks", () => {
  it("a chunk runs task id t as logical task offset + t; a plain job is task 0", () => {
    expect(logicalTask(chunk(), 0)).toBe(2000);
    expect(logicalTask(chunk(), 999)).toBe(2999);
    expect(logicalTask(null, 0)).toBe(0);
    expect(arrayTaskIds({ array: null })).toEqual([0]);
    expect(arrayTaskIds({ array: chunk({ count: 3 }) })).toEqual([0, 1, 2]);
  });

  it("a rerun of tasks of a chunk is remapped onto ids 0..n-1, never submitted with its original ids", () => {
    const rerun = remapTasks(chunk(), [2999, 2017, 2018], 1001);
    expect(rerun.indices).toEqual([2017, 2018, 2999]);
    expect(arrayTaskIds({ array: rerun })).toEqual([0, 1, 2]);
    expect(logicalTasks({ array: rerun })).toEqual([2017, 2018, 2999]);
    expect(taskMapArgument(rerun)).toBe("2017,2018,2999");
    // The throttle never asks for more than the tasks there are.
    expect(rerun.throttle).toBe(3);
  });

  it("remapping again (a rerun of a rerun) keeps the logical tasks", () => {
    const once = remapTasks(chunk(), [2005, 2006, 2007], 1001);
    const twice = remapTasks(once, [2007], 1001);
    expect(twice.indices).toEqual([2007]);
    expect(logicalTask(twice, 0)).toBe(2007);
  });

  it("every task of the array is the array itself, not a remap", () => {
    const a = chunk({ count: 3, offset: 6 });
    expect(remapTasks(a, [6, 7, 8], 1001)).toBe(a);
    expect(taskMapArgument(a)).toBeNull();
  });

  it("refuses a task outside the array, an empty rerun, and more tasks than MaxArraySize", () => {
    expect(() => remapTasks(chunk(), [1999], 1001)).toThrow(/logical task 1999 is not a task of this array/);
    expect(() => remapTasks(chunk(), [], 1001)).toThrow(/at least one task/);
    expect(() => remapTasks(chunk(), [2000, 2001, 2002], 2)).toThrow(/over MaxArraySize 2/);
    expect(() => logicalTask(remapTasks(chunk(), [2001], 1001), 1)).toThrow(RangeError);
  });
});
