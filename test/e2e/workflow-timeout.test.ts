// A step over its time limit on the real cluster: SLURM's smallest limit is one minute, so
// this takes about 70 s and lives in its own file.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

describe.skipIf(e2eSkipped)("a step over its time limit on the test cluster", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  beforeAll(() => {
    env = workflowEnv("workflow-timeout");
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it("ends with a TIMEOUT reason in the state its wrapper's trap wrote, and the dependents are not run", async () => {
    // USR1 20 s before the 1-minute limit: the wrapper records the state before SLURM kills the job.
    const cluster = env.config("graceful", { signal_grace_s: 20 });
    const spec = env.spec(
      "slowpoke",
      ["name: slowpoke", "steps:", "  - step: long", "    run: sleep 600", "    resources: { time: \"1\" }", "    fuse: false", "  - step: next", "    run: echo never", ""].join("\n"),
    );
    const result = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(result.code, result.stderr).toBe(4);
    const state = JSON.parse(result.stdout) as { step_states: Record<string, { success: boolean; error: string | null; meta: Record<string, unknown> }> };
    const long = state.step_states["slowpoke.long"];
    expect(long?.success).toBe(false);
    expect(long?.meta.reason).toBe("TIMEOUT");
    expect(long?.meta.not_run).toBeUndefined();
    expect(long?.error).toMatch(/killed by SIGUSR1 \(time limit\)/);
    expect(state.step_states["slowpoke.next"]?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied" });
    const runId = runIdFrom(result.stderr);
    const collected = await cli("collect", runId);
    expect(collected.stdout).toMatch(/slowpoke\.long +STEP_FAILED .*time limit/);
  });
});
