import { describe, expect, test } from "vitest";
import { fuseUnits } from "../../src/compiler/fusion.js";
import type { Segment } from "../../src/compiler/fusion.js";
import type { Unit } from "../../src/compiler/units.js";
import { group, leafUnit } from "./helpers.js";

/** Segments as short strings: `a+b` is one plain job running a then b, `[...]` a tolerated block, `group:k` an array. */
const shape = (segments: Segment[]): unknown[] =>
  segments.map((s) => {
    if (s.type === "single") return s.leaves.map((u) => u.leaf.key).join("+");
    if (s.type === "block") return shape(s.segments);
    return `${s.type}:${s.key}`;
  });

describe("fusion: which leaves share one job", () => {
  test("consecutive fusable leaves with equal resources become one job", () => {
    expect(shape(fuseUnits([leafUnit("a"), leafUnit("b"), leafUnit("c")]))).toEqual(["a+b+c"]);
  });

  test("a leaf with other resources starts a new job", () => {
    const units = [leafUnit("a", { resources: { cpus: 2 } }), leafUnit("b", { resources: { cpus: 2 } }), leafUnit("c", { resources: { cpus: 4 } })];
    expect(shape(fuseUnits(units))).toEqual(["a+b", "c"]);
  });

  test("a leaf that may not fuse has a job of its own and does not take in the fusable leaf after it", () => {
    const units = [leafUnit("a"), leafUnit("solo", { fusable: false }), leafUnit("b"), leafUnit("c")];
    expect(shape(fuseUnits(units))).toEqual(["a", "solo", "b+c"]);
  });

  test("an array ends a run of leaves; the leaves after it fuse among themselves", () => {
    const units: Unit[] = [leafUnit("a"), leafUnit("b"), { type: "group", key: "p.g", step: group("g", []) }, leafUnit("c"), leafUnit("d")];
    expect(shape(fuseUnits(units))).toEqual(["a+b", "group:p.g", "c+d"]);
  });

  test("the units of a tolerated block fuse inside it, never with the leaves around it", () => {
    const units: Unit[] = [leafUnit("a"), { type: "block", units: [leafUnit("b"), leafUnit("c")] }, leafUnit("d")];
    expect(shape(fuseUnits(units))).toEqual(["a", ["b+c"], "d"]);
  });

  test("nothing in, nothing out", () => {
    expect(fuseUnits([])).toEqual([]);
  });
});
