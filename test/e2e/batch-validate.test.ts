// Example 4, the batch validator, on the project's own SLURM cluster over SSH (scripts/cluster/up.sh):
// a generated batch of a few dozen models submitted with `hpcpipe submit --wait` (the in-process CLI,
// a private HPCPIPE_HOME, a cluster config from the cluster's facts), packed into array tasks of 25
// items. The steps run as the cluster's user, who cannot read this checkout (see test/support/cluster.ts):
// they load the mini inspector and gltf-validator from the ONE self-contained file that is uploaded with
// the run (toolkit/toolkit.bundle.mjs), so the cluster needs Node and nothing of the client.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildToolkit } from "../../examples/batch-validate/build-toolkit.js";
import { writeBatch } from "../../examples/batch-validate/generate.js";
import type { Expected } from "../../examples/batch-validate/generate.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, readRemote, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const MAP = "batch_validate.models";
const COUNT = 36;
const BROKEN_EVERY = 4;

interface StepJson {
  success: boolean;
  failure: string | null;
  error: string | null;
  outputs: { published?: Record<string, string> };
  meta: Record<string, unknown>;
}

interface StateJson {
  success: boolean;
  step_states: Record<string, StepJson>;
}

interface Summary {
  files: number;
  valid: number;
  invalid: number;
  no_result: number;
  inspected: number;
  triangles: number;
  rows: { index: number; path: string; valid: boolean; inspected: boolean; triangles: number | null }[];
}

describe.skipIf(e2eSkipped)("examples/batch-validate on the test cluster", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let batchDir: string;
  let expected: Expected;

  beforeAll(async () => {
    env = workflowEnv("batch-validate");
    cluster = env.config("testcluster");
    // The example's toolkit from the current sources; writeBatch copies it beside the batch's pipeline.yaml.
    await buildToolkit();
    batchDir = path.join(env.dir, "batch");
    expected = (await writeBatch(batchDir, COUNT, { brokenEvery: BROKEN_EVERY })).expected;
  }, 300_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  it("submit --wait: every model validated on the cluster, the summary's counts equal the generator's", async () => {
    const spec = path.join(batchDir, "pipeline.yaml");
    const submitted = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const state = JSON.parse(submitted.stdout) as StateJson;
    expect(state.success).toBe(true);

    // Three jobs: the toolkit check, ONE array of ceil(36 / 25) = 2 packed tasks, the aggregate.
    const record = await env.record(runId);
    expect(record).toMatchObject({ phase: "collected", cluster: "testcluster" });
    expect(Object.keys(record.jobs)).toEqual(["j000", "j001", "j002"]);
    const plan = JSON.parse(readFileSync(path.join(env.home, "runs", runId, "plan.json"), "utf8")) as {
      jobs: { id: string; shape: string; array: { count: number } | null; map?: { itemsPerTask?: number } }[];
    };
    expect(plan.jobs.find((j) => j.shape === "map")).toMatchObject({ array: { count: 2 }, map: { itemsPerTask: 25 } });

    // The toolkit step ran on the cluster with the cluster's Node and the uploaded bundle.
    expect(state.step_states["batch_validate.toolkit"]?.outputs.published).toMatchObject({ node_version: expect.stringMatching(/^v\d+\./), validator_version: "2.0.0-dev.3.10" });

    // Broken models are failed items (with the validator's reason); the rest succeeded; the map and aggregate succeeded.
    const broken = expected.models.filter((m) => !m.valid);
    expect(state.step_states[MAP]?.meta.failed_allowed).toEqual(broken.map((m) => `${MAP}.${m.index}`));
    for (const m of expected.models) {
      const item = state.step_states[`${MAP}.${m.index}`];
      expect(item?.success, m.path).toBe(m.valid);
      expect(item?.meta.item).toBe(m.path);
      expect(item?.meta.slurm, m.path).toMatchObject({ task: m.index });
      if (!m.valid) {
        expect(item).toMatchObject({ failure: "STEP_FAILED", meta: { failed_step: `${MAP}.${m.index}.validate` } });
        expect(state.step_states[`${MAP}.${m.index}.validate`]?.outputs.published?.validation_error, m.path).toMatch(/^[A-Z_]+/);
      }
    }
    const aggregate = state.step_states["batch_validate.aggregate"];
    expect(aggregate?.success).toBe(true);
    expect(aggregate?.outputs.published).toMatchObject({ models_valid: String(expected.good), models_invalid: String(expected.broken), models_no_result: "0" });

    // The summary files on the cluster.
    const remote = await env.remote();
    const summaryText = await readRemote(remote, record.remote_dir, "work/out/summary.json");
    expect(summaryText).not.toBeNull();
    const summary = JSON.parse(summaryText ?? "{}") as Summary;
    expect(summary).toMatchObject({
      files: COUNT,
      valid: expected.good,
      invalid: expected.broken,
      no_result: 0,
      inspected: expected.models.filter((m) => m.inspectable).length,
      triangles: expected.triangles,
    });
    expect(summary.rows.map((r) => [r.index, r.path, r.valid, r.inspected, r.triangles])).toEqual(
      expected.models.map((m) => [m.index, m.path, m.valid, m.inspectable, m.triangles]),
    );
    const csv = await readRemote(remote, record.remote_dir, "work/out/summary.csv");
    expect(csv?.trimEnd().split("\n")).toHaveLength(COUNT + 1);
  });
});
