import { describe, expect, it } from "vitest";
import { CompletedState, FunctionStep, ManualClock, Pipeline, StepGroup } from "../../src/core/index.js";
import type { Context } from "../../src/core/index.js";
import { fnStep, stateAt } from "./helpers.js";

describe("timing, with an injected ManualClock", () => {
  it("ManualClock only moves when advanced and maps its milliseconds onto its epoch", () => {
    const clock = new ManualClock(1000, Date.UTC(2026, 0, 1));
    expect(clock.now()).toBe(1000);
    expect(clock.now()).toBe(1000);
    clock.advance(500);
    expect(clock.now()).toBe(1500);
    expect(clock.isoNow()).toBe("2026-01-01T00:00:01.500Z");
  });

  it("the orchestrator times each step exactly, in seconds", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const p = new Pipeline({ name: "p", steps: [fnStep("a", () => clock.advance(1500)), fnStep("b", () => clock.advance(20))] });
    await p.run(context, { clock });
    expect(stateAt(context, "p.a").duration_s).toBe(1.5);
    expect(stateAt(context, "p.b").duration_s).toBe(0.02);
  });

  it("a pipeline's duration covers its children and the time between them", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const p = new Pipeline({
      name: "p",
      steps: [fnStep("a", () => clock.advance(1000)), new Pipeline({ name: "sub", steps: [fnStep("b", () => clock.advance(2000))] })],
    });
    const result = await p.run(context, { clock });
    expect(stateAt(context, "p.sub").duration_s).toBe(2);
    expect(stateAt(context, "p").duration_s).toBe(3);
    expect(result.duration_s).toBe(3);
  });

  it("each state's timestamp is the clock's time when that step started", async () => {
    const clock = new ManualClock(0, Date.UTC(2026, 0, 1));
    const context: Context = {};
    const p = new Pipeline({ name: "p", steps: [fnStep("a", () => clock.advance(1000)), fnStep("b", () => clock.advance(1000))] });
    clock.advance(250);
    const result = await p.run(context, { clock });
    expect(result.timestamp).toBe("2026-01-01T00:00:00.250Z");
    expect(stateAt(context, "p.a").timestamp).toBe("2026-01-01T00:00:00.250Z");
    expect(stateAt(context, "p.b").timestamp).toBe("2026-01-01T00:00:01.250Z");
  });

  it("the orchestrator's measurement replaces whatever duration and timestamp a step reported", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const liar = fnStep("liar", () => {
      clock.advance(300);
      return CompletedState.ok({ duration_s: 99, timestamp: "1999-01-01T00:00:00.000Z" });
    });
    await new Pipeline({ name: "p", steps: [liar] }).run(context, { clock });
    expect(stateAt(context, "p.liar").duration_s).toBe(0.3);
    expect(stateAt(context, "p.liar").timestamp).toBe("2026-01-01T00:00:00.000Z");
  });

  it("a step that throws is timed up to the end of its rollback", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const step = new FunctionStep({
      name: "bad",
      run: () => {
        clock.advance(100);
        throw new Error("x");
      },
      rollback: () => clock.advance(50),
    });
    await new Pipeline({ name: "p", steps: [step] }).run(context, { clock });
    expect(stateAt(context, "p.bad").duration_s).toBe(0.15);
  });

  it("validation time counts toward the step's duration", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const step = fnStep("a", () => clock.advance(100));
    step.validate = () => {
      clock.advance(400);
      return [];
    };
    await new Pipeline({ name: "p", steps: [step] }).run(context, { clock });
    expect(stateAt(context, "p.a").duration_s).toBe(0.5);
  });

  it("a step that fails on a missing requirement has zero duration", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    await new Pipeline({ name: "p", requires: [], steps: [fnStep("a", () => clock.advance(100), { requires: ["x"] })] }).run(context, {
      clock,
    });
    expect(stateAt(context, "p.a").duration_s).toBe(0);
  });

  it("a skipped step keeps the duration and timestamp of the run that produced it", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const p = new Pipeline({ name: "p", idempotent: false, steps: [fnStep("a", () => clock.advance(700))] });
    await p.run(context, { clock });
    const first = stateAt(context, "p.a");
    clock.advance(10_000);
    await p.run(context, { clock });
    expect(stateAt(context, "p.a").duration_s).toBe(0.7);
    expect(stateAt(context, "p.a").timestamp).toBe(first.timestamp);
    expect(stateAt(context, "p").duration_s).toBe(0);
  });

  it("a clock given to the constructor is used when run is not given one, and run's clock wins otherwise", async () => {
    const ctorClock = new ManualClock();
    const runClock = new ManualClock();
    const build = (): Pipeline =>
      new Pipeline({
        name: "p",
        idempotent: false,
        clock: ctorClock,
        steps: [
          fnStep(
            "a",
            (_c, o) => {
              (o.clock as ManualClock).advance(800);
            },
            { idempotent: false },
          ),
        ],
      });
    const viaCtor = await build().run({});
    expect(viaCtor.duration_s).toBe(0.8);
    expect(ctorClock.now()).toBe(800);
    const viaRun = await build().run({}, { clock: runClock });
    expect(viaRun.duration_s).toBe(0.8);
    expect(runClock.now()).toBe(800);
    expect(ctorClock.now()).toBe(800);
  });

  it("a clock that goes backwards never yields a negative duration", async () => {
    const clock = new ManualClock(5000);
    const context: Context = {};
    await new Pipeline({ name: "p", steps: [fnStep("a", () => clock.advance(-1000))] }).run(context, { clock });
    expect(stateAt(context, "p.a").duration_s).toBe(0);
  });

  it("parallel children are each timed on the shared clock, and the group spans them", async () => {
    const clock = new ManualClock();
    const context: Context = {};
    const g = new StepGroup({
      name: "g",
      parallel: true,
      concurrency: 2,
      steps: [
        fnStep("a", async () => {
          clock.advance(100);
          await Promise.resolve();
        }),
        fnStep("b", () => clock.advance(200)),
      ],
    });
    const result = await g.run(context, { clock });
    // a starts at 0; b starts at 100 (after a advanced synchronously) and ends at 300.
    expect(stateAt(context, "g.b").duration_s).toBe(0.2);
    expect(stateAt(context, "g.b").timestamp).toBe(new ManualClock(100).isoNow());
    expect(result.duration_s).toBe(0.3);
  });
});
