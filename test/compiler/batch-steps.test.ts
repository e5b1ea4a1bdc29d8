import { describe, expect, it } from "vitest";
import { shortSignature } from "../../src/core/signature.js";
import { CompileError } from "../../src/compiler/errors.js";
import { MapStep } from "../../src/spec/map-step.js";
import { cmd, compileTree, group, pipe } from "./helpers.js";

describe("compiling batch steps", () => {
  it("a batch step inside a map is marked batch in the plan; plain steps carry no batch field", () => {
    const map = new MapStep({ name: "m", items: ["a", "b"], steps: [cmd("render", { batch: true }), cmd("sheet")] });
    const plan = compileTree(pipe("p", [map]));
    const steps = plan.jobs[0]?.bodies[0]?.steps ?? [];
    expect(steps.map((s) => [s.key, s.batch ?? null])).toEqual([
      ["p.m.{i}.render", true],
      ["p.m.{i}.sheet", null],
    ]);
    expect("batch" in (steps[1] ?? {})).toBe(false);
  });

  it("batch is part of the step's signature (the command speaks another contract)", () => {
    expect(shortSignature(cmd("render", { batch: true }))).not.toBe(shortSignature(cmd("render")));
    expect(shortSignature(cmd("render", { batch: false }))).toBe(shortSignature(cmd("render")));
  });

  it("a batch step outside a map, or in a parallel group, is refused naming its key", () => {
    expect(() => compileTree(pipe("p", [cmd("lonely", { batch: true })]))).toThrow(CompileError);
    expect(() => compileTree(pipe("p", [cmd("lonely", { batch: true })]))).toThrow(/p\.lonely: a batch step runs one command for all the items of a map's task/);
    expect(() => compileTree(pipe("p", [group("g", [cmd("x", { batch: true }), cmd("y")], { parallel: true })]))).toThrow(/p\.g\.x: .*parallel group p\.g is not a map/);
  });
});
