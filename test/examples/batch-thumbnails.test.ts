/**
 * The batch thumbnailer (examples/batch-thumbnails/) run for real on this
 * machine: the YAML compiled by preparePlan and run by runLocal (the job
 * scripts a cluster runs) with Blender and ffmpeg, on 4 generated models at
 * 32 px. The four render passes are batch steps (ONE Blender per pass for
 * the whole task), the contact sheet a per-item step; the Python helper
 * (bpy/hpcpipe_batch.py) reports each model, and also runs as a plain
 * per-item step with the same pixels.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "yaml";
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
    expect(slurmLog.match(/one command for 3 item\(s\)/g)?.length, "three passes and the contact sheets").toBe(4);

    // The same spec without batch: one Blender per model and pass, the helper in per-item mode.
    const perItem = join(dir, "per-item");
    cpSync(join(dir, "batch"), perItem, { recursive: true });
    writeFileSync(join(perItem, "pipeline.yaml"), readFileSync(spec, "utf8").replace(/^(\s+)batch: true$/gm, "$1batch: false"));
    const baseline = await runCompiled({ spec: join(perItem, "pipeline.yaml"), set, localRunsDir: join(dir, "runs"), runId: "per-item", cpus: 2 });
    const other = baseline.outcome.state.step_states ?? {};
    for (const i of [0, 1, 2]) {
      for (const pass of [...PASSES, "sheet"]) {
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

  it("the contact sheet batch step: ONE ffmpeg for the task's models; when a model's pass image is broken, one ffmpeg per model and only that model fails", () => {
    const spec = parse(readFileSync(resolve(import.meta.dirname, "../../examples/batch-thumbnails/pipeline.yaml"), "utf8")) as {
      steps: Array<{ steps: Array<{ step: string; batch?: boolean; run: string }> }>;
    };
    const step = spec.steps[0]?.steps.find((s) => s.step === "sheet");
    expect(step?.batch).toBe(true);
    const work = join(dir, "sheet-step");
    const shim = join(dir, "sheet-shim");
    mkdirSync(shim, { recursive: true });
    const ffmpeg = spawnSync("bash", ["-c", "command -v ffmpeg"], { encoding: "utf8" }).stdout.trim();
    // Counts ffmpeg processes, then runs the real one.
    writeFileSync(join(shim, "ffmpeg"), `#!/bin/bash\necho ffmpeg >> "$SHEET_CALLS"\nexec ${JSON.stringify(ffmpeg)} "$@"\n`);
    chmodSync(join(shim, "ffmpeg"), 0o755);
    const run = (broken: number | null): { report: string[]; calls: number } => {
      rmSync(work, { recursive: true, force: true });
      const lines: string[] = [];
      for (const i of [0, 1, 2]) {
        const out = join(work, `out/${MAP}/${i}`);
        mkdirSync(out, { recursive: true });
        const needs: string[] = [];
        for (const [k, pass] of PASSES.entries()) {
          const png = join(out, `${pass}.png`);
          const colour = ["red", "green", "blue", "white"][k] ?? "black";
          expect(spawnSync(ffmpeg, ["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", `color=c=${colour}:s=16x16`, "-frames:v", "1", png]).status).toBe(0);
          if (i === broken && pass === "depth") writeFileSync(png, "not a png");
          needs.push(`thumb_${pass}=${png}`);
        }
        writeFileSync(join(work, `needs${i}.env`), `${needs.join("\n")}\n`);
        writeFileSync(join(work, `pub${i}`), "");
        lines.push([i, `models/${i}.glb`, join(work, `pub${i}`), out, join(work, `needs${i}.env`)].join("\t"));
      }
      writeFileSync(join(work, "items.tsv"), `${lines.join("\n")}\n`);
      writeFileSync(join(work, "calls"), "");
      const lib = resolve(import.meta.dirname, "../../templates/lib.sh");
      const r = spawnSync("bash", ["-c", 'source "$1" && export -f hp_batch_report && cd "$2" && exec bash -c "$3"', "sheet", lib, work, step?.run ?? "false"], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${shim}:${process.env.PATH ?? ""}`, SHEET_CALLS: join(work, "calls"), HPCPIPE_BATCH_ITEMS: join(work, "items.tsv"), HPCPIPE_BATCH_REPORT: join(work, "report.tsv") },
      });
      expect(r.status, r.stderr).toBe(0);
      return { report: readFileSync(join(work, "report.tsv"), "utf8").split("\n").filter((l) => l !== ""), calls: readFileSync(join(work, "calls"), "utf8").trim().split("\n").length };
    };

    const good = run(null);
    expect(good.report).toEqual(["0\tok\t", "1\tok\t", "2\tok\t"]);
    expect(good.calls, "one ffmpeg for every sheet").toBe(1);
    for (const i of [0, 1, 2]) {
      const sheet = decodePng(join(work, `out/${MAP}/${i}/sheet.png`));
      expect([sheet.width, sheet.height]).toEqual([32, 32]);
      expect(readFileSync(join(work, `pub${i}`), "utf8")).toBe(`contact_sheet=out/${MAP}/${i}/sheet.png\n`);
    }
    const bad = run(1);
    expect(bad.report).toEqual(["0\tok\t", "1\tfailed\tffmpeg could not make the contact sheet", "2\tok\t"]);
    expect(bad.calls, "the task's ffmpeg, then one per model").toBe(4);
    expect(existsSync(join(work, `out/${MAP}/1/sheet.png`))).toBe(false);
    expect(readFileSync(join(work, "pub1"), "utf8")).toBe("");
    expect(decodePng(join(work, `out/${MAP}/2/sheet.png`)).width).toBe(32);
  });
});
