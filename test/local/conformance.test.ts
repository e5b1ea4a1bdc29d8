import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { exitCodeFrom } from "../../src/core/index.js";
import { runPlanLocally } from "../../src/local/executor.js";
import { compilePlan, conformanceCases, coreTree, makeRunDir, outcomes } from "./helpers.js";

let dirs: { base: string; runDir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dirs = await makeRunDir();
});
afterEach(async () => {
  await dirs.cleanup();
});

describe("conformance: the local executor and the in-process core record the same results", () => {
  it.each(conformanceCases)("%s: same step_states keys, outcomes, root result and exit code", async (_name, tree) => {
    const core = await coreTree(tree).run({});
    const plan = compilePlan(tree, dirs.runDir);
    const local = await runPlanLocally(plan, { runDir: dirs.runDir, cpus: 4 });

    // Steps the cluster could not run are extra, flagged not_run; everything else matches key for key.
    expect(outcomes(local.state.step_states, { withoutNotRun: true })).toEqual(outcomes(core.step_states));
    expect(local.state.success).toBe(core.success);
    expect(local.state.failure).toBe(core.failure);
    expect(local.state.meta.failed_step).toEqual(core.meta.failed_step);
    expect(local.state.error).toEqual(core.error);
    expect(exitCodeFrom(local.state)).toBe(exitCodeFrom(core));
    for (const s of Object.values(local.state.step_states ?? {})) {
      if (s.meta.not_run === true) expect(s.meta.slurm_reason).toBe("DependencyNeverSatisfied");
    }
  });
});
