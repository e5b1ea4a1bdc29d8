import { describe, expect, it, vi } from "vitest";
import { CompletedState, ExitCode, exitCodeFrom, FunctionStep, ManualClock, Pipeline, PipelineStep } from "../../src/core/index.js";
import type { Context, RunOptions } from "../../src/core/index.js";
import { fnStep, RawStep, stateAt, tracedStep } from "./helpers.js";
import type { Trace } from "./helpers.js";

function threeSteps(trace: Trace): Pipeline {
  return new Pipeline({
    name: "flat",
    steps: [
      tracedStep("a", trace, { provides: ["x"], value: 1 }),
      tracedStep("b", trace, { requires: ["x"], provides: ["y"], body: (c) => void trace.push(`b saw x=${String(c.x)}`) }),
      tracedStep("c", trace, { requires: ["y"], provides: ["z"] }),
    ],
  });
}

describe("flat pipeline", () => {
  it("runs its steps one after another in the order given", async () => {
    const trace: Trace = [];
    const result = await threeSteps(trace).run({});
    expect(result.success).toBe(true);
    expect(trace).toEqual(["start:a", "end:a", "start:b", "b saw x=1", "end:b", "start:c", "end:c"]);
  });

  it("returns a CompletedState, not a number", async () => {
    const result = await threeSteps([]).run({});
    expect(result).toBeInstanceOf(CompletedState);
    expect(exitCodeFrom(result)).toBe(ExitCode.OK);
  });

  it("leaves the keys the steps provide in the shared context", async () => {
    const context: Context = { input: "in" };
    await threeSteps([]).run(context);
    expect(context).toMatchObject({ input: "in", x: 1, y: "b-value", z: "c-value" });
  });

  it("records every step's state under a dot-namespaced key", async () => {
    const context: Context = {};
    await threeSteps([]).run(context);
    expect(Object.keys(context.step_states ?? {}).sort()).toEqual(["flat", "flat.a", "flat.b", "flat.c"]);
    expect(stateAt(context, "flat.b").success).toBe(true);
    expect(stateAt(context, "flat.b").outputs).toEqual({ by: "b" });
    expect(stateAt(context, "flat.b").provides).toEqual(["y"]);
  });

  it("the root result carries the states of its steps but not its own entry", async () => {
    const result = await threeSteps([]).run({});
    expect(Object.keys(result.step_states ?? {}).sort()).toEqual(["flat.a", "flat.b", "flat.c"]);
  });

  it("the pipeline's own provides are listed on its result", async () => {
    const result = await threeSteps([]).run({});
    expect(result.provides.sort()).toEqual(["x", "y", "z"]);
  });

  it("hands each step its namespaced key, the logger, the clock and the signal", async () => {
    const seen: RunOptions[] = [];
    const clock = new ManualClock();
    const controller = new AbortController();
    const p = new Pipeline({ name: "p", steps: [fnStep("s", (_c, o) => void seen.push(o))] });
    await p.run({}, { clock, signal: controller.signal });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.key).toBe("p.s");
    expect(seen[0]?.clock).toBe(clock);
    expect(seen[0]?.signal).toBe(controller.signal);
    expect(seen[0]?.logger).toBeDefined();
  });

  it("the orchestrator's record for a step replaces anything the step wrote under its own key", async () => {
    const context: Context = {};
    const meddler = fnStep("a", (c) => {
      (c.step_states ??= {})["p.a"] = CompletedState.fail("forged by the step");
    });
    await new Pipeline({ name: "p", steps: [meddler] }).run(context);
    expect(stateAt(context, "p.a").success).toBe(true);
    expect(stateAt(context, "p.a").error).toBeNull();
  });

  it("creates step_states in a context that has none, holding CompletedState instances", async () => {
    const context: Context = {};
    expect(context.step_states).toBeUndefined();
    await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run(context);
    expect(stateAt(context, "p.a")).toBeInstanceOf(CompletedState);
    expect(stateAt(context, "p")).toBeInstanceOf(CompletedState);
  });

  it("an empty pipeline succeeds", async () => {
    const result = await new Pipeline({ name: "empty", steps: [] }).run({});
    expect(result.success).toBe(true);
    expect(result.step_states).toEqual({});
  });
});

describe("missing requirements", () => {
  it("a key nobody provides fails the pipeline with MISSING_REQUIREMENT at the step that needs it, which is named", async () => {
    const trace: Trace = [];
    const p = new Pipeline({ name: "p", steps: [tracedStep("a", trace), tracedStep("b", trace, { requires: ["absent"] })] });
    const context: Context = {};
    const result = await p.run(context);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(result.error).toContain("p.b");
    expect(result.error).toContain("'absent'");
    expect(result.meta.failed_step).toBe("p.b");
    expect(stateAt(context, "p.b").meta.missing).toEqual(["absent"]);
    expect(trace).toEqual(["start:a", "end:a"]);
  });

  it("a step whose requirement is absent at its turn stops the pipeline there: earlier steps ran, later ones did not", async () => {
    const trace: Trace = [];
    // Declared requires [] hides the inner need, so the check happens at the step itself.
    const p = new Pipeline({
      name: "p",
      requires: [],
      steps: [tracedStep("a", trace), tracedStep("b", trace, { requires: ["absent"] }), tracedStep("c", trace)],
    });
    const context: Context = {};
    const result = await p.run(context);
    expect(trace).toEqual(["start:a", "end:a"]);
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(result.meta.failed_step).toBe("p.b");
    expect(stateAt(context, "p.b").failure).toBe("MISSING_REQUIREMENT");
    expect(stateAt(context, "p.b").meta.missing).toEqual(["absent"]);
    expect(context.step_states?.["p.c"]).toBeUndefined();
  });

  it("a key that is present but null counts as provided; only undefined is missing", async () => {
    const p = new Pipeline({ name: "p", steps: [fnStep("a", () => {}, { requires: ["maybe"] })] });
    expect((await p.run({ maybe: null })).success).toBe(true);
    expect((await p.run({ maybe: undefined })).failure).toBe("MISSING_REQUIREMENT");
  });

  it("a requirement provided by an earlier step is satisfied", async () => {
    const p = new Pipeline({
      name: "p",
      steps: [fnStep("a", (c) => void (c.k = 1), { provides: ["k"] }), fnStep("b", () => {}, { requires: ["k"] })],
    });
    expect((await p.run({})).success).toBe(true);
  });

  it("continue_on_error does not let a pipeline continue past a missing requirement", async () => {
    const trace: Trace = [];
    const p = new Pipeline({
      name: "p",
      requires: [],
      steps: [tracedStep("a", trace, { requires: ["absent"], continue_on_error: true }), tracedStep("b", trace)],
    });
    const result = await p.run({});
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(trace).toEqual([]);
  });
});

describe("idempotent skip and force", () => {
  function counted(
    name: string,
    options: { idempotent?: boolean; version?: string; requires?: string[] } = {},
  ): FunctionStep & { count: () => number } {
    let n = 0;
    const step = fnStep(name, () => void (n += 1), options) as FunctionStep & { count: () => number };
    step.count = () => n;
    return step;
  }

  it("an idempotent step that already succeeded is skipped when its pipeline runs again", async () => {
    const a = counted("a");
    const p = new Pipeline({ name: "p", idempotent: false, steps: [a] });
    const context: Context = {};
    await p.run(context);
    const first = stateAt(context, "p.a");
    const again = await p.run(context);
    expect(again.success).toBe(true);
    expect(a.count()).toBe(1);
    expect(stateAt(context, "p.a")).toBe(first);
  });

  it("a second run of an idempotent pipeline that succeeded skips the whole pipeline", async () => {
    const a = counted("a");
    const p = new Pipeline({ name: "p", steps: [a] });
    const context: Context = {};
    await p.run(context);
    const second = await p.run(context);
    expect(second.success).toBe(true);
    expect(a.count()).toBe(1);
    expect(second.step_states?.["p.a"]?.success).toBe(true);
  });

  it("a non-idempotent step reruns every time", async () => {
    const a = counted("a", { idempotent: false });
    const p = new Pipeline({ name: "p", idempotent: false, steps: [a] });
    const context: Context = {};
    await p.run(context);
    await p.run(context);
    expect(a.count()).toBe(2);
  });

  it("run with force reruns idempotent steps that already succeeded", async () => {
    const a = counted("a");
    const p = new Pipeline({ name: "p", steps: [a] });
    const context: Context = {};
    await p.run(context);
    await p.run(context, { force: true });
    expect(a.count()).toBe(2);
  });

  it("a pipeline built with force reruns its idempotent steps", async () => {
    const a = counted("a");
    const p = new Pipeline({ name: "p", force: true, steps: [a] });
    const context: Context = {};
    await p.run(context);
    await p.run(context);
    expect(a.count()).toBe(2);
  });

  it("a nested pipeline built with force reruns its own steps but not its idempotent siblings", async () => {
    const inside = counted("inside");
    const sibling = counted("sibling");
    const root = new Pipeline({
      name: "root",
      idempotent: false,
      steps: [sibling, new Pipeline({ name: "forced", force: true, steps: [inside] })],
    });
    const context: Context = {};
    await root.run(context);
    await root.run(context);
    expect(inside.count()).toBe(2);
    expect(sibling.count()).toBe(1);
  });

  it("an idempotent step whose definition changed (different signature) is rerun", async () => {
    const v1 = counted("a", { version: "1" });
    const v2 = counted("a", { version: "2" });
    const context: Context = {};
    await new Pipeline({ name: "p", idempotent: false, steps: [v1] }).run(context);
    await new Pipeline({ name: "p", idempotent: false, steps: [v2] }).run(context);
    expect(v1.count()).toBe(1);
    expect(v2.count()).toBe(1);
  });

  it("an idempotent step with an identical definition in a new pipeline object is skipped", async () => {
    const first = counted("a");
    const second = counted("a");
    const context: Context = {};
    await new Pipeline({ name: "p", idempotent: false, steps: [first] }).run(context);
    await new Pipeline({ name: "p", idempotent: false, steps: [second] }).run(context);
    expect(second.count()).toBe(0);
  });

  it("step_states saved as JSON and restored with fromJSON let a freshly built pipeline skip what already succeeded", async () => {
    let runs = 0;
    const build = (): Pipeline =>
      new Pipeline({ name: "p", idempotent: false, steps: [fnStep("a", () => void (runs += 1)), fnStep("b", () => void (runs += 1))] });
    const first: Context = {};
    await build().run(first);
    const saved = JSON.parse(JSON.stringify(first.step_states)) as Record<string, unknown>;
    const restored: Context = {
      step_states: Object.fromEntries(Object.entries(saved).map(([k, v]) => [k, CompletedState.fromJSON(v)])),
    };
    const result = await build().run(restored);
    expect(result.success).toBe(true);
    expect(runs).toBe(2);
  });

  it("an idempotent step whose previous run failed is run again", async () => {
    let calls = 0;
    const flaky = fnStep("flaky", () => (++calls === 1 ? CompletedState.fail("first time") : undefined));
    const p = new Pipeline({ name: "p", steps: [flaky] });
    const context: Context = {};
    expect((await p.run(context)).success).toBe(false);
    expect((await p.run(context)).success).toBe(true);
    expect(calls).toBe(2);
  });

  it("a step that already succeeded is skipped even after its inputs have gone: finished work needs no inputs", async () => {
    const a = counted("a", { requires: ["in"] });
    const p = new Pipeline({ name: "p", idempotent: false, requires: [], steps: [a] });
    const context: Context = { in: 1 };
    await p.run(context);
    delete context.in;
    const result = await p.run(context);
    expect(result.success).toBe(true);
    expect(a.count()).toBe(1);
  });

  it("a step that already succeeded is run again when a key it provides is no longer in the context", async () => {
    let runs = 0;
    const make = fnStep("make", (c) => void ((c.k = 1), (runs += 1)), { provides: ["k"] });
    const p = new Pipeline({ name: "p", idempotent: false, steps: [make] });
    const context: Context = {};
    await p.run(context);
    expect(runs).toBe(1);
    await p.run(context);
    expect(runs).toBe(1);
    delete context.k;
    await p.run(context);
    expect(runs).toBe(2);
  });
});

describe("exceptions and rollback", () => {
  it("a step that throws is rolled back and recorded as STEP_EXCEPTION", async () => {
    const rollback = vi.fn();
    const error = new TypeError("kaboom");
    const step = new FunctionStep({
      name: "bad",
      run: (c) => {
        c.partial = true;
        throw error;
      },
      rollback: (c, e) => {
        rollback(e);
        delete c.partial;
      },
    });
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [step] }).run(context);
    expect(rollback).toHaveBeenCalledTimes(1);
    expect(rollback).toHaveBeenCalledWith(error);
    expect(context.partial).toBeUndefined();
    expect(result.failure).toBe("STEP_EXCEPTION");
    expect(stateAt(context, "p.bad").failure).toBe("STEP_EXCEPTION");
    expect(stateAt(context, "p.bad").error).toBe("TypeError: kaboom");
    expect(result.error).toBe("p.bad: TypeError: kaboom");
  });

  it("steps after one that threw do not run", async () => {
    const trace: Trace = [];
    const p = new Pipeline({
      name: "p",
      steps: [
        tracedStep("a", trace, {
          body: () => {
            throw new Error("x");
          },
        }),
        tracedStep("b", trace),
      ],
    });
    await p.run({});
    expect(trace).toEqual(["start:a"]);
  });

  it("an async rejection is treated like a throw", async () => {
    const p = new Pipeline({ name: "p", steps: [fnStep("a", async () => Promise.reject(new RangeError("late")))] });
    const result = await p.run({});
    expect(result.failure).toBe("STEP_EXCEPTION");
    expect(result.error).toContain("RangeError: late");
  });

  it("a thrown non-Error value is described in the error", async () => {
    const p = new Pipeline({
      name: "p",
      steps: [
        fnStep("a", () => {
          throw "a string";
        }),
      ],
    });
    const result = await p.run({});
    expect(result.failure).toBe("STEP_EXCEPTION");
    expect(result.error).toContain("thrown value: a string");
  });

  it("a rollback that itself throws is reported alongside the original error", async () => {
    const step = new FunctionStep({
      name: "a",
      run: () => {
        throw new Error("first");
      },
      rollback: () => {
        throw new Error("second");
      },
    });
    const result = await new Pipeline({ name: "p", steps: [step] }).run({});
    expect(result.failure).toBe("STEP_EXCEPTION");
    expect(result.error).toContain("Error: first");
    expect(result.error).toContain("rollback also failed: Error: second");
  });

  it("rollback is not called when a step returns a failure without throwing", async () => {
    const rollback = vi.fn();
    const step = new FunctionStep({ name: "a", run: () => CompletedState.fail("no"), rollback });
    await new Pipeline({ name: "p", steps: [step] }).run({});
    expect(rollback).not.toHaveBeenCalled();
  });

  it("the pipeline never throws for a step's failure, whatever the step does", async () => {
    class Evil extends PipelineStep {
      override run(): Promise<CompletedState> {
        throw new Error("sync throw from a non-async run");
      }
      override rollback(): void {
        throw new Error("and rollback too");
      }
    }
    const p = new Pipeline({ name: "p", steps: [new Evil({ name: "evil" })] });
    await expect(p.run({})).resolves.toMatchObject({ success: false, failure: "STEP_EXCEPTION" });
  });
});

describe("invalid return", () => {
  it.each([
    ["a number", 7, "number"],
    ["null", null, "null"],
    ["undefined", undefined, "undefined"],
    ["a string", "ok", "string"],
    ["an array", [], "an array"],
    ["an object that is not a state", { success: true }, "object"],
  ])("a step that returns %s fails with INVALID_RETURN", async (_what, value, described) => {
    const step = new RawStep({ name: "raw" }, () => value);
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [step] }).run(context);
    expect(result.failure).toBe("INVALID_RETURN");
    expect(stateAt(context, "p.raw").error).toBe(`returned ${described} instead of a CompletedState`);
  });

  it("a FunctionStep that returns a primitive fails with INVALID_RETURN", async () => {
    const step = new FunctionStep({ name: "f", run: () => 5 as unknown as void });
    expect((await new Pipeline({ name: "p", steps: [step] }).run({})).failure).toBe("INVALID_RETURN");
  });

  it("a plain object of the CompletedState shape is accepted as the step's result", async () => {
    const json = CompletedState.ok({ outputs: { n: 1 } }).toJSON();
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [new RawStep({ name: "raw" }, () => json)] }).run(context);
    expect(result.success).toBe(true);
    expect(stateAt(context, "p.raw")).toBeInstanceOf(CompletedState);
    expect(stateAt(context, "p.raw").outputs).toEqual({ n: 1 });
  });

  it("a FunctionStep that returns a failed state's JSON is a failure, not outputs", async () => {
    const step = fnStep("f", () => CompletedState.fail("boom", { failure: "INVALID_RETURN" }).toJSON() as unknown as Record<string, unknown>);
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [step] }).run(context);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("INVALID_RETURN");
    expect(stateAt(context, "p.f").error).toBe("boom");
  });

  it("a FunctionStep that returns an object of outputs succeeds with those outputs", async () => {
    const context: Context = {};
    await new Pipeline({ name: "p", steps: [fnStep("f", () => ({ count: 3 }))] }).run(context);
    expect(stateAt(context, "p.f").outputs).toEqual({ count: 3 });
  });
});

describe("validation", () => {
  it("a step that succeeds without setting its provides keys is a STEP_FAILED validation failure", async () => {
    const context: Context = {};
    const p = new Pipeline({ name: "p", steps: [fnStep("lazy", () => {}, { provides: ["report"] })] });
    const result = await p.run(context);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("STEP_FAILED");
    expect(stateAt(context, "p.lazy").error).toBe("validation failed: did not provide 'report'");
  });

  it("a custom validate's problems make the step fail, and later steps do not run", async () => {
    const trace: Trace = [];
    class Picky extends PipelineStep {
      override async run(): Promise<CompletedState> {
        return CompletedState.ok();
      }
      override validate(): string[] {
        return ["too small", "wrong colour"];
      }
    }
    const p = new Pipeline({ name: "p", steps: [new Picky({ name: "picky" }), tracedStep("after", trace)] });
    const context: Context = {};
    const result = await p.run(context);
    expect(result.failure).toBe("STEP_FAILED");
    expect(stateAt(context, "p.picky").error).toBe("validation failed: too small; wrong colour");
    expect(trace).toEqual([]);
  });

  it("a validate that throws is a failure, not a crash", async () => {
    class Throws extends PipelineStep {
      override async run(): Promise<CompletedState> {
        return CompletedState.ok();
      }
      override validate(): string[] {
        throw new Error("validator broke");
      }
    }
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [new Throws({ name: "t" })] }).run(context);
    expect(result.failure).toBe("STEP_FAILED");
    expect(stateAt(context, "p.t").error).toContain("validate threw Error: validator broke");
  });

  it("a validate that returns something other than a list is a failure recorded on the step", async () => {
    class Sloppy extends PipelineStep {
      override async run(): Promise<CompletedState> {
        return CompletedState.ok();
      }
      override validate(): string[] {
        return false as unknown as string[];
      }
    }
    const context: Context = {};
    const result = await new Pipeline({ name: "p", steps: [new Sloppy({ name: "s" })] }).run(context);
    expect(result.failure).toBe("STEP_FAILED");
    expect(result.meta.failed_step).toBe("p.s");
    expect(stateAt(context, "p.s").error).toContain("validate returned boolean");
  });

  it("validate is called after a successful run, and not after a failed one", async () => {
    const order: string[] = [];
    class Watched extends PipelineStep {
      constructor(
        name: string,
        private readonly ok: boolean,
      ) {
        super({ name, continue_on_error: true });
      }
      override async run(): Promise<CompletedState> {
        order.push(`run:${this.name}`);
        return this.ok ? CompletedState.ok() : CompletedState.fail("no");
      }
      override validate(): string[] {
        order.push(`validate:${this.name}`);
        return [];
      }
    }
    await new Pipeline({ name: "p", steps: [new Watched("good", true), new Watched("bad", false)] }).run({});
    expect(order).toEqual(["run:good", "validate:good", "run:bad"]);
  });
});

describe("failed steps and continue_on_error", () => {
  it("a step that returns a failure stops the pipeline with STEP_FAILED and the step's error", async () => {
    const trace: Trace = [];
    const context: Context = {};
    const p = new Pipeline({ name: "p", steps: [fnStep("a", () => CompletedState.fail("disk full")), tracedStep("b", trace)] });
    const result = await p.run(context);
    expect(result.failure).toBe("STEP_FAILED");
    expect(result.error).toBe("p.a: disk full");
    expect(result.meta.failed_step).toBe("p.a");
    expect(trace).toEqual([]);
  });

  it("a step's own failure kind in a returned failure is kept", async () => {
    const p = new Pipeline({ name: "p", steps: [fnStep("a", () => CompletedState.fail("x", { failure: "MISSING_REQUIREMENT" }))] });
    expect((await p.run({})).failure).toBe("MISSING_REQUIREMENT");
  });

  it("continue_on_error lets the pipeline continue, succeed, and list the step in meta.failed_allowed", async () => {
    const trace: Trace = [];
    const context: Context = {};
    const p = new Pipeline({
      name: "p",
      steps: [
        fnStep("optional", () => CompletedState.fail("meh"), { continue_on_error: true }),
        fnStep(
          "also_optional",
          () => {
            throw new Error("x");
          },
          { continue_on_error: true },
        ),
        tracedStep("after", trace),
      ],
    });
    const result = await p.run(context);
    expect(result.success).toBe(true);
    expect(trace).toEqual(["start:after", "end:after"]);
    expect(result.meta.failed_allowed).toEqual(["p.optional", "p.also_optional"]);
    expect(stateAt(context, "p.optional").success).toBe(false);
    expect(stateAt(context, "p.also_optional").failure).toBe("STEP_EXCEPTION");
  });

  it("a successful pipeline without allowed failures has no failed_allowed entry", async () => {
    const result = await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run({});
    expect(result.meta).not.toHaveProperty("failed_allowed");
  });

  it("the orchestrator records its own copy, so the object a step returned is not rewritten", async () => {
    const shared = CompletedState.ok({ outputs: { v: 1 } });
    const before = JSON.stringify(shared);
    const context: Context = {};
    await new Pipeline({ name: "p", steps: [fnStep("a", () => shared, { provides: [] })] }).run(context, { clock: new ManualClock(5000) });
    expect(JSON.stringify(shared)).toBe(before);
    expect(stateAt(context, "p.a")).not.toBe(shared);
    expect(stateAt(context, "p.a").signature).not.toBe("");
  });
});

describe("abort", () => {
  it("an aborted signal stops a sequential pipeline before its next step", async () => {
    const trace: Trace = [];
    const controller = new AbortController();
    const p = new Pipeline({
      name: "p",
      steps: [tracedStep("a", trace, { body: () => controller.abort() }), tracedStep("b", trace), tracedStep("c", trace)],
    });
    const context: Context = {};
    const result = await p.run(context, { signal: controller.signal });
    expect(trace).toEqual(["start:a", "end:a"]);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("STEP_FAILED");
    expect(result.meta.aborted).toBe(true);
    expect(result.error).toContain("aborted before 'b'");
    expect(context.step_states?.["p.b"]).toBeUndefined();
  });

  it("an already-aborted signal runs nothing", async () => {
    const trace: Trace = [];
    const result = await new Pipeline({ name: "p", steps: [tracedStep("a", trace)] }).run({}, { signal: AbortSignal.abort() });
    expect(trace).toEqual([]);
    expect(result.success).toBe(false);
  });
});
