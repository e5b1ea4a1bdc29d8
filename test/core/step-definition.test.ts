import { describe, expect, it } from "vitest";
import {
  assertStepName,
  CompletedState,
  FunctionStep,
  Pipeline,
  PipelineStep,
  StepDefinitionError,
  StepGroup,
} from "../../src/core/index.js";
import { fnStep } from "./helpers.js";

const noop = (): void => {};

describe("step definitions", () => {
  it("a leaf step defaults to version 0.0.0, idempotent, and stopping on error", () => {
    const step = fnStep("a", noop);
    expect(step.version).toBe("0.0.0");
    expect(step.idempotent).toBe(true);
    expect(step.continue_on_error).toBe(false);
    expect(step.requires).toEqual([]);
    expect(step.provides).toEqual([]);
    expect(step.kind).toBe("step");
  });

  it("a step keeps the version, flags and contract it is given", () => {
    const step = fnStep("a", noop, { version: "2.1", idempotent: false, continue_on_error: true, requires: ["x"], provides: ["y"] });
    expect(step).toMatchObject({ version: "2.1", idempotent: false, continue_on_error: true });
    expect(step.requires).toEqual(["x"]);
    expect(step.provides).toEqual(["y"]);
  });

  it("a pipeline defaults to version 1.0 and is itself a PipelineStep", () => {
    const p = new Pipeline({ name: "p", steps: [] });
    expect(p.version).toBe("1.0");
    expect(p).toBeInstanceOf(PipelineStep);
    expect(p.kind).toBe("pipeline");
  });

  it("a pipeline keeps an explicit version", () => {
    expect(new Pipeline({ name: "p", version: "3.0" }).version).toBe("3.0");
  });

  it("a step group is a PipelineStep of kind group", () => {
    const g = new StepGroup({ name: "g", steps: [] });
    expect(g).toBeInstanceOf(PipelineStep);
    expect(g.kind).toBe("group");
    expect(g.parallel).toBe(false);
  });

  it("duplicate keys in requires and provides are collapsed", () => {
    const step = fnStep("a", noop, { requires: ["x", "x", "y"], provides: ["z", "z"] });
    expect(step.requires).toEqual(["x", "y"]);
    expect(step.provides).toEqual(["z"]);
  });

  it.each(["a", "A_1", "render-normal", "_private", "9lives", "x".repeat(100)])("the name %j is accepted", (name) => {
    expect(() => fnStep(name, noop)).not.toThrow();
  });

  it.each([
    ["an empty name", ""],
    ["a dotted name (dots are for namespacing)", "a.b"],
    ["a name starting with '-'", "-a"],
    ["a name with a space", "a b"],
    ["a name with a slash", "a/b"],
    ["a name longer than 100 characters", "x".repeat(101)],
    ["a non-ASCII name", "é"],
  ])("%s is rejected with a StepDefinitionError", (_what, name) => {
    expect(() => fnStep(name, noop)).toThrow(StepDefinitionError);
  });

  it("a pipeline and a group with an invalid name are rejected too", () => {
    expect(() => new Pipeline({ name: "bad.name" })).toThrow(StepDefinitionError);
    expect(() => new StepGroup({ name: "bad name" })).toThrow(StepDefinitionError);
  });

  it("assertStepName rejects a non-string", () => {
    expect(() => assertStepName(42)).toThrow(StepDefinitionError);
    expect(() => assertStepName(undefined)).toThrow(StepDefinitionError);
  });

  it.each([
    ["an empty requires key", { requires: [""] }],
    ["a provides key named step_states (the orchestrator's own key)", { provides: ["step_states"] }],
    ["a requires key named step_states", { requires: ["step_states"] }],
  ])("%s is rejected", (_what, opts) => {
    expect(() => fnStep("a", noop, opts)).toThrow(StepDefinitionError);
  });

  it("two siblings with the same name are rejected in a pipeline", () => {
    expect(() => new Pipeline({ name: "p", steps: [fnStep("dup", noop), fnStep("other", noop), fnStep("dup", noop)] })).toThrow(
      /two children are named 'dup'/,
    );
  });

  it("two siblings with the same name are rejected in a group", () => {
    expect(() => new StepGroup({ name: "g", parallel: true, steps: [fnStep("dup", noop), fnStep("dup", noop)] })).toThrow(
      StepDefinitionError,
    );
  });

  it("the same name is allowed for steps that are not siblings", () => {
    expect(
      () =>
        new Pipeline({
          name: "root",
          steps: [new Pipeline({ name: "a", steps: [fnStep("cleanup", noop)] }), new Pipeline({ name: "b", steps: [fnStep("cleanup", noop)] })],
        }),
    ).not.toThrow();
  });

  it("a child that is not a PipelineStep is rejected by a pipeline", () => {
    const fake = { name: "x", run: async () => CompletedState.ok() } as unknown as PipelineStep;
    expect(() => new Pipeline({ name: "p", steps: [fake] })).toThrow(StepDefinitionError);
  });

  it("a child that is not a PipelineStep is rejected by a parallel group with a StepDefinitionError", () => {
    const fake = { name: "x" } as unknown as PipelineStep;
    expect(() => new StepGroup({ name: "g", parallel: true, steps: [fake] })).toThrow(StepDefinitionError);
  });

  it.each([0, -1, 1.5, Number.NaN])("a group concurrency of %s is rejected", (concurrency) => {
    expect(() => new StepGroup({ name: "g", parallel: true, concurrency, steps: [] })).toThrow(StepDefinitionError);
  });

  it("a FunctionStep is a PipelineStep whose run is the given function", async () => {
    const step = new FunctionStep({ name: "f", run: () => ({ answer: 42 }) });
    expect(step).toBeInstanceOf(PipelineStep);
    const state = await step.run({});
    expect(state.success).toBe(true);
    expect(state.outputs).toEqual({ answer: 42 });
  });

  it("the default validate reports every provides key the context lacks", () => {
    const step = fnStep("a", noop, { provides: ["x", "y", "z"] });
    expect(step.validate({ y: 1 })).toEqual(["did not provide 'x', 'z'"]);
    expect(step.validate({ x: 0, y: null, z: false })).toEqual([]);
  });
});
