import { describe, expect, it } from "vitest";
import { CompletedState, Pipeline, StepGroup } from "../../src/core/index.js";
import type { Context } from "../../src/core/index.js";
import { fnStep, stateAt } from "./helpers.js";

const noop = (): void => {};
const sorted = (keys: readonly string[]): string[] => [...keys].sort();

describe("requires/provides inference", () => {
  it("a pipeline requires only what no earlier child provides", () => {
    const p = new Pipeline({
      name: "p",
      steps: [
        fnStep("a", noop, { requires: ["input"], provides: ["mid"] }),
        fnStep("b", noop, { requires: ["mid", "config"], provides: ["out"] }),
      ],
    });
    expect(sorted(p.requires)).toEqual(["config", "input"]);
  });

  it("a pipeline provides the union of its children's provides", () => {
    const p = new Pipeline({
      name: "p",
      steps: [fnStep("a", noop, { provides: ["x", "y"] }), fnStep("b", noop, { provides: ["y", "z"] })],
    });
    expect(sorted(p.provides)).toEqual(["x", "y", "z"]);
  });

  it("a need satisfied only by a later child is still external", () => {
    const p = new Pipeline({
      name: "p",
      steps: [fnStep("consumer", noop, { requires: ["k"] }), fnStep("producer", noop, { provides: ["k"] })],
    });
    expect(p.requires).toEqual(["k"]);
  });

  it("inference works through nested pipelines and groups", () => {
    const inner = new Pipeline({ name: "inner", steps: [fnStep("a", noop, { requires: ["raw"], provides: ["clean"] })] });
    const group = new StepGroup({
      name: "g",
      parallel: true,
      steps: [fnStep("r1", noop, { requires: ["clean"], provides: ["img1"] }), fnStep("r2", noop, { requires: ["camera"], provides: ["img2"] })],
    });
    const outer = new Pipeline({ name: "outer", steps: [inner, group] });
    expect(sorted(group.requires)).toEqual(["camera", "clean"]);
    expect(sorted(outer.requires)).toEqual(["camera", "raw"]);
    expect(sorted(outer.provides)).toEqual(["clean", "img1", "img2"]);
  });

  it("a sequential group infers like a pipeline, letting an earlier child satisfy a later one", () => {
    const g = new StepGroup({
      name: "g",
      steps: [fnStep("a", noop, { provides: ["k"] }), fnStep("b", noop, { requires: ["k", "ext"] })],
    });
    expect(g.requires).toEqual(["ext"]);
    expect(g.provides).toEqual(["k"]);
  });

  it("declared requires and provides replace the inferred ones", () => {
    const p = new Pipeline({
      name: "p",
      requires: ["declared_in"],
      provides: ["declared_out"],
      steps: [fnStep("a", noop, { requires: ["x"], provides: ["y"] })],
    });
    expect(p.requires).toEqual(["declared_in"]);
    expect(p.provides).toEqual(["declared_out"]);
  });

  it("an explicitly empty declaration is respected rather than inferred", () => {
    const p = new Pipeline({ name: "p", requires: [], provides: [], steps: [fnStep("a", noop, { requires: ["x"], provides: ["y"] })] });
    expect(p.requires).toEqual([]);
    expect(p.provides).toEqual([]);
  });

  it("a missing inferred requirement is reported by the step that needs it, not by its pipeline", async () => {
    let ran = false;
    const sub = new Pipeline({ name: "sub", steps: [fnStep("a", () => void (ran = true), { requires: ["needed"] })] });
    const root = new Pipeline({ name: "root", steps: [sub] });
    const context: Context = {};
    const result = await root.run(context);
    expect(ran).toBe(false);
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(result.meta.failed_step).toBe("root.sub.a");
    expect(stateAt(context, "root.sub.a").meta.missing).toEqual(["needed"]);
    expect(stateAt(context, "root.sub").failure).toBe("MISSING_REQUIREMENT");
  });

  it("a declared requirement of a nested pipeline is checked before any of its children runs", async () => {
    let ran = false;
    const sub = new Pipeline({ name: "sub", requires: ["declared"], steps: [fnStep("a", () => void (ran = true))] });
    const context: Context = {};
    const result = await new Pipeline({ name: "root", steps: [sub] }).run(context);
    expect(ran).toBe(false);
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(stateAt(context, "root.sub").meta.missing).toEqual(["declared"]);
  });

  it("a pipeline whose declared provides its children did not set fails validation", async () => {
    const p = new Pipeline({ name: "sub", provides: ["promised"], steps: [fnStep("a", noop)] });
    const context: Context = {};
    const result = await new Pipeline({ name: "root", steps: [p] }).run(context);
    expect(result.failure).toBe("STEP_FAILED");
    expect(stateAt(context, "root.sub").error).toContain("did not provide 'promised'");
  });

  it("a pipeline does not re-check inferred provides, so an allowed child failure does not fail it", async () => {
    const optional = fnStep("optional", () => CompletedState.fail("skipped work"), { provides: ["extra"], continue_on_error: true });
    const context: Context = {};
    const result = await new Pipeline({ name: "root", steps: [new Pipeline({ name: "sub", steps: [optional] })] }).run(context);
    expect(result.success).toBe(true);
    expect(context.extra).toBeUndefined();
    expect(stateAt(context, "root.sub").success).toBe(true);
    expect(stateAt(context, "root.sub").meta.failed_allowed).toEqual(["root.sub.optional"]);
  });
});
