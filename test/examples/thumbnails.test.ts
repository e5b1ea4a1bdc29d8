/**
 * Example 2, the Blender thumbnail renderer (examples/thumbnails/), run for
 * real: the YAML pipeline compiled by preparePlan and run by runLocal (the
 * same bash job scripts as on a cluster) with Blender and ffmpeg, on the
 * fixture models. The PNGs are read back with node:zlib only (IHDR for the
 * size; IDAT inflated and unfiltered for the pixels; test/support/png.ts).
 *
 * Blender, its glTF importer's numpy and ffmpeg are installed by
 * scripts/install-test-tools.sh (vitest global setup). Without them the
 * rendering tests skip with a loud notice; under CI=true that is a failure.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import type { PreparedPlan } from "../../src/app/prepare.js";
import { runLocal } from "../../src/app/run-local.js";
import type { LocalRunOutcome } from "../../src/app/run-local.js";
import { ExitCode, exitCodeFrom } from "../../src/core/index.js";
import type { LocalRunEvent } from "../../src/local/index.js";
import { blenderToolsProblem, inCI, warnUntested } from "../support/blender-tools.js";
import { countPixels as count, decodePng, distinctSamples, foreground, pngSize, rgb } from "../support/png.js";
import type { Image } from "../support/png.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const SPEC = join(root, "examples/thumbnails/pipeline.yaml");
const MODELS = join(root, "test/fixtures/models");
const PASSES = ["textured", "normal", "depth", "edges"] as const;
type Pass = (typeof PASSES)[number];
const RENDER_KEYS = PASSES.map((p) => `thumbnails.renders.${p}`);
/** A whole run takes 6-10 s here (2 CPUs); leave room for slow CI machines. */
const RUN_TIMEOUT_MS = 240_000;

const problem = blenderToolsProblem();
const available = problem === null;
if (!available && !inCI) warnUntested(problem, "the Blender thumbnail example (examples/thumbnails)");

// ---------------------------------------------------------------- running the example

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempDir(prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface ExampleRun {
  prepared: PreparedPlan;
  outcome: LocalRunOutcome;
  events: LocalRunEvent[];
  work: string;
}

async function runExample(runId: string, set: Record<string, string>): Promise<ExampleRun> {
  const prepared = preparePlan({ spec: SPEC, set, runId, localRunsDir: tempDir(`hpcpipe-thumbs-${runId}-`) });
  const events: LocalRunEvent[] = [];
  const outcome = await runLocal(prepared, { onEvent: (e) => events.push(e) });
  return { prepared, outcome, events, work: join(outcome.runDir, "work") };
}

/** The plan's render array: exactly one array job, 4 tasks, the 4 passes in order, after scene prep + camera. */
function expectRenderArray(prepared: PreparedPlan): void {
  const jobs = prepared.plan.jobs;
  const arrays = jobs.filter((j) => j.array !== null);
  expect(arrays, "array jobs").toHaveLength(1);
  const renders = arrays[0];
  expect(renders?.shape).toBe("group");
  expect(renders?.array).toMatchObject({ count: 4, total: 4, offset: 0, chunks: 1 });
  expect(renders?.steps).toEqual(RENDER_KEYS);
  expect(renders?.bodies).toHaveLength(4);
  const prep = jobs.find((j) => j.steps.includes("thumbnails.scene_setup.prep"));
  expect(prep?.steps).toEqual(["thumbnails.scene_setup.prep", "thumbnails.scene_setup.camera"]);
  expect(renders?.dependencies).toEqual([{ job: prep?.id, type: "afterok" }]);
  const metadata = jobs.find((j) => j.steps.includes("thumbnails.metadata"));
  expect(metadata?.dependencies).toEqual([{ job: renders?.id, type: "afterok" }]);
  expect(jobs).toHaveLength(3);
}

interface Metadata {
  model: string;
  size: number;
  samples: number;
  passes: { pass: string; path: string; width: number; height: number; bytes: number; samples: number; render_s: number }[];
  contact_sheet: { path: string; width: number; height: number; layout: string[][] };
  model_stats: { triangles: number; vertices: number; mesh_objects: number; images: number; normalised: { min: number[]; max: number[] } };
}

/** What every successful run must show, at `size` pixels a pass. */
function expectGoodRun(run: ExampleRun, size: number, samples: number): Metadata {
  const { outcome, events, prepared } = run;
  expect(outcome.state.error ?? null).toBeNull();
  expect(exitCodeFrom(outcome.state)).toBe(ExitCode.OK);
  for (const [key, s] of Object.entries(outcome.state.step_states ?? {})) expect(s.success, key).toBe(true);
  for (const key of [...RENDER_KEYS, "thumbnails.scene_setup.prep", "thumbnails.scene_setup.camera", "thumbnails.metadata"]) {
    expect(outcome.state.step_states?.[key]?.success, key).toBe(true);
  }

  // The renders ran as the 4 tasks of the one array job.
  expectRenderArray(prepared);
  const renderJob = prepared.plan.jobs.find((j) => j.array !== null)?.id;
  const started = events.filter((e) => e.type === "task-started" && e.job === renderJob).map((e) => (e.type === "task-started" ? e.task : -1));
  expect(started.sort()).toEqual([0, 1, 2, 3]);

  for (const pass of PASSES) {
    const published = outcome.state.step_states?.[`thumbnails.renders.${pass}`]?.outputs.published as Record<string, string> | undefined;
    expect(published?.[`thumb_${pass}`]).toBe(`out/thumbs/${pass}.png`);
    const png = join(run.work, "out/thumbs", `${pass}.png`);
    expect(existsSync(png), png).toBe(true);
    expect(pngSize(readFileSync(png)), pass).toEqual({ width: size, height: size });
  }
  const sheet = join(run.work, "out/contact-sheet.png");
  expect(pngSize(readFileSync(sheet))).toEqual({ width: 2 * size, height: 2 * size });

  const metaPublished = outcome.state.step_states?.["thumbnails.metadata"]?.outputs.published as Record<string, string> | undefined;
  expect(metaPublished).toEqual({ contact_sheet: "out/contact-sheet.png", metadata: "out/metadata.json" });
  const metadata = JSON.parse(readFileSync(join(run.work, "out/metadata.json"), "utf8")) as Metadata;
  expect(metadata.size).toBe(size);
  expect(metadata.samples).toBe(samples);
  expect(metadata.passes.map((p) => p.pass)).toEqual([...PASSES]);
  for (const p of metadata.passes) {
    expect(p).toMatchObject({ path: `out/thumbs/${p.pass}.png`, width: size, height: size, samples });
    expect(p.bytes).toBe(readFileSync(join(run.work, p.path)).length);
    expect(p.render_s).toBeGreaterThan(0);
  }
  expect(metadata.contact_sheet).toMatchObject({ path: "out/contact-sheet.png", width: 2 * size, height: 2 * size });
  expect(metadata.contact_sheet.layout).toEqual([
    ["textured", "normal"],
    ["depth", "edges"],
  ]);
  // Normalised: the largest dimension is 2, centred on the origin.
  const { min, max } = metadata.model_stats.normalised;
  const extent = Math.max(...max.map((v, i) => v - (min[i] ?? 0)));
  expect(extent).toBeCloseTo(2, 4);
  for (let i = 0; i < 3; i++) expect(((max[i] ?? 0) + (min[i] ?? 0)) / 2).toBeCloseTo(0, 4);
  return metadata;
}

/** Non-blank, the model in view and framed (not touching the border, not tiny), and each pass looking like itself. */
function expectImagesLookRight(work: string, size: number, minCoverage: number): void {
  const images = Object.fromEntries(PASSES.map((p) => [p, decodePng(join(work, "out/thumbs", `${p}.png`))])) as Record<Pass, Image>;
  for (const pass of PASSES) {
    const img = images[pass];
    expect(img.width * img.height).toBe(size * size);
    expect(distinctSamples(img), `${pass}: not one flat colour`).toBeGreaterThan(8);
    const fg = foreground(img);
    expect(fg.count / (size * size), `${pass}: share of model pixels`).toBeGreaterThan(minCoverage);
    expect(fg.minX, `${pass}: framed (left margin)`).toBeGreaterThan(0);
    expect(fg.minY, `${pass}: framed (top margin)`).toBeGreaterThan(0);
    expect(fg.maxX, `${pass}: framed (right margin)`).toBeLessThan(size - 1);
    expect(fg.maxY, `${pass}: framed (bottom margin)`).toBeLessThan(size - 1);
    expect(fg.maxX - fg.minX, `${pass}: model width in the frame`).toBeGreaterThan(size / 3);
  }
  // normal: colourful (strongly unequal channels over much of the model).
  expect(count(images.normal, (p) => Math.max(...p) - Math.min(...p) > 80) / (size * size)).toBeGreaterThan(minCoverage / 2);
  // depth: grey everywhere, with a ramp of many levels over the model.
  expect(count(images.depth, ([r, g, b]) => r !== g || g !== b)).toBe(0);
  expect(new Set(Array.from({ length: size * size }, (_, i) => images.depth.data[i * images.depth.channels])).size).toBeGreaterThan(24);
  // edges: dark lines around light grey shapes on white, all grey.
  expect(count(images.edges, ([r, g, b]) => r !== g || g !== b)).toBe(0);
  expect(count(images.edges, (p) => Math.max(...p) < 90)).toBeGreaterThan(size);
  expect(count(images.edges, (p) => Math.min(...p) > 245) / (size * size)).toBeGreaterThan(0.3);
  // textured: the model's colours, not the grey background only.
  expect(count(images.textured, (p) => Math.max(...p) - Math.min(...p) > 40)).toBeGreaterThan(size);
  // The contact sheet is the four passes, 2x2 (ffmpeg copies the pixels).
  const sheet = decodePng(join(work, "out/contact-sheet.png"));
  const tiles: [Pass, number, number][] = [
    ["textured", 0, 0],
    ["normal", size, 0],
    ["depth", 0, size],
    ["edges", size, size],
  ];
  for (const [pass, ox, oy] of tiles) {
    for (const [x, y] of [
      [size >> 1, size >> 1],
      [size >> 2, (3 * size) >> 2],
      [3, 3],
    ] as const) {
      const want = rgb(images[pass], x, y);
      const got = rgb(sheet, ox + x, oy + y);
      expect(Math.max(...got.map((v, i) => Math.abs(v - (want[i] ?? 0)))), `contact sheet ${pass} at ${x},${y}`).toBeLessThanOrEqual(2);
    }
  }
}

// ---------------------------------------------------------------- tests

describe("examples/thumbnails: the plan", () => {
  it("compiles the four parallel renders to ONE array job of 4 tasks, between prep+camera (fused) and metadata", () => {
    const prepared = preparePlan({ spec: SPEC, runId: "plan", localRunsDir: tempDir("hpcpipe-thumbs-plan-") });
    expectRenderArray(prepared);
    expect(prepared.loaded.context).toMatchObject({ model: "models/cube.glb", size: 128, samples: 8 });
    expect(prepared.loaded.bundle).toEqual(["bpy/", "models/"]);
  });

  it("keeps context values out of the command text: the scripts never contain a value passed with --set", () => {
    const marker = "zz_model_marker_$(touch pwned).glb";
    const prepared = preparePlan({ spec: SPEC, runId: "plan", set: { model: marker, size: "98765" }, localRunsDir: tempDir("hpcpipe-thumbs-plan-") });
    for (const job of prepared.plan.jobs) {
      expect(job.script).not.toContain("zz_model_marker");
      expect(job.script).not.toContain("98765");
    }
  });
});

describe("examples/thumbnails: Blender is installed (required under CI)", () => {
  it("blender (with numpy for the glTF importer) and ffmpeg are available", () => {
    if (inCI) expect(problem, "install them with scripts/install-test-tools.sh").toBeNull();
  });
});

describe.skipIf(!available)("examples/thumbnails on the local executor", () => {
  describe("cube.glb at the defaults (128 px, 8 samples)", () => {
    let run: ExampleRun;
    beforeAll(async () => {
      run = await runExample("cube", { model: join(MODELS, "cube.glb") });
    }, RUN_TIMEOUT_MS);

    it("succeeds; four 128x128 PNGs, a 256x256 contact sheet, the metadata JSON listing them", () => {
      const metadata = expectGoodRun(run, 128, 8);
      expect(metadata.model).toBe(join(MODELS, "cube.glb"));
      expect(metadata.model_stats).toMatchObject({ triangles: 12, vertices: 24, mesh_objects: 1, images: 0 });
    });

    it("renders pictures that look right: non-blank, framed, normal colourful, depth a grey ramp, edges drawn", () => {
      expectImagesLookRight(run.work, 128, 0.2);
    });
  });

  describe("scene.glb with --set size=96 --set samples=4", () => {
    let run: ExampleRun;
    beforeAll(async () => {
      run = await runExample("scene", { model: join(MODELS, "scene.glb"), size: "96", samples: "4" });
    }, RUN_TIMEOUT_MS);

    it("succeeds at the size and samples asked for; the embedded texture is kept", () => {
      const metadata = expectGoodRun(run, 96, 4);
      expect(metadata.model_stats).toMatchObject({ triangles: 32, mesh_objects: 4, images: 1 });
    });

    it("renders pictures that look right", () => {
      expectImagesLookRight(run.work, 96, 0.05);
    });
  });

  it(
    "a broken model fails at scene prep with a clear error and exit code 4; the renders never run",
    async () => {
      const broken = join(MODELS, "broken.glb");
      const { outcome, events, prepared } = await runExample("broken", { model: broken });
      const state = outcome.state;
      expect(exitCodeFrom(state)).toBe(ExitCode.STEP_FAILED);
      expect(state.meta.failed_step).toBe("thumbnails.scene_setup.prep");
      const prep = state.step_states?.["thumbnails.scene_setup.prep"];
      expect(prep).toMatchObject({ success: false, failure: "STEP_FAILED", error: "command exited with status 3" });
      const stderr = readFileSync(join(outcome.runDir, "logs/thumbnails.scene_setup.prep.err"), "utf8");
      expect(stderr).toContain(`thumbnails prep: error: cannot import model '${broken}': Bad GLB`);

      // Nothing after prep ran: camera (same fused job) has no state, the array and metadata were cancelled.
      expect(state.step_states?.["thumbnails.scene_setup.camera"]).toBeUndefined();
      for (const key of [...RENDER_KEYS, "thumbnails.metadata"]) {
        expect(state.step_states?.[key]?.meta, key).toMatchObject({ not_run: true, slurm_reason: "DependencyNeverSatisfied" });
      }
      const later = new Set(prepared.plan.jobs.filter((j) => !j.steps.includes("thumbnails.scene_setup.prep")).map((j) => j.id));
      expect(events.filter((e) => e.type === "task-started" && later.has(e.job))).toEqual([]);
      expect(readdirSync(join(outcome.runDir, "states"))).toEqual(["thumbnails.scene_setup.prep.json"]);
      expect(existsSync(join(outcome.runDir, "work/out/thumbs"))).toBe(false);
      expect(existsSync(join(outcome.runDir, "work/out/scene.blend"))).toBe(false);
    },
    RUN_TIMEOUT_MS,
  );
});
