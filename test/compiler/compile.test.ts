import { describe, expect, test } from "vitest";
import { FunctionStep } from "../../src/index.js";
import { CompileError } from "../../src/compiler/errors.js";
import { chunkArray } from "../../src/compiler/chunk.js";
import { MapStep } from "../../src/spec/map-step.js";
import { templateRenderer } from "../../src/app/renderer.js";
import { cmd, compileTree, group, pipe, target } from "./helpers.js";

describe("sequential steps", () => {
  test("consecutive steps with equal resources are fused into one job that lists the fusion", () => {
    const plan = compileTree(pipe("p", [cmd("a"), cmd("b"), cmd("c")]));
    expect(plan.jobs).toHaveLength(1);
    expect(plan.jobs[0]?.steps).toEqual(["p.a", "p.b", "p.c"]);
    expect(plan.jobs[0]?.fused).toEqual(["p.a", "p.b", "p.c"]);
  });

  test("without fusion every step is its own job chained with afterok", () => {
    const plan = compileTree(pipe("p", [cmd("a"), cmd("b"), cmd("c")]), { fuse: false });
    expect(plan.jobs.map((j) => j.steps)).toEqual([["p.a"], ["p.b"], ["p.c"]]);
    expect(plan.jobs.map((j) => j.dependencies)).toEqual([[], [{ job: "j000", type: "afterok" }], [{ job: "j001", type: "afterok" }]]);
    expect(plan.jobs.every((j) => j.fused === null)).toBe(true);
  });

  test("a step that opts out of fusion gets its own job between fused neighbours", () => {
    const plan = compileTree(pipe("p", [cmd("a"), cmd("b"), cmd("x", { fuse: false }), cmd("c"), cmd("d")]));
    expect(plan.jobs.map((j) => j.steps)).toEqual([["p.a", "p.b"], ["p.x"], ["p.c", "p.d"]]);
  });

  test("steps with different resources are not fused", () => {
    const plan = compileTree(pipe("p", [cmd("a"), cmd("b", { resources: { cpus: 4 } }), cmd("c", { resources: { cpus: 4 } })]));
    expect(plan.jobs.map((j) => j.steps)).toEqual([["p.a"], ["p.b", "p.c"]]);
    expect(plan.jobs[1]?.resources.cpus).toBe(4);
  });

  test("a fused job's time limit is the sum of its steps' limits", () => {
    const plan = compileTree(pipe("p", [cmd("a", { resources: { time: "10:00" } }), cmd("b", { resources: { time: "10:00" } })]));
    expect(plan.jobs[0]?.resources.time).toBe("00:20:00");
  });

  test("a step with continue_on_error runs alone and its dependents wait with afterany", () => {
    const plan = compileTree(pipe("p", [cmd("a"), cmd("flaky", { continue_on_error: true }), cmd("b")]));
    expect(plan.jobs.map((j) => j.steps)).toEqual([["p.a"], ["p.flaky"], ["p.b"]]);
    expect(plan.jobs[1]?.dependencies).toEqual([{ job: "j000", type: "afterok" }]);
    expect(plan.jobs[2]?.dependencies).toEqual([{ job: "j001", type: "afterany" }]);
  });

  test("nested sequential pipelines are flattened and fuse across their boundaries", () => {
    const plan = compileTree(pipe("root", [pipe("prep", [cmd("a"), cmd("b")]), pipe("post", [cmd("c")])]));
    expect(plan.jobs).toHaveLength(1);
    expect(plan.jobs[0]?.steps).toEqual(["root.prep.a", "root.prep.b", "root.post.c"]);
  });

  test("a pipeline opted out of fusion keeps each of its steps in its own job", () => {
    const plan = compileTree(pipe("root", [cmd("a"), pipe("solo", [cmd("b"), cmd("c")])]), {
      canFuse: (s) => s.name !== "solo",
    });
    expect(plan.jobs.map((j) => j.steps)).toEqual([["root.a"], ["root.solo.b"], ["root.solo.c"]]);
  });
});

describe("parallel groups", () => {
  test("a parallel group becomes ONE array job whose task i runs child i", () => {
    const plan = compileTree(pipe("t", [cmd("prep"), group("renders", [cmd("r0"), cmd("r1"), cmd("r2"), cmd("r3")]), cmd("meta", { fuse: false })]));
    expect(plan.jobs).toHaveLength(3);
    const arr = plan.jobs[1];
    expect(arr?.shape).toBe("group");
    expect(arr?.array).toMatchObject({ count: 4, offset: 0, chunks: 1, total: 4 });
    expect(arr?.bodies.map((b) => b.steps.map((s) => s.key))).toEqual([["t.renders.r0"], ["t.renders.r1"], ["t.renders.r2"], ["t.renders.r3"]]);
    expect(arr?.dependencies).toEqual([{ job: "j000", type: "afterok" }]);
    expect(plan.jobs[2]?.dependencies).toEqual([{ job: "j001", type: "afterok" }]);
  });

  test("a child pipeline of a parallel group runs whole inside its task with a unit state", () => {
    const plan = compileTree(pipe("t", [group("g", [pipe("left", [cmd("a"), cmd("b")]), cmd("right")])]));
    const bodies = plan.jobs[0]?.bodies ?? [];
    expect(bodies[0]).toMatchObject({ unitKey: "t.g.left" });
    expect(bodies[0]?.steps.map((s) => s.key)).toEqual(["t.g.left.a", "t.g.left.b"]);
    expect(bodies[1]).toMatchObject({ unitKey: null });
  });

  test("an explicit group throttle becomes the array's %N", () => {
    const plan = compileTree(pipe("t", [group("g", [cmd("a"), cmd("b"), cmd("c")], { concurrency: 2 })]));
    expect(plan.jobs[0]?.array?.throttle).toBe(2);
  });

  test("array tasks share the largest resource request of their children", () => {
    const plan = compileTree(pipe("t", [group("g", [cmd("a", { resources: { cpus: 2, mem: "2G" } }), cmd("b", { resources: { cpus: 4, mem: "500M" } })])]));
    expect(plan.jobs[0]?.resources).toMatchObject({ cpus: 4, mem: "2G" });
  });

  test("array children on different partitions are refused with the group's key", () => {
    expect(() =>
      compileTree(pipe("t", [group("g", [cmd("a", { resources: { partition: "cpu" } }), cmd("b", { resources: { partition: "gpu" } })])])),
    ).toThrow(/t\.g: .*share partition/);
  });
});

describe("checks at compile time", () => {
  test("steps that exist only in-process are refused for cluster runs, with their names", () => {
    const inproc = new FunctionStep({ name: "pyish", run: () => undefined });
    let error: unknown;
    try {
      compileTree(pipe("p", [cmd("a"), pipe("inner", [inproc])]));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompileError);
    expect(String(error)).toMatch(/p\.inner\.pyish \(FunctionStep\)/);
  });

  test("a requirement nobody provides is an error naming the step and the key", () => {
    expect(() => compileTree(pipe("p", [cmd("a", { requires: ["model"] })]))).toThrow(/step p\.a requires 'model'/);
  });

  test("a requirement provided by the context or an upstream step resolves to its source", () => {
    const plan = compileTree(pipe("p", [cmd("a", { requires: ["model"], provides: ["scene"] }), cmd("b", { requires: ["scene", "model"] })]), {
      context: { model: "cube.glb" },
    });
    const steps = plan.jobs.flatMap((j) => j.bodies.flatMap((b) => b.steps));
    expect(steps[0]?.needs).toEqual([{ key: "model", from: "context" }]);
    expect(steps[1]?.needs).toEqual([
      { key: "scene", from: "p.a" },
      { key: "model", from: "context" },
    ]);
  });

  test("parallel siblings cannot satisfy each other, and later steps see every child's provides", () => {
    const plan = compileTree(pipe("p", [group("g", [cmd("x", { provides: ["vx"] }), cmd("y", { provides: ["vy"] })]), cmd("after", { requires: ["vx", "vy"] })]));
    const after = plan.jobs[1]?.bodies[0]?.steps[0];
    expect(after?.needs).toEqual([
      { key: "vx", from: "p.g.x" },
      { key: "vy", from: "p.g.y" },
    ]);
  });

  test("context keys that would shadow shell or SLURM variables are refused", () => {
    expect(() => compileTree(pipe("p", [cmd("a")]), { context: { PATH: "/evil" } })).toThrow(/reserved/);
    expect(() => compileTree(pipe("p", [cmd("a")]), { context: { "a-b": "x" } })).toThrow(/shell identifier/);
  });

  test("a context value too large for an environment variable is refused with its key", () => {
    expect(() => compileTree(pipe("p", [cmd("a")]), { context: { big: "x".repeat(200_000) } })).toThrow(/context value 'big' is 200000 bytes/);
  });

  test("a hostile run id is refused", () => {
    expect(() => compileTree(pipe("p", [cmd("a")]), { runId: "../x" })).toThrow(/invalid run id/);
  });
});

describe("the plan as data", () => {
  test("compiling twice gives byte-identical plans", () => {
    const build = () => pipe("t", [cmd("prep", { requires: ["m"] }), group("g", [cmd("a"), cmd("b")]), cmd("z")]);
    const one = JSON.stringify(compileTree(build(), { context: { m: "x" } }));
    const two = JSON.stringify(compileTree(build(), { context: { m: "x" } }));
    expect(one).toBe(two);
  });

  test("the bundle holds every job script, the library, the submit script and the context as NUL records", () => {
    const plan = compileTree(pipe("p", [cmd("a"), cmd("b", { fuse: false })]), { context: { model: "a b\nc", n: 3 } });
    expect(Object.keys(plan.files).sort()).toEqual(["context.env0", "scripts/j000.sbatch", "scripts/j001.sbatch", "scripts/lib.sh", "scripts/submit.sh"]);
    expect(plan.files["context.env0"]).toBe("model=a b\nc\0n=3\0");
    expect(plan.layout.runDir).toBe("/tmp/runs/p/run1");
  });

  test("the plan keeps the tree with namespaced keys for merging results", () => {
    const plan = compileTree(pipe("t", [cmd("a"), group("g", [cmd("b")])]));
    expect(plan.tree.key).toBe("t");
    expect(plan.tree.children.map((c) => c.key)).toEqual(["t.a", "t.g"]);
    expect(plan.tree.children[1]?.children[0]?.key).toBe("t.g.b");
  });
});

describe("chunking arrays above MaxArraySize", () => {
  test("2,500 tasks with MaxArraySize 1001 and throttle 40 give three 0-based chunks with offsets and a shared throttle of 40", () => {
    const chunks = chunkArray(2500, 1001, 40);
    expect(chunks.map((c) => [c.count, c.offset, c.throttle, c.after])).toEqual([
      [1001, 0, 14, null],
      [1001, 1001, 13, null],
      [498, 2002, 13, null],
    ]);
    expect(chunks.reduce((n, c) => n + (c.throttle ?? 0), 0)).toBe(40);
  });

  test("a throttle smaller than the chunk count runs chunks one task at a time, chained so at most N run at once", () => {
    const chunks = chunkArray(12, 5, 2);
    expect(chunks.map((c) => [c.count, c.offset, c.throttle, c.after])).toEqual([
      [5, 0, 1, null],
      [5, 5, 1, null],
      [2, 10, 1, 0],
    ]);
  });

  test("a chunked group's dependents wait for every chunk", () => {
    const children = Array.from({ length: 7 }, (_, i) => cmd(`c${i}`));
    const plan = compileTree(pipe("t", [group("g", children), cmd("after")]), { target: target({ maxArraySize: 3 }) });
    expect(plan.jobs.filter((j) => j.shape === "group").map((j) => [j.array?.count, j.array?.offset])).toEqual([
      [3, 0],
      [3, 3],
      [1, 6],
    ]);
    expect(plan.jobs[3]?.dependencies.map((d) => d.job)).toEqual(["j000", "j001", "j002"]);
  });
});

describe("maps", () => {
  const items = (n: number) => Array.from({ length: n }, (_, i) => `model-${i}.glb`);

  test("a map becomes one array over its items, its steps keyed per item with {i}, the item bound to its key", () => {
    const m = new MapStep({ name: "validate", items: items(3), as: "model", steps: [cmd("inspect", { requires: ["model"], provides: ["report"] }), cmd("check", { requires: ["report"] })] });
    const plan = compileTree(pipe("batch", [m, cmd("summary", { fuse: false })]));
    const job = plan.jobs[0];
    expect(job?.shape).toBe("map");
    expect(job?.array).toMatchObject({ count: 3, offset: 0, total: 3 });
    expect(job?.map).toEqual({ key: "batch.validate", itemsFile: "items/batch.validate.txt", itemKey: "model", continueOnItemError: false });
    expect(job?.bodies).toHaveLength(1);
    expect(job?.bodies[0]?.unitKey).toBe("batch.validate.{i}");
    expect(job?.bodies[0]?.steps.map((s) => [s.key, s.needs])).toEqual([
      ["batch.validate.{i}.inspect", [{ key: "model", from: "context" }]],
      ["batch.validate.{i}.check", [{ key: "report", from: "batch.validate.{i}.inspect" }]],
    ]);
    expect(plan.files["items/batch.validate.txt"]).toBe("model-0.glb\nmodel-1.glb\nmodel-2.glb\n");
    expect(plan.jobs[1]?.dependencies).toEqual([{ job: "j000", type: "afterok" }]);
    expect(plan.tree.children[0]).toMatchObject({ kind: "map", items: 3, item_key: "model" });
    expect(plan.tree.children[0]?.children[0]?.key).toBe("batch.validate.{i}.inspect");
  });

  test("2,500 items with MaxArraySize 1001 and throttle 40 compile to three chunks whose throttles add up to 40", () => {
    const m = new MapStep({ name: "m", items: items(2500), concurrency: 40, steps: [cmd("work", { requires: ["item"] })] });
    const plan = compileTree(pipe("big", [m]), { target: target({ maxArraySize: 1001 }) });
    expect(plan.jobs.map((j) => [j.array?.count, j.array?.offset, j.array?.throttle])).toEqual([
      [1001, 0, 14],
      [1001, 1001, 13],
      [498, 2002, 13],
    ]);
  });

  test("a map nested in a parallel group is refused for cluster runs, with its key", () => {
    const m = new MapStep({ name: "m", items: items(2), steps: [cmd("w")] });
    expect(() => compileTree(pipe("p", [group("g", [m, cmd("other")])]))).toThrow(/p\.g\.m: a map inside parallel group p\.g/);
  });

  test("an empty map compiles to no job and its dependents keep their upstream dependency", () => {
    const m = new MapStep({ name: "m", items: [], steps: [cmd("w")] });
    const plan = compileTree(pipe("p", [cmd("a"), m, cmd("b", { fuse: false })]));
    expect(plan.jobs.map((j) => j.steps)).toEqual([["p.a"], ["p.b"]]);
    expect(plan.jobs[1]?.dependencies).toEqual([{ job: "j000", type: "afterok" }]);
  });
});

describe("resuming: leaving out what already succeeded", () => {
  test("jobs whose every step is done are left out and their dependents wait for what they waited for", () => {
    const tree = () => pipe("p", [cmd("a"), cmd("b", { fuse: false }), cmd("c", { fuse: false })]);
    const plan = compileTree(tree(), { done: new Set(["p.b"]) });
    expect(plan.jobs.map((j) => [j.id, j.steps])).toEqual([
      ["j000", ["p.a"]],
      ["j002", ["p.c"]],
    ]);
    expect(plan.jobs[1]?.dependencies).toEqual([{ job: "j000", type: "afterok" }]);
    const nothingLeft = compileTree(tree(), { done: new Set(["p.a", "p.b", "p.c"]) });
    expect(nothingLeft.jobs).toEqual([]);
  });

  test("a group reruns only its failed tasks as a sparse array", () => {
    const plan = compileTree(pipe("t", [group("g", [cmd("r0"), cmd("r1"), cmd("r2"), cmd("r3")])]), {
      done: new Set(["t.g.r0", "t.g.r2"]),
    });
    expect(plan.jobs[0]?.array).toMatchObject({ count: 4, indices: [1, 3] });
  });

  test("a chunked map reruns only the items not done, remapped onto array task ids from 0 (the logical tasks in indices)", () => {
    const m = new MapStep({ name: "m", items: ["a", "b", "c", "d", "e", "f", "g"], steps: [cmd("w", { requires: ["item"] })] });
    const done = new Set(["big.m.0.w", "big.m.1.w", "big.m.2.w", "big.m.4.w", "big.m.5.w", "big.m.6.w"]);
    const plan = compileTree(pipe("big", [m]), { target: target({ maxArraySize: 3 }), done, renderer: templateRenderer() });
    expect(plan.jobs.map((j) => [j.array?.offset, j.array?.indices])).toEqual([[3, [3]]]);
    const script = plan.jobs[0]?.script ?? "";
    expect(script).toMatch(/^#SBATCH --array=0$/m);
    expect(script).toMatch(/^hp_job_begin j\d+ 3 1 3$/m);
  });

  test("a rerun of tasks far above MaxArraySize in a large logical array asks sbatch only for ids below it", () => {
    const items = Array.from({ length: 50 }, (_, i) => `i${i}`);
    const m = new MapStep({ name: "m", items, steps: [cmd("w", { requires: ["item"] })] });
    const done = new Set(items.map((_, i) => `big.m.${i}.w`).filter((k) => !["big.m.17.w", "big.m.18.w", "big.m.49.w"].includes(k)));
    const plan = compileTree(pipe("big", [m]), { target: target({ maxArraySize: 20 }), done, renderer: templateRenderer() });
    expect(plan.jobs.map((j) => [j.array?.offset, j.array?.indices])).toEqual([
      [0, [17, 18]],
      [40, [49]],
    ]);
    expect(plan.jobs.map((j) => /^#SBATCH --array=(\S+)$/m.exec(j.script)?.[1])).toEqual(["0-1", "0"]);
  });
});
