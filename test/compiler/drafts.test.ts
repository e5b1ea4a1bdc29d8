import { describe, expect, test } from "vitest";
import { addArrayJobs, addSingleJob } from "../../src/compiler/drafts.js";
import type { ArrayRequest, JobDraft } from "../../src/compiler/drafts.js";
import type { Dependency } from "../../src/plan/plan.js";
import { leafUnit, planStepOf } from "./helpers.js";

const request = (over: Partial<ArrayRequest> = {}): ArrayRequest => ({
  label: "render",
  shape: "map",
  bodies: [{ unitKey: "p.render.{i}", steps: [planStepOf("p.render.{i}.blender")] }],
  total: 5,
  throttle: null,
  resources: { cpus: 2 },
  ...over,
});

describe("array jobs: chunks over MaxArraySize", () => {
  test("chunks are numbered on from the jobs already built, each 0-based with its offset, and every chunk hands on afterok", () => {
    const jobs: JobDraft[] = [];
    addSingleJob(jobs, [leafUnit("p.prep")], []);
    const upstream: Dependency[] = [{ job: "j000", type: "afterok" }];
    const out = addArrayJobs(jobs, request({ total: 5 }), upstream, 2);
    expect(jobs.map((j) => [j.id, j.name, j.scriptPath])).toEqual([
      ["j000", "hp-j000-prep", "scripts/j000.sbatch"],
      ["j001", "hp-j001-render-0", "scripts/j001.sbatch"],
      ["j002", "hp-j002-render-1", "scripts/j002.sbatch"],
      ["j003", "hp-j003-render-2", "scripts/j003.sbatch"],
    ]);
    expect(jobs.slice(1).map((j) => j.array)).toEqual([
      { count: 2, offset: 0, throttle: null, chunk: 0, chunks: 3, total: 5, indices: null },
      { count: 2, offset: 2, throttle: null, chunk: 1, chunks: 3, total: 5, indices: null },
      { count: 1, offset: 4, throttle: null, chunk: 2, chunks: 3, total: 5, indices: null },
    ]);
    expect(jobs.slice(1).map((j) => j.dependencies)).toEqual([upstream, upstream, upstream]);
    expect(jobs.slice(1).map((j) => j.steps)).toEqual([["p.render.{i}.blender"], ["p.render.{i}.blender"], ["p.render.{i}.blender"]]);
    expect(out).toEqual(["j001", "j002", "j003"].map((job) => ({ job, type: "afterok" })));
  });

  test("each chunk gets its own copy of the dependencies it waits on", () => {
    const jobs: JobDraft[] = [];
    const upstream: Dependency[] = [{ job: "j009", type: "afterany" }];
    addArrayJobs(jobs, request({ total: 4 }), upstream, 2);
    expect(jobs[0]?.dependencies).not.toBe(upstream);
    expect(jobs[0]?.dependencies[0]).not.toBe(jobs[1]?.dependencies[0]);
  });

  test("a throttle below the chunk count chains the chunks with afterany so at most that many run at once", () => {
    const jobs: JobDraft[] = [];
    addArrayJobs(jobs, request({ total: 6, throttle: 2 }), [], 2);
    expect(jobs.map((j) => [j.array?.throttle, j.dependencies])).toEqual([
      [1, []],
      [1, []],
      [1, [{ job: "j000", type: "afterany" }]],
    ]);
  });

  test("an array that fits keeps its label, and a map's or a packed group's details go into the job", () => {
    const jobs: JobDraft[] = [];
    const map = { key: "p.render", itemsFile: "items/p.render.txt", itemKey: "item", continueOnItemError: false };
    addArrayJobs(jobs, request({ total: 3, throttle: 2, map }), [], 1001);
    addArrayJobs(jobs, request({ shape: "group", label: "g", total: 2, groupPack: { itemsPerTask: 2, itemCpus: 1 } }), [], 1001);
    expect(jobs.map((j) => [j.name, j.array?.throttle, j.map, j.groupPack])).toEqual([
      ["hp-j000-render", 2, map, undefined],
      ["hp-j001-g", null, undefined, { itemsPerTask: 2, itemCpus: 1 }],
    ]);
  });

  test("an empty array adds no job and its successor waits on what came before", () => {
    const jobs: JobDraft[] = [];
    const upstream: Dependency[] = [{ job: "j004", type: "afterok" }];
    expect(addArrayJobs(jobs, request({ total: 0 }), upstream, 2)).toBe(upstream);
    expect(jobs).toEqual([]);
  });
});

describe("plain jobs", () => {
  test("fused leaves run in one job whose time limit is the sum of theirs and which lists the fusion", () => {
    const jobs: JobDraft[] = [];
    const out = addSingleJob(jobs, [leafUnit("p.a", { resources: { cpus: 2, time: "10:00" } }), leafUnit("p.b", { resources: { cpus: 2, time: "1:00:00" } })], []);
    expect(jobs[0]).toMatchObject({ id: "j000", shape: "single", array: null, steps: ["p.a", "p.b"], fused: ["p.a", "p.b"], resources: { cpus: 2, time: "01:10:00" } });
    expect(out).toEqual([{ job: "j000", type: "afterok" }]);
  });

  test("a step with continue_on_error hands on afterany; a lone step is no fusion", () => {
    const jobs: JobDraft[] = [];
    const out = addSingleJob(jobs, [leafUnit("p.flaky", { fusable: false, coe: true })], [{ job: "j007", type: "afterok" }]);
    expect(jobs[0]).toMatchObject({ fused: null, dependencies: [{ job: "j007", type: "afterok" }] });
    expect(out).toEqual([{ job: "j000", type: "afterany" }]);
  });

  test("a job name is cut to 64 characters", () => {
    const jobs: JobDraft[] = [];
    addSingleJob(jobs, [leafUnit(`p.${"x".repeat(100)}`)], []);
    expect(jobs[0]?.name).toBe(`hp-j000-${"x".repeat(56)}`);
  });
});
