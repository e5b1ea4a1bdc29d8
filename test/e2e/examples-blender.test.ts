// The Blender examples on the project's own SLURM cluster over SSH (scripts/cluster/up.sh): Example 2
// (thumbnails) and Example 5 (orbit render, a copy with a handful of frames) submitted with
// `hpcpipe submit --wait` through the in-process CLI (a private HPCPIPE_HOME, a cluster config from the
// cluster's facts), then `hpcpipe collect`. The steps run as the cluster's user on this same machine
// with the bundled models (uploaded with the run); their pictures and videos are fetched back over
// SSH and checked here: sizes, pixels that are not blank, the contact sheet made of the passes, every
// frame in the videos, and the arrays as ONE array job each (the record's jobs, sacct's tasks).
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, REPO, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";
import { blenderToolsProblem, inCI, warnUntested } from "../support/blender-tools.js";
import { expectOrbitFrames, orbitExampleCopy, probeVideo } from "../support/orbit-render.js";
import { colourDistance, decodePngBytes, distinctSamples, foreground, rgb } from "../support/png.js";
import type { Image } from "../support/png.js";

const THUMBNAILS = path.join(REPO, "examples/thumbnails/pipeline.yaml");
const PASSES = ["textured", "normal", "depth", "edges"] as const;
/** Blender on a loaded 2-core machine: a run takes 8-15 s here, allow for much worse. */
const TEST_TIMEOUT_MS = 600_000;

const problem = blenderToolsProblem();
if (problem !== null && !inCI && !e2eSkipped) warnUntested(problem, "the Blender examples on the test cluster (test/e2e/examples-blender.test.ts)");

interface StepJson {
  success: boolean;
  failure: string | null;
  error: string | null;
  outputs: { published?: Record<string, string> };
  meta: Record<string, unknown> & { slurm?: { job_id?: string; array_job_id?: string; array_task_id?: string; task: number } };
}

interface StateJson {
  success: boolean;
  error: string | null;
  step_states: Record<string, StepJson>;
}

interface PlanJson {
  jobs: { id: string; shape: string; steps: string[]; array: { count: number; total: number; chunks: number } | null }[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Files of a run directory on the cluster matching a glob (relative to the run directory), as bytes, by name. */
async function fetchFiles(remote: SshTransport, remoteDir: string, glob: string): Promise<Map<string, Buffer>> {
  const files = await remote.getFiles(remoteDir, glob);
  const out = new Map<string, Buffer>();
  for (const [name, content] of files) {
    if (!Buffer.isBuffer(content)) throw new Error(`${remoteDir}/${name}: ${content.error}`);
    out.set(name, content);
  }
  return out;
}

/** The array tasks of SLURM job `jobId` and their final states, as the scheduler records them ("<id>_<task>" -> state). */
async function arrayTasks(env: WorkflowEnv, remote: SshTransport, jobId: string, expected: number): Promise<Map<string, string>> {
  // sacct lags squeue by a few seconds; without accounting, squeue keeps finished jobs for MinJobAge (300 s).
  const argv = env.facts.accounting ? ["sacct", "-X", "-n", "-P", "-j", jobId, "-o", "JobID,State"] : ["squeue", "-h", "-r", "-t", "all", "-j", jobId, "-o", "%i|%T"];
  let last = "";
  for (let attempt = 0; attempt < 60; attempt++) {
    const result = await remote.exec(argv);
    last = `${result.stdout}${result.stderr}`;
    if (result.code === 0) {
      const tasks = new Map(
        result.stdout
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((line) => line.trim().split("|") as [string, string]),
      );
      if (tasks.size >= expected && [...tasks.values()].every((s) => s === "COMPLETED")) return tasks;
    }
    await sleep(1_000);
  }
  throw new Error(`${argv[0]} never showed ${expected} completed tasks of job ${jobId}; last output:\n${last}`);
}

function expectAllSucceeded(state: StateJson): void {
  expect(state.error ?? null).toBeNull();
  expect(state.success).toBe(true);
  for (const [key, s] of Object.entries(state.step_states)) expect(s.success, `${key}: ${s.error ?? ""}`).toBe(true);
}

/** `collect RUN --json` later: exit 0, a successful merged result equal to what submit --wait printed. */
async function expectCollected(runId: string, submitted: StateJson): Promise<void> {
  const collected = await cli("collect", runId, "--json");
  expect(collected.code, collected.stderr).toBe(0);
  const merged = JSON.parse(collected.stdout) as StateJson;
  expectAllSucceeded(merged);
  expect(merged.step_states).toEqual(submitted.step_states);
}

describe("the Blender examples on the test cluster: Blender is installed (required under CI)", () => {
  it("blender (with numpy for the glTF importer), ffmpeg and ffprobe are available", () => {
    if (inCI) expect(problem, "install them with scripts/install-test-tools.sh").toBeNull();
  });
});

describe.skipIf(e2eSkipped || problem !== null)("the Blender examples on the test cluster", { timeout: TEST_TIMEOUT_MS }, () => {
  let env: WorkflowEnv;
  let cluster: string;

  beforeAll(() => {
    env = workflowEnv("examples-blender");
    cluster = env.config("testcluster");
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  function planOf(runId: string): PlanJson {
    return JSON.parse(readFileSync(path.join(env.home, "runs", runId, "plan.json"), "utf8")) as PlanJson;
  }

  it("Example 2 (thumbnails, 64 px, 4 samples): submit --wait and collect succeed; four passes from ONE 4-task array job; the pictures look right", async () => {
    const size = 64;
    const pulled = path.join(env.dir, "thumbnails-home");
    const submitted = await cli("submit", THUMBNAILS, "--cluster", cluster, "--set", `size=${size}`, "--set", "samples=4", "--wait", "--json", "--pull", "--to", pulled);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const state = JSON.parse(submitted.stdout) as StateJson;
    expectAllSucceeded(state);

    // Three jobs; the renders are the 4 tasks of one array job (the plan, the wrapper's SLURM ids, the scheduler).
    const record = await env.record(runId);
    expect(record).toMatchObject({ phase: "collected", cluster: "testcluster" });
    expect(Object.keys(record.jobs)).toEqual(["j000", "j001", "j002"]);
    const plan = planOf(runId);
    expect(plan.jobs.map((j) => [j.id, j.shape, j.array?.count ?? null])).toEqual([
      ["j000", "single", null],
      ["j001", "group", 4],
      ["j002", "single", null],
    ]);
    const arrayId = record.jobs.j001 ?? "";
    PASSES.forEach((pass, task) => {
      expect(state.step_states[`thumbnails.renders.${pass}`]?.meta.slurm, pass).toMatchObject({ array_job_id: arrayId, array_task_id: String(task), task });
    });
    const remote = await env.remote();
    const tasks = await arrayTasks(env, remote, arrayId, 4);
    expect([...tasks.keys()].sort()).toEqual([0, 1, 2, 3].map((t) => `${arrayId}_${t}`));

    // The pictures, fetched from the cluster.
    const thumbs = await fetchFiles(remote, record.remote_dir, "work/out/thumbs/*.png");
    expect([...thumbs.keys()].sort()).toEqual(PASSES.map((p) => `work/out/thumbs/${p}.png`).sort());
    const images = new Map<string, Image>();
    for (const pass of PASSES) {
      const name = `work/out/thumbs/${pass}.png`;
      const img = decodePngBytes(thumbs.get(name) ?? Buffer.alloc(0), name);
      images.set(pass, img);
      expect({ width: img.width, height: img.height }, pass).toEqual({ width: size, height: size });
      expect(distinctSamples(img), `${pass}: not one flat colour`).toBeGreaterThan(8);
      expect(foreground(img).count / (size * size), `${pass}: share of model pixels`).toBeGreaterThan(0.1);
    }
    const sheetName = "work/out/contact-sheet.png";
    const sheetBytes = (await fetchFiles(remote, record.remote_dir, sheetName)).get(sheetName) ?? Buffer.alloc(0);
    const sheet = decodePngBytes(sheetBytes, sheetName);
    // --pull brought every declared output home, byte for byte.
    expect(submitted.stderr).toMatch(/hpcpipe: pulled 9 file\(s\), .* 0 refused/);
    expect(readFileSync(path.join(pulled, "out/contact-sheet.png"))).toEqual(sheetBytes);
    for (const pass of PASSES) expect(readFileSync(path.join(pulled, `out/thumbs/${pass}.png`)), pass).toEqual(thumbs.get(`work/out/thumbs/${pass}.png`));
    expect(JSON.parse(readFileSync(path.join(pulled, "out/metadata.json"), "utf8"))).toBeTypeOf("object");
    expect({ width: sheet.width, height: sheet.height }).toEqual({ width: 2 * size, height: 2 * size });
    const tiles: [(typeof PASSES)[number], number, number][] = [
      ["textured", 0, 0],
      ["normal", size, 0],
      ["depth", 0, size],
      ["edges", size, size],
    ];
    for (const [pass, ox, oy] of tiles) {
      const img = images.get(pass);
      if (img === undefined) throw new Error(`no ${pass} image`);
      for (const [x, y] of [
        [size >> 1, size >> 1],
        [size >> 2, (3 * size) >> 2],
        [3, 3],
      ] as const) {
        expect(colourDistance(rgb(sheet, ox + x, oy + y), rgb(img, x, y)), `contact sheet ${pass} at ${x},${y}`).toBeLessThanOrEqual(2);
      }
    }

    await expectCollected(runId, state);
  });

  it("Example 5 (orbit render, 6 frames in 2 ranges, 64 px, 2 fps): submit --wait and collect succeed; the frames from ONE 2-task array job; GIF and MP4 of 6 frames", async () => {
    const size = 64;
    const copy = path.join(env.dir, "orbit-render");
    mkdirSync(copy);
    const spec = orbitExampleCopy(copy, ["1-3", "4-6"]);
    const local = path.join(env.dir, "orbit-home");
    const submitted = await cli("submit", spec, "--cluster", cluster, "--set", `size=${size}`, "--set", "fps=2", "--wait", "--json", "--pull", "--to", local);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const state = JSON.parse(submitted.stdout) as StateJson;
    expectAllSucceeded(state);
    expect(state.step_states["orbit_render.filter"]?.outputs.published).toEqual({ model: "models/windmill.glb", animation_s: "2.0" });
    expect(state.step_states["orbit_render.configure"]?.outputs.published).toMatchObject({ frame_start: "1", frame_end: "6", frame_count: "6" });

    const record = await env.record(runId);
    expect(record).toMatchObject({ phase: "collected", cluster: "testcluster" });
    expect(Object.keys(record.jobs)).toEqual(["j000", "j001", "j002"]);
    const plan = planOf(runId);
    expect(plan.jobs.map((j) => [j.id, j.shape, j.array?.count ?? null])).toEqual([
      ["j000", "single", null],
      ["j001", "map", 2],
      ["j002", "single", null],
    ]);
    expect(plan.jobs[0]?.steps).toEqual(["filter", "normalise", "configure", "orbit"].map((s) => `orbit_render.${s}`));
    const arrayId = record.jobs.j001 ?? "";
    for (const task of [0, 1]) {
      expect(state.step_states[`orbit_render.render_frames.${task}`]?.meta.item).toBe(["1-3", "4-6"][task]);
      expect(state.step_states[`orbit_render.render_frames.${task}.render`]?.meta.slurm).toMatchObject({ array_job_id: arrayId, array_task_id: String(task), task });
    }
    const remote = await env.remote();
    const tasks = await arrayTasks(env, remote, arrayId, 2);
    expect([...tasks.keys()].sort()).toEqual([`${arrayId}_0`, `${arrayId}_1`]);

    // The frames, fetched from the cluster: exactly frames 1..6, the right size, not blank, the camera moving.
    const frames = await fetchFiles(remote, record.remote_dir, "work/out/frames/frame_*.png");
    const names = Array.from({ length: 6 }, (_, i) => `work/out/frames/frame_${String(i + 1).padStart(4, "0")}.png`);
    expect([...frames.keys()].sort()).toEqual(names);
    expectOrbitFrames(
      names.map((name) => ({ name, image: decodePngBytes(frames.get(name) ?? Buffer.alloc(0), name) })),
      size,
    );

    // The videos, brought home by --pull with the other declared outputs, and probed here: every frame, at the frame size.
    const videos = await fetchFiles(remote, record.remote_dir, "work/out/orbit.*");
    expect([...videos.keys()].sort()).toEqual(["work/out/orbit.gif", "work/out/orbit.json", "work/out/orbit.mp4"]);
    for (const ext of ["gif", "mp4", "json"]) expect(readFileSync(path.join(local, `out/orbit.${ext}`)), ext).toEqual(videos.get(`work/out/orbit.${ext}`));
    expect(probeVideo(path.join(local, "out/orbit.gif"))).toEqual({ codec: "gif", width: size, height: size, frames: 6 });
    const mp4 = probeVideo(path.join(local, "out/orbit.mp4"));
    expect(mp4).toMatchObject({ width: size, height: size, frames: 6 });
    expect(["h264", "mpeg4"]).toContain(mp4.codec);

    await expectCollected(runId, state);
  });
});
