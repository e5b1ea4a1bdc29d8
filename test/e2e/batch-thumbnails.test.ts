// The batch thumbnailer (examples/batch-thumbnails) on the project's own SLURM cluster over SSH: a copy
// with 4 generated models, submitted with `hpcpipe submit --wait --pull` through the in-process CLI. The
// cluster's user reads nothing of this checkout: the models and bpy/ travel in the spec's bundle. The
// four passes are batch steps (ONE Blender per pass for the task's models), the sheet a per-item step;
// the per-item states come back through collect, and the sheets come home with --pull.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeThumbnailBatch } from "../../examples/batch-thumbnails/generate.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";
import { blenderToolsProblem } from "../support/blender-tools.js";
import { decodePngBytes, distinctSamples } from "../support/png.js";

const MAP = "batch_thumbnails.thumbs";
const PASSES = ["textured", "normal", "depth", "edges"] as const;

interface StepJson {
  success: boolean;
  failure: string | null;
  error: string | null;
  meta: Record<string, unknown> & { slurm?: { array_task_id?: string; task: number } };
}

const problem = blenderToolsProblem();

describe.skipIf(e2eSkipped || problem !== null)("the batch thumbnail example on the test cluster", { timeout: 600_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  beforeAll(() => {
    env = workflowEnv("batch-thumbnails");
    cluster = env.config("testcluster");
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it("4 models, 32 px: one map task, batch passes, a contact sheet per model pulled home; the empty scene fails alone; collect gives the same per-item states", async () => {
    const copy = path.join(env.dir, "batch-thumbnails");
    await writeThumbnailBatch(copy, 4);
    const home = path.join(env.dir, "home");
    const submitted = await cli("submit", path.join(copy, "pipeline.yaml"), "--cluster", cluster, "--set", "size=32", "--set", "samples=2", "--wait", "--json", "--pull", "--to", home);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const state = JSON.parse(submitted.stdout) as { success: boolean; step_states: Record<string, StepJson> };
    expect(state.success).toBe(true);
    for (const i of [0, 1, 2]) {
      for (const step of [...PASSES, "sheet"]) {
        const s = state.step_states[`${MAP}.${i}.${step}`];
        expect(s?.success, `${i}.${step}: ${s?.error ?? ""}`).toBe(true);
        expect(s?.meta.slurm?.task, "the item's index").toBe(i);
        expect(s?.meta.slurm?.array_task_id, "all items in array task 0").toBe("0");
      }
      const sheet = decodePngBytes(readFileSync(path.join(home, `out/${MAP}/${i}/sheet.png`)), `sheet ${i}`);
      expect([sheet.width, sheet.height]).toEqual([64, 64]);
      expect(distinctSamples(sheet)).toBeGreaterThan(8);
    }
    expect(state.step_states[`${MAP}.3.textured`]?.error).toMatch(/has no mesh geometry/);
    expect(state.step_states[`${MAP}.3.sheet`]).toBeUndefined();

    const remote = await env.remote();
    const record = await env.record(runId);
    const logs = await remote.getFiles(record.remote_dir, "logs/slurm-*.out");
    const log = [...logs.values()].map((c) => (Buffer.isBuffer(c) ? c.toString("utf8") : "")).join("");
    expect(log.match(/one command for 4 item\(s\)/g)?.length, log).toBe(1);
    expect(log.match(/one command for 3 item\(s\)/g)?.length, log).toBe(4);

    const collected = await cli("collect", runId, "--json");
    expect(collected.code, collected.stderr).toBe(0);
    expect((JSON.parse(collected.stdout) as { step_states: unknown }).step_states).toEqual(state.step_states);
  });
});
