import { realpathSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FunctionStep, Pipeline, planTree, shortSignature, StepDefinitionError } from "../../src/core/index.js";
import type { Context, StepFunction } from "../../src/core/index.js";
import { CommandStep } from "../../src/spec/command-step.js";
import { MapStep } from "../../src/spec/map-step.js";
import type { MapStepOptions } from "../../src/spec/map-step.js";
import { tempDir } from "./helpers.js";

function fn(name: string, run: StepFunction, extra: { requires?: string[]; provides?: string[] } = {}): FunctionStep {
  return new FunctionStep({ name, run, ...extra });
}

function map(options: Partial<MapStepOptions> & Pick<MapStepOptions, "items">): MapStep {
  return new MapStep({ name: "m", ...options });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("MapStep in-process", () => {
  it("records <map>.<i> for every item and <map>.<i>.<step> for its steps", async () => {
    const m = map({ items: ["a", "b", "c"], steps: [fn("one", () => undefined), fn("two", () => undefined)] });
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [m] }).run(context);
    expect(result.success).toBe(true);
    expect(Object.keys(context.step_states ?? {}).sort()).toEqual(
      ["p", "p.m", "p.m.0", "p.m.0.one", "p.m.0.two", "p.m.1", "p.m.1.one", "p.m.1.two", "p.m.2", "p.m.2.one", "p.m.2.two"].sort(),
    );
    expect(context.step_states?.["p.m"]?.meta).toEqual({ items: 3, item_key: "item" });
  });

  it("binds each item to its key in a scoped context that does not leak into the parent", async () => {
    const seen: string[] = [];
    const m = map({
      items: ["x.glb", "y.glb"],
      as: "model",
      concurrency: 1,
      steps: [
        fn("set", (c) => void (c.inner = `from ${String(c.model)}`), { provides: ["inner"] }),
        fn("see", (c) => void seen.push(`${String(c.model)}|${String(c.base)}|${String(c.inner)}`), { requires: ["inner"] }),
      ],
    });
    const context: Context = { base: "b" };
    await new Pipeline({ name: "p", steps: [m] }).run(context);
    expect(seen).toEqual(["x.glb|b|from x.glb", "y.glb|b|from y.glb"]);
    expect(context.model).toBeUndefined();
    expect(context.inner).toBeUndefined();
  });

  it("requires what its steps need except the item key, and provides nothing", () => {
    const m = map({ items: ["a"], as: "model", steps: [fn("s", () => undefined, { requires: ["model", "samples"], provides: ["k"] }), fn("t", () => undefined, { requires: ["k"] })] });
    expect(m.requires).toEqual(["samples"]);
    expect(m.provides).toEqual([]);
    expect(m.kind).toBe("map");
  });

  it("runs at most `concurrency` items at once", async () => {
    let running = 0;
    let most = 0;
    const m = map({
      items: Array.from({ length: 12 }, (_, i) => `i${i}`),
      concurrency: 3,
      steps: [
        fn("work", async () => {
          running += 1;
          most = Math.max(most, running);
          await sleep(10);
          running -= 1;
        }),
      ],
    });
    expect((await m.run({})).success).toBe(true);
    expect(most).toBe(3);
  });

  it("stops starting items after the first failure and fails with the failed step's key", async () => {
    const started: string[] = [];
    const m = map({
      items: ["a", "b", "c", "d", "e"],
      concurrency: 1,
      steps: [
        fn("work", (c) => {
          started.push(String(c.item));
          if (c.item === "b") throw new Error("broken model");
        }),
      ],
    });
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [m] }).run(context);
    expect(result.success).toBe(false);
    expect(started).toEqual(["a", "b"]);
    const state = context.step_states?.["p.m"];
    expect(state?.failure).toBe("STEP_EXCEPTION");
    expect(state?.meta.failed_step).toBe("p.m.1.work");
    expect(state?.meta.items_not_started).toBe(3);
    expect(context.step_states?.["p.m.2"]).toBeUndefined();
  });

  it("with continue_on_item_error runs every item, succeeds and lists the failed items", async () => {
    const m = map({
      items: ["a", "bad1", "c", "bad2"],
      continue_on_item_error: true,
      steps: [
        fn("work", (c) => {
          if (String(c.item).startsWith("bad")) throw new Error("bad item");
        }),
      ],
    });
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [m] }).run(context);
    expect(result.success).toBe(true);
    expect(context.step_states?.["p.m"]?.meta.failed_items).toEqual([1, 3]);
    expect(context.step_states?.["p.m.1"]?.success).toBe(false);
    expect(context.step_states?.["p.m.1.work"]?.failure).toBe("STEP_EXCEPTION");
    expect(context.step_states?.["p.m.2.work"]?.success).toBe(true);
  });

  it("succeeds with no items", async () => {
    expect((await map({ items: [], steps: [fn("s", () => undefined)] }).run({})).success).toBe(true);
  });

  it("gives CommandSteps the item as a variable, as HPCPIPE_ITEM and its index as HPCPIPE_TASK", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const m = map({
        items: ["a.glb", "b.glb"],
        as: "model",
        steps: [new CommandStep({ name: "show", command: 'printf "%s %s %s %s" "$model" "$HPCPIPE_ITEM" "$HPCPIPE_TASK" "$HPCPIPE_STEP"', requires: ["model"] })],
      });
      const context: Context = {};
      await new Pipeline({ name: "p", steps: [m] }).run(context, { workDir: realpathSync(dir) });
      expect(context.step_states?.["p.m.0.show"]?.meta.stdout_tail).toBe("a.glb a.glb 0 p.m.0.show");
      expect(context.step_states?.["p.m.1.show"]?.meta.stdout_tail).toBe("b.glb b.glb 1 p.m.1.show");
    } finally {
      cleanup();
    }
  });

  it("does not reuse an earlier success at an index whose item changed", async () => {
    const runs: string[] = [];
    const steps = [fn("work", (c) => void runs.push(String(c.item)))];
    const context: Context = {};
    await new Pipeline({ name: "p", steps: [map({ items: ["a", "b"], steps })] }).run(context);
    await new Pipeline({ name: "p", steps: [map({ items: ["a", "z"], steps })] }).run(context);
    expect(runs).toEqual(["a", "b", "z"]);
  });

  it("resumes a map: items that succeeded with the same item are skipped", async () => {
    const runs: string[] = [];
    let failB = true;
    const steps = [
      fn("work", (c) => {
        runs.push(String(c.item));
        if (c.item === "b" && failB) throw new Error("transient");
      }),
    ];
    const context: Context = {};
    const first = await new Pipeline({ name: "p", steps: [map({ items: ["a", "b"], concurrency: 1, steps })] }).run(context);
    expect(first.success).toBe(false);
    failB = false;
    const second = await new Pipeline({ name: "p", steps: [map({ items: ["a", "b"], concurrency: 1, steps })] }).run(context);
    expect(second.success).toBe(true);
    expect(runs).toEqual(["a", "b", "b"]);
  });

  it("has a signature that changes with the items, the item key and continue_on_item_error", () => {
    const steps = [fn("s", () => undefined)];
    const base = shortSignature(map({ items: ["a", "b"], steps }));
    expect(shortSignature(map({ items: ["a", "b"], steps }))).toBe(base);
    expect(shortSignature(map({ items: ["a", "c"], steps }))).not.toBe(base);
    expect(shortSignature(map({ items: ["a", "b"], as: "other", steps }))).not.toBe(base);
    expect(shortSignature(map({ items: ["a", "b"], continue_on_item_error: true, steps }))).not.toBe(base);
    expect(map({ items: ["a", "b"], steps }).signatureData()).toMatchObject({ as: "item", items: 2 });
  });

  it("shows its children in a dry-run plan as <map>.{i}.<child>, with the item key available", () => {
    const m = map({ items: ["a"], as: "model", steps: [fn("check", () => undefined, { requires: ["model", "other"] })] });
    const plan = planTree(new Pipeline({ name: "p", steps: [m] }), {});
    expect(plan.map((e) => `${e.key} ${e.kind}`)).toEqual(["p pipeline", "p.m map", "p.m.{i}.check step"]);
    expect(plan.find((e) => e.key === "p.m.{i}.check")?.missing).toEqual(["other"]);
  });
});

describe("MapStep definition", () => {
  const steps = [fn("s", () => undefined)];

  it("refuses an item with a newline, naming the map and the item's index", () => {
    expect(() => map({ items: ["ok", "a\nb"], steps })).toThrow(StepDefinitionError);
    expect(() => map({ items: ["ok", "a\nb"], steps })).toThrow("map m: item 1 must not contain a newline");
  });

  it("refuses empty, over-long, NUL and control-character items, naming the source", () => {
    expect(() => map({ items: [""], steps })).toThrow("map m: item 0 must not be empty");
    expect(() => map({ items: ["x".repeat(4097)], steps })).toThrow(/item 0 is longer than 4096 characters/);
    expect(() => map({ items: ["a\0b"], steps })).toThrow(/item 0 must not contain a NUL byte/);
    expect(() => map({ items: ["a\u001bb"], steps, itemsSource: "list.txt" })).toThrow("map m: item 0 (from list.txt) must not contain a control character");
  });

  it("refuses an item key that is not a valid context key", () => {
    expect(() => map({ items: ["a"], as: "a-b", steps })).toThrow(/map m: as: context key "a-b" must be a shell identifier/);
    expect(() => map({ items: ["a"], as: "PATH", steps })).toThrow(/reserved/);
  });

  it("refuses a concurrency below 1", () => {
    expect(() => map({ items: ["a"], concurrency: 0, steps })).toThrow(/concurrency must be a whole number >= 1/);
  });

  it("exposes what a compiler reads: items, as, throttle and continue_on_item_error", () => {
    const m = map({ items: ["a", "b"], as: "model", concurrency: 5, continue_on_item_error: true, steps });
    expect({ items: m.items, as: m.as, throttle: m.throttle, coie: m.continue_on_item_error }).toEqual({ items: ["a", "b"], as: "model", throttle: 5, coie: true });
    expect(map({ items: ["a"], steps }).throttle).toBeNull();
    expect(m.itemPipeline(1).name).toBe("1");
  });
});
