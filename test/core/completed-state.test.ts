import { describe, expect, it } from "vitest";
import { asCompletedState, CompletedState, completedStateSchema, FAILURE_KINDS, ManualClock } from "../../src/core/index.js";

const plain = {
  success: true,
  timestamp: "2026-01-01T00:00:00.000Z",
  duration_s: 1.5,
  provides: ["mesh"],
  outputs: { count: 3 },
  error: null,
  meta: { note: "x" },
  signature: "abcdef012345",
};

describe("CompletedState", () => {
  it("a success has no failure kind and no error, with empty defaults for the rest", () => {
    const state = new CompletedState({ success: true }, new ManualClock(0));
    expect(state).toMatchObject({
      success: true,
      failure: null,
      error: null,
      duration_s: 0,
      provides: [],
      outputs: {},
      meta: {},
      signature: "",
      step_states: undefined,
    });
  });

  it("a success ignores a failure kind passed to it", () => {
    expect(new CompletedState({ success: true, failure: "STEP_EXCEPTION" }).failure).toBeNull();
  });

  it("a failure without a kind defaults to STEP_FAILED", () => {
    expect(CompletedState.fail("boom").failure).toBe("STEP_FAILED");
    expect(new CompletedState({ success: false }).failure).toBe("STEP_FAILED");
  });

  it("fail keeps the given failure kind and error", () => {
    const state = CompletedState.fail("no input", { failure: "MISSING_REQUIREMENT" });
    expect(state.success).toBe(false);
    expect(state.failure).toBe("MISSING_REQUIREMENT");
    expect(state.error).toBe("no input");
  });

  it("ok carries outputs and meta", () => {
    const state = CompletedState.ok({ outputs: { n: 1 }, meta: { m: 2 } });
    expect(state.success).toBe(true);
    expect(state.outputs).toEqual({ n: 1 });
    expect(state.meta).toEqual({ m: 2 });
  });

  it("the timestamp comes from the injected clock as ISO 8601 UTC", () => {
    const clock = new ManualClock(2500, Date.UTC(2030, 5, 15, 12, 0, 0));
    const state = new CompletedState({ success: true }, clock);
    expect(state.timestamp).toBe("2030-06-15T12:00:02.500Z");
  });

  it("the default clock stamps the current wall-clock time in ISO 8601 format", () => {
    const before = Date.now();
    const state = CompletedState.ok();
    const after = Date.now();
    expect(state.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const t = Date.parse(state.timestamp);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
  });

  it("provides is copied, so the caller's array can change without changing the state", () => {
    const provides = ["a"];
    const state = new CompletedState({ success: true, provides });
    provides.push("b");
    expect(state.provides).toEqual(["a"]);
  });

  it("fromJSON(toJSON()) round-trips a state with nested step_states through real JSON text", () => {
    const clock = new ManualClock(0);
    const leaf = CompletedState.fail("bad", { failure: "INVALID_RETURN", duration_s: 0.25, signature: "111111111111" });
    const inner = new CompletedState({ success: true, outputs: { k: [1, 2] }, step_states: { "p.q.leaf": leaf } }, clock);
    const root = new CompletedState(
      { success: false, failure: "STEP_EXCEPTION", error: "e", provides: ["x"], meta: { failed_step: "p.q" }, step_states: { "p.q": inner } },
      clock,
    );
    const text = JSON.stringify(root);
    const back = CompletedState.fromJSON(JSON.parse(text));
    expect(back).toBeInstanceOf(CompletedState);
    expect(back.toJSON()).toEqual(root.toJSON());
    expect(JSON.stringify(back)).toBe(text);
    const nested = back.step_states?.["p.q"];
    expect(nested).toBeInstanceOf(CompletedState);
    expect(nested?.step_states?.["p.q.leaf"]).toBeInstanceOf(CompletedState);
    expect(nested?.step_states?.["p.q.leaf"]?.failure).toBe("INVALID_RETURN");
  });

  it("toJSON leaves out step_states when there are none", () => {
    expect("step_states" in CompletedState.ok().toJSON()).toBe(false);
  });

  it("fromJSON accepts JSON written without the optional failure field, reading it as STEP_FAILED for a failure", () => {
    expect(CompletedState.fromJSON({ ...plain }).failure).toBeNull();
    expect(CompletedState.fromJSON({ ...plain, success: false, error: "x" }).failure).toBe("STEP_FAILED");
  });

  it("fromJSON rejects JSON of the wrong shape", () => {
    expect(() => CompletedState.fromJSON({ success: true })).toThrow();
    expect(() => CompletedState.fromJSON({ ...plain, failure: "EXPLODED" })).toThrow();
    expect(() => CompletedState.fromJSON({ ...plain, step_states: { a: { success: "yes" } } })).toThrow();
  });

  it("the failure kinds are exactly the four the exit codes know", () => {
    expect([...FAILURE_KINDS]).toEqual(["MISSING_REQUIREMENT", "STEP_EXCEPTION", "INVALID_RETURN", "STEP_FAILED"]);
  });
});

describe("asCompletedState", () => {
  it("returns a CompletedState instance unchanged (same object)", () => {
    const state = CompletedState.ok();
    expect(asCompletedState(state)).toBe(state);
  });

  it("accepts a plain object of the right shape and turns it into a CompletedState", () => {
    const state = asCompletedState({ ...plain });
    expect(state).toBeInstanceOf(CompletedState);
    expect(state?.toJSON()).toEqual({ ...plain, failure: null });
  });

  it("accepts a plain failed object and keeps its failure kind", () => {
    const state = asCompletedState({ ...plain, success: false, error: "x", failure: "INVALID_RETURN" });
    expect(state?.success).toBe(false);
    expect(state?.failure).toBe("INVALID_RETURN");
  });

  it.each([
    ["null", null],
    ["undefined", undefined],
    ["a number", 42],
    ["a string", "ok"],
    ["an array", [plain]],
    ["an empty object", {}],
    ["an object missing the signature", { ...plain, signature: undefined }],
    ["a success that is not a boolean", { ...plain, success: "true" }],
    ["a negative duration", { ...plain, duration_s: -1 }],
    ["an infinite duration", { ...plain, duration_s: Number.POSITIVE_INFINITY }],
    ["provides that is not a list of strings", { ...plain, provides: [1] }],
    ["an unknown failure kind", { ...plain, success: false, error: "x", failure: "OOPS" }],
  ])("rejects %s", (_what, value) => {
    expect(asCompletedState(value)).toBeNull();
  });

  it("the schema validates nested step_states recursively", () => {
    expect(completedStateSchema.safeParse({ ...plain, step_states: { a: { ...plain } } }).success).toBe(true);
    expect(completedStateSchema.safeParse({ ...plain, step_states: { a: { ...plain, duration_s: "1" } } }).success).toBe(false);
  });
});
