import { describe, expect, test } from "vitest";
import type { JobDraft } from "../../src/compiler/drafts.js";
import { pruneDone, taskKeys } from "../../src/compiler/prune.js";
import type { ArraySpec, Dependency } from "../../src/plan/plan.js";
import { planStepOf } from "./helpers.js";

const plain = (id: string, steps: string[], dependencies: Dependency[] = []): JobDraft => ({
  id,
  name: `hp-${id}`,
  shape: "single",
  bodies: [{ unitKey: null, steps: steps.map((k) => planStepOf(k)) }],
  array: null,
  dependencies,
  resources: {},
  steps,
  fused: steps.length > 1 ? steps : null,
  scriptPath: `scripts/${id}.sbatch`,
});

const whole = (count: number, over: Partial<ArraySpec> = {}): ArraySpec => ({ count, offset: 0, throttle: null, chunk: 0, chunks: 1, total: count, indices: null, ...over });

/** A map job over the items of `p.m` running step `w` per item; `itemsPerTask` above 1 packs them. */
const mapJob = (id: string, array: ArraySpec, itemsPerTask = 1, dependencies: Dependency[] = []): JobDraft => ({
  id,
  name: `hp-${id}-m`,
  shape: "map",
  bodies: [{ unitKey: "p.m.{i}", steps: [planStepOf("p.m.{i}.w")] }],
  map: { key: "p.m", itemsFile: "items/p.m.txt", itemKey: "item", continueOnItemError: false, ...(itemsPerTask > 1 ? { itemsPerTask, itemCpus: 1 } : {}) },
  array,
  dependencies,
  resources: {},
  steps: ["p.m.{i}.w"],
  fused: null,
  scriptPath: `scripts/${id}.sbatch`,
});

const items = { "p.m": ["a", "b", "c", "d", "e"] };
const afterok = (job: string): Dependency => ({ job, type: "afterok" });

describe("pruneDone: what a resumed run leaves out", () => {
  test("a job after several left-out jobs in a row waits for what the first of them waited for", () => {
    const jobs = [plain("j000", ["p.a"]), plain("j001", ["p.b"], [afterok("j000")]), plain("j002", ["p.c"], [afterok("j001")]), plain("j003", ["p.d"], [afterok("j002")])];
    const kept = pruneDone(jobs, new Set(["p.b", "p.c"]), {}, 1001);
    expect(kept.map((j) => [j.id, j.dependencies])).toEqual([
      ["j000", []],
      ["j003", [afterok("j000")]],
    ]);
  });

  test("a job that reaches the same upstream job through several left-out jobs waits on it once", () => {
    const jobs = [
      plain("j000", ["p.a"]),
      plain("j001", ["p.b"], [afterok("j000")]),
      plain("j002", ["p.c"], [afterok("j000")]),
      plain("j003", ["p.d"], [afterok("j001"), afterok("j002"), afterok("j000")]),
    ];
    const kept = pruneDone(jobs, new Set(["p.b", "p.c"]), {}, 1001);
    expect(kept.find((j) => j.id === "j003")?.dependencies).toEqual([afterok("j000")]);
  });

  test("a fused job stays whole while any of its steps is not done", () => {
    const jobs = [plain("j000", ["p.a", "p.b"])];
    expect(pruneDone(jobs, new Set(["p.a"]), {}, 1001).map((j) => j.id)).toEqual(["j000"]);
    expect(pruneDone(jobs, new Set(["p.a", "p.b"]), {}, 1001)).toEqual([]);
  });

  test("a map keeps only the tasks of items not done, remapped onto ids from 0; a finished map is left out", () => {
    const jobs = [mapJob("j000", whole(5)), plain("j001", ["p.after"], [afterok("j000")])];
    const kept = pruneDone(jobs, new Set(["p.m.0.w", "p.m.1.w", "p.m.3.w"]), items, 1001);
    expect(kept[0]?.array).toEqual({ ...whole(5), indices: [2, 4] });
    const all = new Set(items["p.m"].map((_, i) => `p.m.${i}.w`));
    expect(pruneDone(jobs, all, items, 1001).map((j) => [j.id, j.dependencies])).toEqual([["j001", []]]);
  });

  test("a packed task runs again while any of its items is not done", () => {
    // Five items, two per task: task 0 runs items 0-1, task 1 items 2-3, task 2 item 4.
    const jobs = [mapJob("j000", whole(3), 2)];
    expect(taskKeys(jobs[0] as JobDraft, 1, items)).toEqual(["p.m.2.w", "p.m.3.w"]);
    const kept = pruneDone(jobs, new Set(["p.m.0.w", "p.m.1.w", "p.m.2.w", "p.m.4.w"]), items, 1001);
    expect(kept[0]?.array?.indices).toEqual([1]);
  });

  test("an array with nothing done is kept as it was", () => {
    const jobs = [mapJob("j000", whole(5))];
    expect(pruneDone(jobs, new Set(), items, 1001)).toEqual(jobs);
  });

  test("leaves the drafts it was given unchanged", () => {
    const jobs = [mapJob("j000", whole(5)), plain("j001", ["p.b"], [afterok("j000")]), plain("j002", ["p.c"], [afterok("j001")])];
    const before = structuredClone(jobs);
    pruneDone(jobs, new Set(["p.m.0.w", "p.b"]), items, 1001);
    expect(jobs).toEqual(before);
  });
});
