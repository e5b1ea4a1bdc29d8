import { describe, expect, it } from "vitest";
import { CompletedState, ExitCode, exitCodeFrom, FunctionStep, Pipeline } from "../../src/core/index.js";
import type { FailureKind } from "../../src/core/index.js";
import { fnStep, RawStep } from "./helpers.js";

describe("ExitCode", () => {
  it("has the plan's numeric values", () => {
    expect(ExitCode.OK).toBe(0);
    expect(ExitCode.MISSING_REQUIREMENT).toBe(1);
    expect(ExitCode.STEP_EXCEPTION).toBe(2);
    expect(ExitCode.INVALID_RETURN).toBe(3);
    expect(ExitCode.STEP_FAILED).toBe(4);
  });
});

describe("exitCodeFrom", () => {
  it("maps a success to OK", () => {
    expect(exitCodeFrom(CompletedState.ok())).toBe(ExitCode.OK);
  });

  it.each<[FailureKind, ExitCode]>([
    ["MISSING_REQUIREMENT", ExitCode.MISSING_REQUIREMENT],
    ["STEP_EXCEPTION", ExitCode.STEP_EXCEPTION],
    ["INVALID_RETURN", ExitCode.INVALID_RETURN],
    ["STEP_FAILED", ExitCode.STEP_FAILED],
  ])("maps a %s failure to its own exit code", (kind, code) => {
    expect(exitCodeFrom(CompletedState.fail("x", { failure: kind }))).toBe(code);
  });

  it("maps a plain failed object without a failure kind to STEP_FAILED", () => {
    expect(exitCodeFrom({ success: false, failure: null })).toBe(ExitCode.STEP_FAILED);
  });

  it("maps a plain successful object to OK even if it names a failure kind", () => {
    expect(exitCodeFrom({ success: true, failure: "STEP_EXCEPTION" })).toBe(ExitCode.OK);
  });
});

describe("exit codes of real pipeline runs", () => {
  const cases: Array<[string, () => Pipeline, ExitCode]> = [
    ["a pipeline whose steps all succeed", () => new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }), ExitCode.OK],
    [
      "a missing requirement",
      () => new Pipeline({ name: "p", steps: [fnStep("a", () => {}, { requires: ["absent"] })] }),
      ExitCode.MISSING_REQUIREMENT,
    ],
    [
      "a step that throws",
      () =>
        new Pipeline({
          name: "p",
          steps: [
            fnStep("a", () => {
              throw new Error("boom");
            }),
          ],
        }),
      ExitCode.STEP_EXCEPTION,
    ],
    ["a step that returns a non-state", () => new Pipeline({ name: "p", steps: [new RawStep({ name: "a" }, () => 7)] }), ExitCode.INVALID_RETURN],
    ["a step that returns a failure", () => new Pipeline({ name: "p", steps: [fnStep("a", () => CompletedState.fail("no"))] }), ExitCode.STEP_FAILED],
  ];

  it.each(cases)("%s gives the matching exit code", async (_what, build, code) => {
    expect(exitCodeFrom(await build().run({}))).toBe(code);
  });

  it("a failure two pipelines deep still maps to the root cause's exit code", async () => {
    const leaf = new FunctionStep({ name: "leaf", run: () => 12 as unknown as void });
    const root = new Pipeline({
      name: "root",
      steps: [new Pipeline({ name: "mid", steps: [new Pipeline({ name: "inner", steps: [leaf] })] })],
    });
    const result = await root.run({});
    expect(result.failure).toBe("INVALID_RETURN");
    expect(exitCodeFrom(result)).toBe(ExitCode.INVALID_RETURN);
  });
});
