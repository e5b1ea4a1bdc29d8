/**
 * Example 5, the orbit render (examples/orbit-render/), run for real: the YAML pipeline compiled
 * by preparePlan and run by runLocal (the same bash job scripts as on a cluster) with Blender and
 * ffmpeg, on a copy of the example with a handful of frames (its frame-ranges.txt rewritten: the
 * map's items are fixed when the plan is compiled). The frames are read back with node:zlib only
 * (test/support/png.ts), the videos with ffprobe.
 *
 * Blender, its glTF importer's numpy and ffmpeg are installed by scripts/install-test-tools.sh
 * (vitest global setup). Without them the rendering tests skip with a loud notice; under CI=true
 * that is a failure.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
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
import { cli } from "../cli/helpers.js";
import { blenderToolsProblem, inCI, warnUntested } from "../support/blender-tools.js";
import { expectOrbitFrames, ORBIT_EXAMPLE, orbitExampleCopy, probeVideo } from "../support/orbit-render.js";
import { decodePng, pngSize } from "../support/png.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const SPEC = join(ORBIT_EXAMPLE, "pipeline.yaml");
const MODELS = join(root, "test/fixtures/models");
const SETUP_KEYS = ["filter", "normalise", "configure", "orbit"].map((s) => `orbit_render.${s}`);
const MAP = "orbit_render.render_frames";
/** A run of a few frames takes about 10 s here (2 CPUs); leave room for slow CI machines. */
const RUN_TIMEOUT_MS = 240_000;

const problem = blenderToolsProblem();
const available = problem === null;
if (problem !== null && !inCI) warnUntested(problem, "the Blender orbit render example (examples/orbit-render)");

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

/** Runs a copy of the example with these frame ranges (the map's items) and --set values. */
async function runExample(runId: string, ranges: readonly string[], set: Record<string, string>): Promise<ExampleRun> {
  const dir = tempDir(`hpcpipe-orbit-${runId}-`);
  const spec = orbitExampleCopy(join(dir, "example"), ranges);
  const prepared = preparePlan({ spec, set, runId, localRunsDir: join(dir, "runs") });
  const events: LocalRunEvent[] = [];
  const outcome = await runLocal(prepared, { onEvent: (e) => events.push(e) });
  return { prepared, outcome, events, work: join(outcome.runDir, "work") };
}

/** The plan: filter..orbit fused into one job, the map ONE array job of `tasks` tasks after it, encode after the array. */
function expectPlanShape(prepared: PreparedPlan, tasks: number): void {
  const jobs = prepared.plan.jobs;
  expect(jobs).toHaveLength(3);
  const [setup, render, encode] = jobs;
  expect(setup?.steps).toEqual(SETUP_KEYS);
  expect(setup?.array).toBeNull();
  expect(render?.shape).toBe("map");
  expect(render?.array).toMatchObject({ count: tasks, total: tasks, offset: 0, chunks: 1 });
  expect(render?.dependencies).toEqual([{ job: setup?.id, type: "afterok" }]);
  expect(encode?.steps).toEqual(["orbit_render.encode"]);
  expect(encode?.dependencies).toEqual([{ job: render?.id, type: "afterok" }]);
  expect(jobs.filter((j) => j.array !== null)).toEqual([render]);
}

function frameName(frame: number): string {
  return `frame_${String(frame).padStart(4, "0")}.png`;
}

interface StepOutputs {
  published?: Record<string, string>;
}

function published(run: ExampleRun, key: string): Record<string, string> | undefined {
  return (run.outcome.state.step_states?.[key]?.outputs as StepOutputs | undefined)?.published;
}

/** Everything a successful run of frames 1..frames, in `tasks` ranges, at `size` pixels must show. */
function expectGoodRun(run: ExampleRun, frames: number, tasks: number, size: number, minChange?: number): void {
  const { outcome, events, prepared } = run;
  expect(outcome.state.error ?? null).toBeNull();
  expect(exitCodeFrom(outcome.state)).toBe(ExitCode.OK);
  for (const [key, s] of Object.entries(outcome.state.step_states ?? {})) expect(s.success, key).toBe(true);
  for (const key of [...SETUP_KEYS, MAP, "orbit_render.encode", ...Array.from({ length: tasks }, (_, i) => `${MAP}.${i}.render`)]) {
    expect(outcome.state.step_states?.[key]?.success, key).toBe(true);
  }

  // The map ran as the tasks of its one array job, one range each.
  expectPlanShape(prepared, tasks);
  const renderJob = prepared.plan.jobs[1]?.id;
  const started = events.filter((e) => e.type === "task-started" && e.job === renderJob).map((e) => (e.type === "task-started" ? e.task : -1));
  expect(started.sort((a, b) => a - b)).toEqual(Array.from({ length: tasks }, (_, i) => i));
  expect(published(run, "orbit_render.configure")).toMatchObject({ frame_start: "1", frame_end: String(frames), frame_count: String(frames) });

  // Exactly the frames of the ranges, at the size asked for, plus one JSON per range.
  const dir = join(run.work, "out/frames");
  const names = readdirSync(dir).sort();
  const want = Array.from({ length: frames }, (_, i) => frameName(i + 1));
  expect(names.filter((n) => n.endsWith(".png"))).toEqual(want);
  expect(names.filter((n) => n.endsWith(".json"))).toHaveLength(tasks);
  for (const name of want) expect(pngSize(readFileSync(join(dir, name)), name)).toEqual({ width: size, height: size });
  expectOrbitFrames(
    want.map((name) => ({ name, image: decodePng(join(dir, name)) })),
    size,
    minChange,
  );

  // The videos: every frame, at the frame size (ffprobe decodes them to count).
  expect(published(run, "orbit_render.encode")).toEqual({ video_gif: "out/orbit.gif", video_mp4: "out/orbit.mp4" });
  expect(probeVideo(join(run.work, "out/orbit.gif"))).toEqual({ codec: "gif", width: size, height: size, frames });
  const mp4 = probeVideo(join(run.work, "out/orbit.mp4"));
  expect(mp4).toMatchObject({ width: size, height: size, frames });
  expect(["h264", "mpeg4"]).toContain(mp4.codec);
  const summary = JSON.parse(readFileSync(join(run.work, "out/orbit.json"), "utf8")) as { frames: number; gif: { bytes: number }; mp4: { codec: string; bytes: number } };
  expect(summary).toMatchObject({ frames, frame_start: 1, frame_end: frames });
  expect(summary.gif.bytes).toBe(readFileSync(join(run.work, "out/orbit.gif")).length);
  expect(summary.mp4).toMatchObject({ codec: mp4.codec, bytes: readFileSync(join(run.work, "out/orbit.mp4")).length });
}

// ---------------------------------------------------------------- tests

describe("examples/orbit-render: the plan", () => {
  it("compiles the map over frame-ranges.txt to ONE array job of 4 tasks, between the fused setup job and encode", () => {
    const prepared = preparePlan({ spec: SPEC, runId: "plan", localRunsDir: tempDir("hpcpipe-orbit-plan-") });
    expectPlanShape(prepared, 4);
    expect(prepared.plan.jobs[1]?.map).toMatchObject({ itemKey: "frames" });
    expect(prepared.loaded.context).toEqual({ models: "models", pick: "auto", engine: "cycles", size: 96, samples: 4, fps: 12 });
    expect(prepared.loaded.bundle).toEqual(["bpy/", "models/", "encode.sh", "frame-ranges.txt"]);
  });

  it("`hpcpipe plan` shows the map as one array job of 4 tasks", async () => {
    const plan = await cli("plan", SPEC);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("3 job(s), 6 task(s)");
    expect(plan.stdout).toMatch(/j000 +fused\(4\) +orbit_render\.filter -> orbit_render\.normalise -> orbit_render\.configure -> orbit_render\.orbit\n/);
    expect(plan.stdout).toMatch(/j001 +array\[4\] +map orbit_render\.render_frames: orbit_render\.render_frames\.\{i\}\.render per item +after j000\(afterok\)/);
    expect(plan.stdout).toMatch(/j002 +single +orbit_render\.encode +after j001\(afterok\)/);
  });

  it("keeps context values out of the command text: the scripts never contain a value passed with --set", () => {
    const marker = "zz_models_marker_$(touch pwned)";
    const prepared = preparePlan({ spec: SPEC, runId: "plan", set: { models: marker, pick: "zz_pick_marker", size: "98765" }, localRunsDir: tempDir("hpcpipe-orbit-plan-") });
    for (const job of prepared.plan.jobs) {
      expect(job.script).not.toContain("zz_models_marker");
      expect(job.script).not.toContain("zz_pick_marker");
      expect(job.script).not.toContain("98765");
    }
  });
});

describe("examples/orbit-render: Blender is installed (required under CI)", () => {
  it("blender (with numpy for the glTF importer), ffmpeg and ffprobe are available", () => {
    if (inCI) expect(problem, "install them with scripts/install-test-tools.sh").toBeNull();
  });
});

describe.skipIf(!available)("examples/orbit-render on the local executor", () => {
  // At 2 fps the windmill's rotor turns 90 degrees a frame and looks the same in every frame: what changes is the camera.
  describe("the bundled models, 6 frames in 2 ranges (1-3, 4-6), --set size=80 samples=4 fps=2", () => {
    let run: ExampleRun;
    beforeAll(async () => {
      run = await runExample("windmill", ["1-3", "4-6"], { size: "80", samples: "4", fps: "2" });
    }, RUN_TIMEOUT_MS);

    it("succeeds: 6 frames of 80x80 from a 2-task array, not blank, all different (the camera moves); a GIF and an MP4 of 6 frames", () => {
      expectGoodRun(run, 6, 2, 80);
    });

    it("the filter kept the animated model of the bundled set and the steps used it", () => {
      expect(published(run, "orbit_render.filter")).toEqual({ model: "models/windmill.glb", animation_s: "2.0" });
      const report = JSON.parse(readFileSync(join(run.work, "out/filter.json"), "utf8")) as { looked_at: { file: string; animated: boolean; reason: string | null }[]; picked: string };
      expect(report.looked_at.map((e) => [e.file, e.animated, e.reason])).toEqual([
        ["cube.glb", false, "no animations"],
        ["scene.glb", false, "no animations"],
        ["windmill.glb", true, null],
      ]);
      expect(report.picked).toBe("windmill.glb");
      const stats = JSON.parse(readFileSync(join(run.work, "out/model.json"), "utf8")) as { animated_objects: string[]; normalised: { min: number[]; max: number[] } };
      expect(stats.animated_objects).toEqual(["rotor"]);
      const { min, max } = stats.normalised;
      expect(Math.max(...max.map((v, i) => v - (min[i] ?? 0)))).toBeCloseTo(2, 4);
      const settings = JSON.parse(readFileSync(join(run.work, "out/configured.json"), "utf8")) as Record<string, unknown>;
      expect(settings).toMatchObject({ engine: "CYCLES", size: 80, samples: 4, fps: 2, frame_start: 1, frame_end: 6, ranges: ["1-3", "4-6"], seconds: 3 });
      expect(settings.animation).toMatchObject({ actions: ["rotor_turn_rotor"], retimed_by: 0.083333, loop_s: 2 });
      const orbit = JSON.parse(readFileSync(join(run.work, "out/orbit-scene.json"), "utf8")) as Record<string, unknown>;
      expect(orbit).toMatchObject({ frames: [1, 6], degrees_per_frame: 60 });
    });
  });

  it(
    "--set models=test/fixtures/models: picks animated.gltf (with its .bin) among static, empty and broken models, and renders it",
    async () => {
      const run = await runExample("fixtures", ["1-2"], { models: MODELS, size: "64", samples: "2" });
      expectGoodRun(run, 2, 1, 64);
      expect(published(run, "orbit_render.filter")?.model).toBe(join(MODELS, "animated.gltf"));
      const report = JSON.parse(readFileSync(join(run.work, "out/filter.json"), "utf8")) as { looked_at: { file: string; animated: boolean; reason: string | null }[] };
      expect(Object.fromEntries(report.looked_at.map((e) => [e.file, e.reason ?? "animated"]))).toEqual({
        "animated.gltf": "animated",
        "broken.glb": expect.stringMatching(/^not a readable glTF 2\.0 file: the GLB header says \d+ bytes, the file has \d+$/) as unknown,
        "cube.glb": "no animations",
        "empty-scene.glb": "no meshes",
        "scene.glb": "no animations",
      });
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "a set without an animated model fails at the filter with an error naming every file looked at; nothing is rendered",
    async () => {
      const models = tempDir("hpcpipe-orbit-static-");
      mkdirSync(join(models, "set"));
      for (const name of ["cube.glb", "scene.glb", "broken.glb"]) copyFileSync(join(MODELS, name), join(models, "set", name));
      const set = join(models, "set");
      const { outcome, events, prepared } = await runExample("static", ["1-3", "4-6"], { models: set });
      const state = outcome.state;
      expect(exitCodeFrom(state)).toBe(ExitCode.STEP_FAILED);
      expect(state.meta.failed_step).toBe("orbit_render.filter");
      expect(state.step_states?.["orbit_render.filter"]).toMatchObject({ success: false, failure: "STEP_FAILED", error: "command exited with status 3" });
      const stderr = readFileSync(join(outcome.runDir, "logs/orbit_render.filter.err"), "utf8");
      expect(stderr).toContain(
        `orbit-render filter: error: no animated model among the 3 glTF file(s) looked at in '${set}': broken.glb (not a readable glTF 2.0 file: the GLB header says`,
      );
      expect(stderr).toContain("cube.glb (no animations), scene.glb (no animations)");

      // Nothing after the filter ran: the rest of its fused job has no state, the array and encode were cancelled.
      for (const key of SETUP_KEYS.slice(1)) expect(state.step_states?.[key], key).toBeUndefined();
      for (const key of [`${MAP}.0.render`, `${MAP}.1.render`, "orbit_render.encode"]) {
        expect(state.step_states?.[key]?.meta, key).toMatchObject({ not_run: true, slurm_reason: "DependencyNeverSatisfied" });
      }
      const later = new Set(prepared.plan.jobs.slice(1).map((j) => j.id));
      expect(events.filter((e) => e.type === "task-started" && later.has(e.job))).toEqual([]);
      expect(readdirSync(join(outcome.runDir, "states"))).toEqual(["orbit_render.filter.json"]);
      expect(existsSync(join(outcome.runDir, "work/out/frames"))).toBe(false);
      expect(existsSync(join(outcome.runDir, "work/out/scene.blend"))).toBe(false);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "frame ranges with a gap fail at configure, naming the file and the missing frame; nothing is rendered",
    async () => {
      const { outcome } = await runExample("gap", ["1-3", "5-6"], {});
      expect(exitCodeFrom(outcome.state)).toBe(ExitCode.STEP_FAILED);
      expect(outcome.state.meta.failed_step).toBe("orbit_render.configure");
      expect(outcome.state.step_states?.["orbit_render.configure"]).toMatchObject({ error: "command exited with status 2" });
      const stderr = readFileSync(join(outcome.runDir, "logs/orbit_render.configure.err"), "utf8");
      expect(stderr).toContain("orbit-render configure: error: frame-ranges.txt: frame 4 is in no range (between lines 2 and 3)");
      expect(existsSync(join(outcome.runDir, "work/out/frames"))).toBe(false);
    },
    RUN_TIMEOUT_MS,
  );
});
