import { describe, expect, test } from "vitest";
import { checkNothingActive, checkSameInputs, concreteSteps, doneSteps, ResumeError } from "../../src/app/resume.js";
import type { StateFile } from "../../src/plan/state-file.js";
import type { JobStatus } from "../../src/runs/index.js";
import { MapStep } from "../../src/spec/map-step.js";
import { cmd, compileTree, pipe } from "../compiler/helpers.js";

const state = (key: string, success: boolean, signature: string): StateFile => ({
  success,
  timestamp: "2026-01-01T00:00:00.000Z",
  duration_s: 0,
  provides: [],
  outputs: {},
  error: success ? null : "boom",
  meta: {},
  signature,
  failure: success ? null : "STEP_FAILED",
  key,
});

describe("what a resumed run can leave out", () => {
  const plan = compileTree(pipe("p", [cmd("a"), new MapStep({ name: "m", items: ["x", "y"], steps: [cmd("w", { requires: ["item"] })] })]));
  const sig = (key: string): string => concreteSteps(plan).get(key) ?? "";

  test("every leaf step is listed with its signature, map steps once per item", () => {
    expect([...concreteSteps(plan).keys()].sort()).toEqual(["p.a", "p.m.0.w", "p.m.1.w"]);
  });

  test("only successes with the current signature count as done", () => {
    const states = new Map<string, StateFile>([
      ["p.a", state("p.a", true, sig("p.a"))],
      ["p.m.0.w", state("p.m.0.w", true, "000000000000")],
      ["p.m.1.w", state("p.m.1.w", false, sig("p.m.1.w"))],
    ]);
    expect([...doneSteps(plan, states)]).toEqual(["p.a"]);
  });

  test("a changed context or changed items refuse the resume", () => {
    expect(() => checkSameInputs("r1", { ...plan, context: { a: "1" } }, { ...plan, context: { a: "2" } })).toThrow(ResumeError);
    expect(() => checkSameInputs("r1", plan, { ...plan, items: { "p.m": ["x", "z"] } })).toThrow(/items differ/);
    expect(() => checkSameInputs("r1", plan, plan)).not.toThrow();
    // Compared element by element: another map, an item more or fewer, the same items in another order.
    expect(() => checkSameInputs("r1", plan, { ...plan, items: { ...plan.items, "p.other": [] } })).toThrow(/items differ/);
    expect(() => checkSameInputs("r1", plan, { ...plan, items: { "p.n": plan.items["p.m"] ?? [] } })).toThrow(/items differ/);
    const items = plan.items["p.m"] ?? [];
    expect(() => checkSameInputs("r1", plan, { ...plan, items: { "p.m": [...items, "w"] } })).toThrow(/items differ/);
    expect(() => checkSameInputs("r1", plan, { ...plan, items: { "p.m": [...items].reverse() } })).toThrow(/items differ/);
    expect(() => checkSameInputs("r1", plan, { ...plan, items: { "p.m": [...items] } })).not.toThrow();
  });

  test("jobs still waiting or running refuse the resume, naming them", () => {
    const status = (job: string, final: boolean, st: string) => ({ job, final, state: st }) as unknown as JobStatus;
    expect(() => checkNothingActive("r1", [status("j000", true, "COMPLETED"), status("j001", false, "RUNNING")])).toThrow(/j001: RUNNING/);
    expect(() => checkNothingActive("r1", [status("j000", true, "FAILED")])).not.toThrow();
  });
});
