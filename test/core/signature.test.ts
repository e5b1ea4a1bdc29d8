import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalJson, CompletedState, Pipeline, PipelineStep, shortSignature, StepGroup } from "../../src/core/index.js";
import type { FunctionStep, StepOptions } from "../../src/core/index.js";
import { fnStep } from "./helpers.js";

const noop = (): void => {};

class DataStep extends PipelineStep {
  constructor(
    options: StepOptions,
    private readonly data: unknown,
  ) {
    super(options);
  }
  override async run(): Promise<CompletedState> {
    return CompletedState.ok();
  }
  override signatureData(): unknown {
    return this.data;
  }
}

describe("shortSignature", () => {
  it("is 12 lowercase hex digits", () => {
    expect(shortSignature(fnStep("a", noop))).toMatch(/^[0-9a-f]{12}$/);
  });

  it("is the same for two separately built steps with the same definition", () => {
    const a = fnStep("a", noop, { version: "1", requires: ["x"], provides: ["y"] });
    const b = fnStep("a", () => {}, { version: "1", requires: ["x"], provides: ["y"] });
    expect(a).not.toBe(b);
    expect(shortSignature(a)).toBe(shortSignature(b));
  });

  it("is a pure function of the definition: the sha256 of its canonical JSON, so any process computes the same", () => {
    const definition =
      '{"children":[],"continue_on_error":false,"data":null,"idempotent":true,"kind":"FunctionStep",' +
      '"name":"a","provides":["y"],"requires":["x"],"version":"1"}';
    const expected = createHash("sha256").update(definition).digest("hex").slice(0, 12);
    expect(shortSignature(fnStep("a", noop, { version: "1", requires: ["x"], provides: ["y"] }))).toBe(expected);
  });

  it.each<[string, Partial<StepOptions>]>([
    ["name", { name: "b" }],
    ["version", { version: "2" }],
    ["requires", { requires: ["other"] }],
    ["provides", { provides: ["other"] }],
    ["idempotent", { idempotent: false }],
    ["continue_on_error", { continue_on_error: true }],
  ])("changes when the %s changes", (_field, change) => {
    const base: StepOptions = { name: "a", version: "1", requires: ["x"], provides: ["y"] };
    expect(shortSignature(fnStep(change.name ?? "a", noop, { ...base, ...change }))).not.toBe(shortSignature(fnStep("a", noop, base)));
  });

  it("changes with the step's extra signature data, but not with that data's key order", () => {
    const one = new DataStep({ name: "cmd" }, { argv: ["render", "--fast"], env: { A: "1", B: "2" } });
    const reordered = new DataStep({ name: "cmd" }, { env: { B: "2", A: "1" }, argv: ["render", "--fast"] });
    const other = new DataStep({ name: "cmd" }, { argv: ["render", "--slow"], env: { A: "1", B: "2" } });
    expect(shortSignature(reordered)).toBe(shortSignature(one));
    expect(shortSignature(other)).not.toBe(shortSignature(one));
  });

  it("differs between step classes with otherwise equal definitions", () => {
    expect(shortSignature(new DataStep({ name: "a" }, null))).not.toBe(shortSignature(fnStep("a", noop)));
  });

  it("of a pipeline changes when a child's definition changes", () => {
    const make = (v: string): Pipeline => new Pipeline({ name: "p", steps: [fnStep("a", noop, { version: v })] });
    expect(shortSignature(make("1"))).toBe(shortSignature(make("1")));
    expect(shortSignature(make("1"))).not.toBe(shortSignature(make("2")));
  });

  it("of a pipeline depends on the order of its children", () => {
    const a = fnStep("a", noop);
    const b = fnStep("b", noop);
    expect(shortSignature(new Pipeline({ name: "p", steps: [a, b] }))).not.toBe(shortSignature(new Pipeline({ name: "p", steps: [b, a] })));
  });

  it("of a group differs between parallel and sequential, but not with the concurrency bound", () => {
    const kids = (): FunctionStep[] => [fnStep("a", noop), fnStep("b", noop)];
    const seq = new StepGroup({ name: "g", steps: kids() });
    const par = new StepGroup({ name: "g", parallel: true, steps: kids() });
    const par2 = new StepGroup({ name: "g", parallel: true, concurrency: 1, steps: kids() });
    expect(shortSignature(par)).not.toBe(shortSignature(seq));
    expect(shortSignature(par2)).toBe(shortSignature(par));
  });

  it("does not cover a FunctionStep's function body: only its declared definition (bump the version when the code changes)", () => {
    expect(shortSignature(fnStep("a", () => ({ v: 1 })))).toBe(shortSignature(fnStep("a", () => ({ v: 2 }))));
  });
});

describe("canonicalJson", () => {
  it("sorts object keys at every depth", () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
  });

  it("drops undefined object members, as JSON does", () => {
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
  });

  it("keeps array order", () => {
    expect(canonicalJson([3, 1, 2])).toBe("[3,1,2]");
  });

  it("writes primitives as JSON, and undefined at the top as null", () => {
    expect(canonicalJson("s")).toBe('"s"');
    expect(canonicalJson(1.5)).toBe("1.5");
    expect(canonicalJson(true)).toBe("true");
    expect(canonicalJson(undefined)).toBe("null");
  });
});
