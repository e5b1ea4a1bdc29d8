/**
 * The batch thumbnailer (examples/batch-thumbnails/) run for real on this
 * machine: the YAML compiled by preparePlan and run by runLocal (the job
 * scripts a cluster runs) with Blender and ffmpeg, on 4 generated models at
 * 32 px. The four render passes are batch steps (ONE Blender per pass for
 * the whole task), the contact sheet a per-item step; the Python helper
 * (bpy/hpcpipe_batch.py) reports each model, and also runs as a plain
 * per-item step with the same pixels.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeThumbnailBatch } from "../../examples/batch-thumbnails/generate.js";
import { blenderToolsProblem, inCI, warnUntested } from "../support/blender-tools.js";
import { decodePng, distinctSamples, foreground } from "../support/png.js";
import { runCompiled } from "../integration/helpers.js";

const PASSES = ["textured", "normal", "depth", "edges"] as const;
const MAP = "batch_thumbnails.thumbs";
const problem = blenderToolsProblem();
if (problem !== null && !inCI) warnUntested(problem, "the batch thumbnail example (examples/batch-thumbnails)");

describe("the batch thumbnail example: Blender is installed (required under CI)", () => {
  it("blender and ffmpeg are available", () => {
    if (inCI) expect(problem).toBeNull();
  });
});

describe.skipIf(problem !== null)("the batch thumbnail example on this machine", { timeout: 300_000 }, () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-batch-thumbs-"));
    await writeThumbnailBatch(join(dir, "batch"), 4);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("one map, batch render passes: a contact sheet per model, one Blender per pass, the empty scene failed alone; per-item Blender processes give the same pixels and states", async () => {
    const spec = join(dir, "batch", "pipeline.yaml");
    const set = { size: "32", samples: "2" };
    const { outcome, prepared } = await runCompiled({ spec, set, localRunsDir: join(dir, "runs"), runId: "batch", cpus: 2 });
    expect(prepared.plan.jobs.map((j) => [j.shape, j.array?.count])).toEqual([["map", 1]]);
    const states = outcome.state.step_states ?? {};
    for (const i of [0, 1, 2]) {
      for (const step of [...PASSES, "sheet"]) expect(states[`${MAP}.${i}.${step}`]?.success, `${i}.${step}: ${states[`${MAP}.${i}.${step}`]?.error ?? ""}`).toBe(true);
      const sheet = decodePng(join(outcome.runDir, `work/out/${MAP}/${i}/sheet.png`));
      expect([sheet.width, sheet.height]).toEqual([64, 64]);
      for (const pass of PASSES) {
        const img = decodePng(join(outcome.runDir, `work/out/${MAP}/${i}/${pass}.png`));
        expect(distinctSamples(img), `${i} ${pass}: not flat`).toBeGreaterThan(4);
        expect(foreground(img).count, `${i} ${pass}: model pixels`).toBeGreaterThan(20);
      }
    }
    expect(states[`${MAP}.3.textured`]?.error).toMatch(/reported it failed: ValueError: model 'models\/0003-empty_scene.glb' has no mesh geometry/);
    expect(states[`${MAP}.3.normal`], "left out of later steps").toBeUndefined();
    expect(outcome.state.success, "continue_on_item_error").toBe(true);
    // ONE Blender process per pass for the whole task.
    const logName = readdirSync(join(outcome.runDir, "logs")).find((f) => f.startsWith("slurm-")) ?? "no wrapper log";
    const slurmLog = readFileSync(join(outcome.runDir, "logs", logName), "utf8");
    expect(slurmLog.match(/one command for 4 item\(s\)/g)?.length).toBe(1);
    expect(slurmLog.match(/one command for 3 item\(s\)/g)?.length).toBe(3);

    // The same spec without batch: one Blender per model and pass, the helper in per-item mode.
    const perItem = join(dir, "per-item");
    cpSync(join(dir, "batch"), perItem, { recursive: true });
    writeFileSync(join(perItem, "pipeline.yaml"), readFileSync(spec, "utf8").replace(/^(\s+)batch: true$/gm, "$1batch: false"));
    const baseline = await runCompiled({ spec: join(perItem, "pipeline.yaml"), set, localRunsDir: join(dir, "runs"), runId: "per-item", cpus: 2 });
    const other = baseline.outcome.state.step_states ?? {};
    for (const i of [0, 1, 2]) {
      for (const pass of PASSES) {
        const a = decodePng(join(outcome.runDir, `work/out/${MAP}/${i}/${pass}.png`));
        const b = decodePng(join(baseline.outcome.runDir, `work/out/${MAP}/${i}/${pass}.png`));
        expect(Buffer.compare(Buffer.from(a.data), Buffer.from(b.data)), `${i} ${pass}: the same pixels`).toBe(0);
      }
    }
    // The same per-item states: outcome, failure kind and published values (paths relative to the run).
    const summary = (s: typeof states, runDir: string): Record<string, unknown> =>
      Object.fromEntries(
        Object.entries(s).map(([k, v]) => [k, { success: v.success, failure: v.failure, outputs: JSON.parse(JSON.stringify(v.outputs).replaceAll(runDir, "RUN")) as unknown }]),
      );
    expect(summary(other, baseline.outcome.runDir)).toEqual(summary(states, outcome.runDir));
  });
});
