/** The representative jobs and cluster settings of the golden files (also shell-checked and run). */
import type { ClusterRenderSettings, RenderableJob, RenderablePlan } from "../../src/render/render.js";
import { FULL_CLUSTER, groupJob, mapJob, MINIMAL_CLUSTER, packedMapJob, plainJob, step } from "./fixtures.js";

export const GOLDEN_JOBS: Record<string, RenderableJob> = {
  plain: plainJob(
    [
      step("inspect", 'gltf-inspect "$model_path" > "$HPCPIPE_OUT_DIR/report.json"', {
        requires: ["model_path"],
        needs: [{ key: "model_path", from: "context" }],
        outputs: ["../out/report.json"],
        env: { REPORT_FORMAT: "json" },
      }),
    ],
    { resources: { cpus: 2, mem: "2G", time: "10:00" } },
  ),
  fused: plainJob(
    [
      step("prep", 'echo "scene_path=out/scene.blend" >> "$HPCPIPE_PUBLISH"', { provides: ["scene_path"] }),
      step("render", 'blender -b "$scene_path" -o "$HPCPIPE_OUT_DIR/frame_#"', {
        requires: ["scene_path"],
        needs: [{ key: "scene_path", from: "prep" }],
        continue_on_error: true,
      }),
      step("report", "ls -l \"$HPCPIPE_OUT_DIR\"\necho 'done: it'\\''s fine'"),
    ],
    { id: "j004", name: "demo-prep+render+report", scriptPath: "scripts/j004.sbatch", resources: { cpus: 8, mem: "16G", time: "2:00:00", gpus: 1, partition: "gpu" } },
  ),
  group: groupJob(
    [
      { unitKey: null, steps: [step("checks.lint", "make lint")] },
      {
        unitKey: "checks.build",
        unitSignature: "aaaabbbbcccc",
        continue_on_error: true,
        steps: [step("checks.build.configure", "./configure --prefix=\"$HPCPIPE_OUT_DIR\""), step("checks.build.make", "make -j\"${SLURM_CPUS_PER_TASK:-1}\"")],
      },
      { unitKey: null, steps: [step("checks.docs", "make docs", { continue_on_error: true })] },
    ],
    {
      array: { count: 3, offset: 0, throttle: 2, chunk: 0, chunks: 1, total: 3, indices: null },
      resources: { cpus: 1, mem: "1G", time: "30", sbatch: ["--requeue"] },
    },
  ),
  "map-chunk": mapJob(
    "thumbs",
    "model_path",
    [
      step("thumbs.{i}.prep", 'prep-model "$model_path" > "$HPCPIPE_OUT_DIR/$HPCPIPE_TASK.json"\necho "thumb_in=out/$HPCPIPE_TASK.json" >> "$HPCPIPE_PUBLISH"', {
        requires: ["model_path"],
        provides: ["thumb_in"],
        needs: [{ key: "model_path", from: "context" }],
      }),
      step("thumbs.{i}.render", 'render-thumb "$thumb_in"', {
        requires: ["thumb_in", "size"],
        needs: [
          { key: "thumb_in", from: "thumbs.{i}.prep" },
          { key: "size", from: "context" },
        ],
        outputs: ["../out/thumbs"],
      }),
    ],
    { count: 1000, offset: 1001, throttle: 13, total: 2500 },
    { continueOnItemError: true, resources: { cpus: 1, mem: "500M", time: "5:00", constraint: "avx2&ib" } },
  ),
  "map-packed": packedMapJob(
    "validate",
    "model",
    [
      step("validate.{i}.inspect", 'gltf-inspect "$model" > "$HPCPIPE_OUT_DIR/$HPCPIPE_TASK.json"', {
        requires: ["model"],
        needs: [{ key: "model", from: "context" }],
      }),
      step("validate.{i}.check", 'gltf-validator "$model"', { requires: ["model"], needs: [{ key: "model", from: "context" }], continue_on_error: true }),
    ],
    { itemsPerTask: 20, itemCpus: 1 },
    { count: 100, throttle: 10 },
    { continueOnItemError: true, resources: { cpus: 4, mem: "2G", time: "10:00" } },
  ),
};

export const GOLDEN_CLUSTERS: Record<string, { cluster: ClusterRenderSettings; runDir: string }> = {
  minimal: { cluster: MINIMAL_CLUSTER, runDir: "/scratch/alice/hpcpipe/demo/r20261128-1" },
  full: { cluster: FULL_CLUSTER, runDir: "$SCRATCH/hpcpipe/demo/r20261128-1" },
};

export function goldenPlan(runDir: string): RenderablePlan {
  return {
    runId: "r20261128-1",
    pipeline: "demo",
    layout: { runDir },
    jobs: [
      { id: "j001", scriptPath: "scripts/j001.sbatch", dependencies: [] },
      { id: "j002", scriptPath: "scripts/j002.sbatch", dependencies: [{ job: "j001", type: "afterok" }] },
      { id: "j003", scriptPath: "scripts/j003.sbatch", dependencies: [{ job: "j001", type: "afterok" }, { job: "j002", type: "afterany" }] },
      { id: "j004", scriptPath: "scripts/j004.sbatch", dependencies: [{ job: "j002", type: "afterok" }, { job: "j003", type: "afterok" }] },
    ],
  };
}
