import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { CompletedState, ExitCode, exitCodeFrom, Pipeline, StepDefinitionError, StepGroup } from "../../src/core/index.js";
import type { Context, PipelineStep } from "../../src/core/index.js";
import { Barrier, deferred, flush, fnStep, stateAt, tracedStep } from "./helpers.js";
import type { Trace } from "./helpers.js";

/** Steps that count how many of them are running at once. */
function inFlightMeter(): { step: (name: string) => PipelineStep; max: () => number; current: () => number } {
  let current = 0;
  let max = 0;
  return {
    step: (name) =>
      fnStep(name, async () => {
        current += 1;
        max = Math.max(max, current);
        await flush(3);
        current -= 1;
      }),
    max: () => max,
    current: () => current,
  };
}

const noop = (): void => {};

describe("StepGroup, sequential", () => {
  it("runs its children one at a time in the order given", async () => {
    const trace: Trace = [];
    const g = new StepGroup({
      name: "g",
      steps: ["a", "b", "c"].map((n) => tracedStep(n, trace, { body: () => flush(2) })),
    });
    const result = await g.run({});
    expect(result.success).toBe(true);
    expect(trace).toEqual(["start:a", "end:a", "start:b", "end:b", "start:c", "end:c"]);
  });

  it("never has two children in flight", async () => {
    const meter = inFlightMeter();
    await new StepGroup({ name: "g", steps: ["a", "b", "c", "d"].map(meter.step) }).run({});
    expect(meter.max()).toBe(1);
  });

  it("lets a child use what an earlier sibling provides, and allows overlapping provides", async () => {
    const g = new StepGroup({
      name: "g",
      steps: [
        fnStep("a", (c) => void (c.k = 1), { provides: ["k"] }),
        fnStep("b", (c) => void (c.k = Number(c.k) + 1), { requires: ["k"], provides: ["k"] }),
      ],
    });
    const context: Context = {};
    expect((await g.run(context)).success).toBe(true);
    expect(context.k).toBe(2);
  });

  it("stops at the first failed child", async () => {
    const trace: Trace = [];
    const g = new StepGroup({ name: "g", steps: [fnStep("a", () => CompletedState.fail("x")), tracedStep("b", trace)] });
    const result = await g.run({});
    expect(result.failure).toBe("STEP_FAILED");
    expect(result.meta.failed_step).toBe("g.a");
    expect(trace).toEqual([]);
  });
});

describe("StepGroup, parallel", () => {
  it("rejects children whose provides overlap, at construction", () => {
    expect(
      () =>
        new StepGroup({
          name: "g",
          parallel: true,
          steps: [fnStep("a", noop, { provides: ["img", "a_only"] }), fnStep("b", noop, { provides: ["img"] })],
        }),
    ).toThrow(/children 'a' and 'b' both provide 'img'/);
  });

  it("rejects overlap hidden inside a nested pipeline child", () => {
    const nested = new Pipeline({ name: "nested", steps: [fnStep("inner", noop, { provides: ["img"] })] });
    expect(() => new StepGroup({ name: "g", parallel: true, steps: [fnStep("a", noop, { provides: ["img"] }), nested] })).toThrow(
      StepDefinitionError,
    );
  });

  it("rejects a child that requires what a parallel sibling provides", () => {
    expect(
      () =>
        new StepGroup({
          name: "g",
          parallel: true,
          steps: [fnStep("producer", noop, { provides: ["k"] }), fnStep("consumer", noop, { requires: ["k"] })],
        }),
    ).toThrow(/child 'consumer' requires 'k', which its sibling 'producer' provides/);
  });

  it("accepts a child that requires a key it provides itself", () => {
    expect(() => new StepGroup({ name: "g", parallel: true, steps: [fnStep("a", noop, { requires: ["k"], provides: ["k"] })] })).not.toThrow();
  });

  it("runs every child, sets every provided key, and records every child's state", async () => {
    const context: Context = {};
    const g = new StepGroup({
      name: "renders",
      parallel: true,
      steps: ["textured", "normal", "depth", "edge"].map((n) => fnStep(n, (c) => void (c[n] = `${n}.png`), { provides: [n] })),
    });
    const result = await g.run(context);
    expect(result.success).toBe(true);
    expect(context).toMatchObject({ textured: "textured.png", normal: "normal.png", depth: "depth.png", edge: "edge.png" });
    expect(Object.keys(result.step_states ?? {}).sort()).toEqual(["renders.depth", "renders.edge", "renders.normal", "renders.textured"]);
  });

  it(
    "runs its children at the same time: each waits for all siblings to start, which would deadlock if run in sequence",
    async () => {
      const trace: Trace = [];
      const barrier = new Barrier(4);
      const g = new StepGroup({
        name: "g",
        parallel: true,
        concurrency: 4,
        steps: ["a", "b", "c", "d"].map((n) => tracedStep(n, trace, { body: () => barrier.arrive() })),
      });
      const result = await g.run({});
      expect(result.success).toBe(true);
      // Every child started before any finished: the runs overlapped.
      expect(trace.slice(0, 4).every((e) => e.startsWith("start:"))).toBe(true);
      expect(trace.slice(4).every((e) => e.startsWith("end:"))).toBe(true);
    },
    2000,
  );

  it.each([
    [1, 5],
    [2, 5],
    [3, 7],
    [8, 3],
  ])("with concurrency %i over %i children, the number of children in flight reaches but never exceeds the bound", async (limit, n) => {
    const meter = inFlightMeter();
    const g = new StepGroup({
      name: "g",
      parallel: true,
      concurrency: limit,
      steps: Array.from({ length: n }, (_, i) => meter.step(`c${i}`)),
    });
    const result = await g.run({});
    expect(result.success).toBe(true);
    expect(meter.max()).toBe(Math.min(limit, n));
    expect(meter.current()).toBe(0);
    expect(Object.keys(result.step_states ?? {})).toHaveLength(n);
  });

  it("defaults its concurrency to the number of CPUs", () => {
    expect(new StepGroup({ name: "g", parallel: true, steps: [] }).concurrency).toBe(availableParallelism());
  });

  it("a child's failure fails the group only after the children already started have settled", async () => {
    const gate = deferred();
    let slowFinished = false;
    const g = new StepGroup({
      name: "g",
      parallel: true,
      concurrency: 2,
      steps: [
        fnStep("fails", () => CompletedState.fail("bad input")),
        fnStep("slow", async () => {
          await gate.promise;
          slowFinished = true;
          return { done: true };
        }),
      ],
    });
    const context: Context = {};
    let settled = false;
    let slowFinishedWhenSettled: boolean | undefined;
    const running = g.run(context).then((r) => {
      settled = true;
      slowFinishedWhenSettled = slowFinished;
      return r;
    });
    // Give a group that wrongly returns early every chance to do so (not a timing assertion).
    await new Promise((r) => setTimeout(r, 20));
    expect(stateAt(context, "g.fails").success).toBe(false);
    expect(settled).toBe(false);
    gate.resolve();
    const result = await running;
    expect(slowFinishedWhenSettled).toBe(true);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("STEP_FAILED");
    expect(result.meta.failed_step).toBe("g.fails");
    expect(result.error).toBe("g.fails: bad input");
    expect(stateAt(context, "g.slow").success).toBe(true);
    expect(stateAt(context, "g.slow").outputs).toEqual({ done: true });
  });

  it("after a failure no new child starts, and the ones never started are listed in meta.not_started", async () => {
    const trace: Trace = [];
    const gate = deferred();
    const g = new StepGroup({
      name: "g",
      parallel: true,
      concurrency: 2,
      steps: [
        fnStep("fails", () => {
          throw new Error("crash");
        }),
        tracedStep("slow", trace, { body: () => gate.promise }),
        tracedStep("c", trace),
        tracedStep("d", trace),
      ],
    });
    const context: Context = {};
    const running = g.run(context);
    await flush(10);
    gate.resolve();
    const result = await running;
    expect(trace).toEqual(["start:slow", "end:slow"]);
    expect(result.failure).toBe("STEP_EXCEPTION");
    expect(exitCodeFrom(result)).toBe(ExitCode.STEP_EXCEPTION);
    expect(result.meta.not_started).toEqual(["g.c", "g.d"]);
    expect(context.step_states?.["g.c"]).toBeUndefined();
    expect(stateAt(context, "g.fails").failure).toBe("STEP_EXCEPTION");
  });

  it("a child with continue_on_error does not stop the group, and is listed in meta.failed_allowed", async () => {
    const trace: Trace = [];
    const g = new StepGroup({
      name: "g",
      parallel: true,
      concurrency: 1,
      steps: [fnStep("optional", () => CompletedState.fail("meh"), { continue_on_error: true }), tracedStep("b", trace), tracedStep("c", trace)],
    });
    const result = await g.run({});
    expect(result.success).toBe(true);
    expect(result.meta.failed_allowed).toEqual(["g.optional"]);
    expect(trace).toEqual(["start:b", "end:b", "start:c", "end:c"]);
  });

  it("an aborted signal stops the group from starting more children", async () => {
    const trace: Trace = [];
    const controller = new AbortController();
    const g = new StepGroup({
      name: "g",
      parallel: true,
      concurrency: 1,
      steps: [tracedStep("a", trace, { body: () => controller.abort() }), tracedStep("b", trace), tracedStep("c", trace)],
    });
    const result = await g.run({}, { signal: controller.signal });
    expect(trace).toEqual(["start:a", "end:a"]);
    expect(result.success).toBe(false);
    expect(result.meta.aborted).toBe(true);
    expect(result.meta.not_started).toEqual(["g.b", "g.c"]);
  });

  it("a parallel group inside a pipeline runs between its neighbours, and its failure stops the pipeline", async () => {
    const trace: Trace = [];
    const root = new Pipeline({
      name: "root",
      steps: [
        tracedStep("before", trace),
        new StepGroup({
          name: "g",
          parallel: true,
          steps: [
            tracedStep("ok", trace),
            fnStep("bad", () => 3 as unknown as void),
          ],
        }),
        tracedStep("after", trace),
      ],
    });
    const context: Context = {};
    const result = await root.run(context);
    expect(trace).toEqual(["start:before", "end:before", "start:ok", "end:ok"]);
    expect(result.failure).toBe("INVALID_RETURN");
    expect(result.meta.failed_step).toBe("root.g.bad");
    expect(stateAt(context, "root.g").failure).toBe("INVALID_RETURN");
    expect(stateAt(context, "root.g.ok").success).toBe(true);
  });

  it("a parallel group of pipelines runs each pipeline's steps in order within it", async () => {
    const trace: Trace = [];
    const barrier = new Barrier(2);
    const lane = (name: string): Pipeline =>
      new Pipeline({
        name,
        steps: [tracedStep(`${name}1`, trace, { body: () => barrier.arrive() }), tracedStep(`${name}2`, trace)],
      });
    const result = await new StepGroup({ name: "g", parallel: true, concurrency: 2, steps: [lane("x"), lane("y")] }).run({});
    expect(result.success).toBe(true);
    expect(trace.indexOf("end:x1")).toBeLessThan(trace.indexOf("start:x2"));
    expect(trace.indexOf("end:y1")).toBeLessThan(trace.indexOf("start:y2"));
    expect(trace.indexOf("start:y1")).toBeLessThan(trace.indexOf("end:x1"));
  }, 2000);
});
