import { readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { exitCodeFrom, ExitCode, planTree } from "../../src/core/index.js";
import type { Context } from "../../src/core/index.js";
import { loadSpec } from "../../src/spec/load.js";
import type { MapStep } from "../../src/spec/map-step.js";
import { tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir("hpcpipe-examples-test-"));
  dir = realpathSync(dir);
});
afterEach(() => cleanup());

describe("the example specs", () => {
  it("thumbnail-shape runs prep, four parallel renders and metadata in-process", async () => {
    const { pipeline, context } = loadSpec("examples/specs/thumbnail-shape.yaml");
    const run: Context = { ...context };
    const result = await pipeline.run(run, { workDir: dir });
    expect(exitCodeFrom(result)).toBe(ExitCode.OK);
    expect(Object.keys(result.step_states ?? {}).filter((k) => k.startsWith("thumbnail_shape.renders.")).sort()).toEqual(
      ["front", "iso", "side", "top"].map((v) => `thumbnail_shape.renders.${v}`),
    );
    expect(run.metadata).toBe("out/metadata.txt");
    const metadata = readFileSync(join(dir, "out/metadata.txt"), "utf8").split("\n");
    expect(metadata[0]).toBe("model=models/cube.glb");
    expect(metadata.filter((l) => l.includes("out/views/")).length).toBe(4);
  });

  it("batch-map checks its 12 items and aggregates them", async () => {
    const { pipeline, context } = loadSpec("examples/specs/batch-map.yaml");
    const map = pipeline.children.find((c) => c.name === "check_all") as MapStep;
    expect(map.items).toHaveLength(12);
    const run: Context = { ...context };
    const result = await pipeline.run(run, { workDir: dir });
    expect(exitCodeFrom(result)).toBe(ExitCode.OK);
    expect(run.checked).toBe("12");
    expect(result.step_states?.["batch_map.check_all.11.check"]?.success).toBe(true);
    expect(readFileSync(join(dir, "out/summary.txt"), "utf8")).toContain("bench.glb ok 9");
  });

  it("chain runs 20 steps in order", async () => {
    const { pipeline, context } = loadSpec("examples/specs/chain.yaml");
    expect(pipeline.children).toHaveLength(20);
    const result = await pipeline.run({ ...context }, { workDir: dir });
    expect(result.success).toBe(true);
    const lines = readFileSync(join(dir, "out/chain.txt"), "utf8").trim().split("\n");
    expect(lines).toEqual(Array.from({ length: 20 }, (_, i) => `step ${String(i + 1).padStart(2, "0")}`));
  });

  it("all have every requirement satisfied in a dry run", () => {
    for (const name of ["thumbnail-shape", "batch-map", "chain"]) {
      const { pipeline, context } = loadSpec(`examples/specs/${name}.yaml`);
      const missing = planTree(pipeline, { ...context }).filter((e) => e.missing.length > 0);
      expect(missing, name).toEqual([]);
    }
  });
});
