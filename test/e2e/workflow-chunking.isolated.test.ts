// A map of 12 items on a cluster whose MaxArraySize is 5: three array chunks (5, 5, 2 tasks),
// and all 12 items' states come back. It reconfigures the shared test cluster (about 7 s)
// and restores it afterwards: run it on its own, never alongside other end-to-end files.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "../cli/helpers.js";
import { ensureCluster } from "../support/cluster.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

describe.skipIf(e2eSkipped).sequential("a map larger than MaxArraySize on the test cluster", { timeout: 120_000 }, () => {
  let env: WorkflowEnv;
  let originalMaxArraySize = 1001;

  beforeAll(async () => {
    env = workflowEnv("workflow-chunking");
    originalMaxArraySize = env.facts.maxArraySize;
    await ensureCluster({ maxArraySize: 5 });
  }, 180_000);

  afterAll(async () => {
    await env?.cleanup();
    await ensureCluster({ maxArraySize: originalMaxArraySize === 5 ? 1001 : originalMaxArraySize });
  }, 180_000);

  it("runs as three chunks, and all 12 items' states come back with the same keys as `hpcpipe run`", async () => {
    const cluster = env.config("small-arrays", { max_array_size: 5 });
    const items = Array.from({ length: 12 }, (_, i) => `item-${String(i).padStart(2, "0")}`);
    const spec = env.spec(
      "twelve",
      [
        "name: twelve",
        "steps:",
        "  - map: each",
        `    items: ${JSON.stringify(items)}`,
        "    as: item",
        "    throttle: 4",
        "    steps:",
        "      - step: touch",
        "        run: echo \"done $item as task $HPCPIPE_TASK\"",
        "        requires: [item]",
        "  - step: after",
        "    run: echo all",
        "",
      ].join("\n"),
    );
    const plan = await cli("plan", spec, "--cluster", cluster, "--format", "json");
    const jobs = (JSON.parse(plan.stdout) as { jobs: Array<{ array: { count: number; offset: number } | null }> }).jobs;
    expect(jobs.filter((j) => j.array !== null).map((j) => [j.array?.offset, j.array?.count])).toEqual([
      [0, 5],
      [5, 5],
      [10, 2],
    ]);

    const result = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(result.code, result.stderr).toBe(0);
    const state = JSON.parse(result.stdout) as { success: boolean; step_states: Record<string, { success: boolean; meta: Record<string, unknown> }> };
    expect(state.success).toBe(true);
    for (let i = 0; i < 12; i++) {
      expect(state.step_states[`twelve.each.${i}`]?.success).toBe(true);
      expect(state.step_states[`twelve.each.${i}.touch`]?.meta.slurm).toMatchObject({ task: i });
    }
    const local = await cli("run", spec, "--runs-dir", env.dir, "--json", "-q");
    expect(Object.keys(state.step_states).sort()).toEqual(Object.keys((JSON.parse(local.stdout) as typeof state).step_states).sort());

    const runId = runIdFrom(result.stderr);
    const status = JSON.parse((await cli("status", runId, "--json")).stdout) as { jobs: Array<{ label: string; tasks: Array<{ task: number; state: string }> }> };
    expect(status.jobs.map((j) => j.label)).toEqual([
      "twelve.each [chunk 1/3: tasks 0-4]",
      "twelve.each [chunk 2/3: tasks 5-9]",
      "twelve.each [chunk 3/3: tasks 10-11]",
      "twelve.after",
    ]);
    expect(status.jobs.slice(0, 3).flatMap((j) => j.tasks.map((t) => t.task))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const log = await cli("logs", runId, "touch", "--task", "7");
    expect(log.stdout).toBe("done item-07 as task 7\n");
  });
});
