import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildStepIndex } from "../../src/collect/job-index.js";
import { mergeStates } from "../../src/collect/merge.js";
import type { JobFact } from "../../src/collect/merge.js";
import { readStateDir } from "../../src/collect/read-states.js";
import { CompletedState, ExitCode, exitCodeFrom } from "../../src/core/index.js";
import type { CompiledPlan, PlanNode } from "../../src/plan/plan.js";
import { STATE_FILE_MAX_BYTES } from "../../src/plan/state-file.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { compilePlan, conformanceCases, coreTree, group, map, outcomes, pipeline, stateFile, step } from "../local/helpers.js";

const RUN = "/nonexistent/run";
const NOW = "2026-02-01T00:00:00.000Z";

function states(...files: StateFile[]): Map<string, StateFile> {
  return new Map(files.map((f) => [f.key, f]));
}

/** The state files the cluster would have written for what the core ran: every leaf and unit it recorded. */
function filesFromCore(plan: CompiledPlan, core: CompletedState): { files: Map<string, StateFile>; facts: Map<string, JobFact> } {
  const recorded = core.step_states ?? {};
  const files = new Map<string, StateFile>();
  const facts = new Map<string, JobFact>();
  const slots = buildStepIndex(plan);
  for (const [key, slot] of slots) {
    for (const k of [key, slot.unitKey]) {
      const s = k === null ? undefined : recorded[k];
      if (k !== null && s !== undefined) files.set(k, stateFile(k, s.success, { failure: s.failure, error: s.error }));
    }
  }
  for (const job of plan.jobs) {
    const ran = [...slots.entries()].filter(([, s]) => s.job === job).some(([k]) => recorded[k] !== undefined);
    facts.set(job.id, ran ? { state: "COMPLETED", reason: null } : { state: "CANCELLED", reason: "DependencyNeverSatisfied", slurmJobId: "99" });
  }
  return { files, facts };
}

describe("mergeStates: conformance with the in-process core", () => {
  it.each(conformanceCases)("%s: from the leaves the core ran, the merge rebuilds exactly the core's step_states keys and outcomes", async (_n, tree) => {
    const core = await coreTree(tree).run({});
    const plan = compilePlan(tree, RUN);
    const { files, facts } = filesFromCore(plan, core);

    const merged = mergeStates(plan, files, { now: NOW });
    expect(Object.keys(merged.step_states ?? {}).sort()).toEqual(Object.keys(core.step_states ?? {}).sort());
    expect(outcomes(merged.step_states)).toEqual(outcomes(core.step_states));
    expect([merged.success, merged.failure, merged.error, merged.meta.failed_step]).toEqual([core.success, core.failure, core.error, core.meta.failed_step]);
    expect(exitCodeFrom(merged)).toBe(exitCodeFrom(core));

    // With the scheduler's facts, steps that never ran are added as not_run failures, and nothing else changes.
    const withFacts = mergeStates(plan, files, { now: NOW, jobFacts: facts });
    expect(outcomes(withFacts.step_states, { withoutNotRun: true })).toEqual(outcomes(core.step_states));
    expect([withFacts.success, withFacts.failure, withFacts.meta.failed_step]).toEqual([core.success, core.failure, core.meta.failed_step]);
  });

  it("does not include the root in its own step_states, and lists the root's provides", () => {
    const plan = compilePlan(pipeline("p", [step("a", { provides: ["x"] })]), RUN);
    const merged = mergeStates(plan, states(stateFile("p.a", true)), { now: NOW });
    expect(Object.keys(merged.step_states ?? {})).toEqual(["p.a"]);
    expect(merged.provides).toEqual(["x"]);
    expect(merged.signature).toBe("sig-p");
    expect(merged.meta.run_id).toBe("test-run");
  });

  it("puts the cluster facts of a state file into meta and keeps the step's own fields", () => {
    const plan = compilePlan(pipeline("p", [step("a", { provides: ["x"] })]), RUN);
    const file = stateFile("p.a", true, { slurm: { job_id: "51", array_job_id: "50", array_task_id: "0", task: 0 }, host: "node07", attempt: 2, outputs: { files: ["out/a"] } });
    const a = mergeStates(plan, states(file), { now: NOW }).step_states?.["p.a"];
    expect(a).toBeInstanceOf(CompletedState);
    expect(a?.meta).toMatchObject({ exit_code: 0, slurm: { job_id: "51", array_job_id: "50" }, host: "node07", attempt: 2 });
    expect(a?.outputs).toEqual({ files: ["out/a"] });
    expect(a?.provides).toEqual(["x"]);
    expect(a?.timestamp).toBe("2026-01-01T00:00:00.000Z");
  });

  it("gives the root the failure kind of its first failed step, so exitCodeFrom is right", () => {
    const plan = compilePlan(pipeline("p", [step("a"), step("b")]), RUN);
    const merged = mergeStates(plan, states(stateFile("p.a", false, { failure: "MISSING_REQUIREMENT", error: "missing requirement 'x'" })), { now: NOW });
    expect(merged.failure).toBe("MISSING_REQUIREMENT");
    expect(exitCodeFrom(merged)).toBe(ExitCode.MISSING_REQUIREMENT);
    expect(merged.error).toBe("p.a: missing requirement 'x'");
  });

  it("computes a composite's timing from its children", () => {
    const plan = compilePlan(pipeline("p", [pipeline("inner", [step("a"), step("b")])]), RUN);
    const merged = mergeStates(
      plan,
      states(
        stateFile("p.inner.a", true, { timestamp: "2026-01-01T00:00:00.000Z", duration_s: 2 }),
        stateFile("p.inner.b", true, { timestamp: "2026-01-01T00:00:03.000Z", duration_s: 1 }),
      ),
      { now: NOW },
    );
    expect(merged.step_states?.["p.inner"]).toMatchObject({ success: true, timestamp: "2026-01-01T00:00:00.000Z", duration_s: 4, signature: "sig-p.inner" });
  });
});

describe("mergeStates: maps and units", () => {
  const tree = pipeline("p", [map("m", ["a", "b"], [step("s")])]);

  it("expands {i} in a map's keys for every item, whether the map's children are its steps or one item node", () => {
    const plan = compilePlan(tree, RUN);
    const files = states(stateFile("p.m.0.s", true), stateFile("p.m.1.s", true));
    const direct = mergeStates(plan, files, { now: NOW });
    expect(Object.keys(direct.step_states ?? {}).sort()).toEqual(["p.m", "p.m.0", "p.m.0.s", "p.m.1", "p.m.1.s"]);

    const m = plan.tree.children[0] as PlanNode;
    const item: PlanNode = { key: "p.m.{i}", name: "{i}", kind: "pipeline", parallel: false, continue_on_error: false, signature: "sig-item", provides: [], children: m.children };
    const nested: CompiledPlan = { ...plan, tree: { ...plan.tree, children: [{ ...m, children: [item] }] } };
    expect(Object.keys(mergeStates(nested, files, { now: NOW }).step_states ?? {}).sort()).toEqual(Object.keys(direct.step_states ?? {}).sort());
  });

  it("uses a unit's own state file when there is one, naming the deepest failed step when the file does not", () => {
    const plan = compilePlan(tree, RUN);
    const files = states(
      stateFile("p.m.0.s", true),
      stateFile("p.m.0", true, { timestamp: "2026-01-01T01:00:00.000Z" }),
      stateFile("p.m.1.s", false),
      stateFile("p.m.1", false, { error: "unit failed" }),
    );
    const merged = mergeStates(plan, files, { now: NOW });
    expect(merged.step_states?.["p.m.0"]?.timestamp).toBe("2026-01-01T01:00:00.000Z");
    expect(merged.step_states?.["p.m.1"]?.meta.failed_step).toBe("p.m.1.s");
    expect(merged.meta.failed_step).toBe("p.m.1.s");
    expect(merged.error).toBe("p.m.1.s: command exited with status 3");
  });

  it("a unit file that says success does not hide a failed step below it", () => {
    const plan = compilePlan(tree, RUN);
    const files = states(stateFile("p.m.0.s", false), stateFile("p.m.0", true), stateFile("p.m.1.s", true));
    const merged = mergeStates(plan, files, { now: NOW });
    expect(merged.step_states?.["p.m.0"]).toMatchObject({ success: false, meta: { failed_step: "p.m.0.s", unit_state_success: true } });
    expect(merged.success).toBe(false);
  });

  it("a map that continues on item errors succeeds with the failed items listed", () => {
    const plan = compilePlan(pipeline("p", [map("m", ["a", "b"], [step("s")], { continue_on_item_error: true })]), RUN);
    const merged = mergeStates(plan, states(stateFile("p.m.0.s", false), stateFile("p.m.1.s", true)), { now: NOW });
    expect(merged.success).toBe(true);
    expect(merged.step_states?.["p.m"]).toMatchObject({ success: true, meta: { failed_allowed: ["p.m.0"] } });
  });
});

describe("mergeStates: unusable state files", () => {
  it("turns corrupt, oversized and mis-keyed state files into clear failures of their steps", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hpcpipe-merge-"));
    try {
      const plan = compilePlan(pipeline("p", [group("g", [step("a"), step("b"), step("c"), step("d")])]), RUN);
      await writeFile(join(dir, "p.g.a.json"), JSON.stringify(stateFile("p.g.a", true)));
      await writeFile(join(dir, "p.g.b.json"), '{"success": tru');
      await writeFile(join(dir, "p.g.c.json"), `{"pad":"${"x".repeat(STATE_FILE_MAX_BYTES)}"}`);
      await writeFile(join(dir, "p.g.d.json"), JSON.stringify(stateFile("p.g.a", true)));
      const read = await readStateDir(dir);
      const merged = mergeStates(plan, read.states, { problems: read.problems, now: NOW });
      const s = merged.step_states ?? {};

      expect(s["p.g.a"]?.success).toBe(true);
      expect(s["p.g.b"]).toMatchObject({ success: false, failure: "STEP_FAILED", meta: { state_file: "states/p.g.b.json" } });
      expect(s["p.g.b"]?.error).toMatch(/^state file states\/p\.g\.b\.json is unusable: not valid JSON/);
      expect(s["p.g.c"]?.error).toMatch(/^state file states\/p\.g\.c\.json is unusable: .*over the 1048576-byte limit/);
      expect(s["p.g.d"]?.error).toMatch(/names key "p\.g\.a", not "p\.g\.d"/);
      expect(merged.success).toBe(false);
      expect(merged.meta.failed_step).toBe("p.g.b");
      expect(exitCodeFrom(merged)).toBe(ExitCode.STEP_FAILED);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reports problems and states that name no step of the tree on the root instead of dropping them", () => {
    const plan = compilePlan(pipeline("p", [step("a")]), RUN);
    const merged = mergeStates(plan, states(stateFile("p.a", true), stateFile("p.zzz", true)), {
      now: NOW,
      problems: [
        { file: "bad name.json", error: "file name is not <step key>.json" },
        { file: "p.other.json", error: "not valid JSON" },
      ],
    });
    expect(merged.success).toBe(true);
    expect(merged.meta.unknown_states).toEqual(["p.zzz"]);
    expect(merged.meta.state_problems).toEqual([
      { file: "bad name.json", error: "file name is not <step key>.json" },
      { file: "p.other.json", error: "not valid JSON" },
    ]);
  });
});

describe("mergeStates: jobs that ended without writing states", () => {
  const tree = pipeline("p", [step("a"), step("b"), step("c")]);

  it.each([
    ["CANCELLED", "DependencyNeverSatisfied"],
    ["TIMEOUT", "TimeLimit"],
    ["NODE_FAIL", null],
    ["OUT_OF_MEMORY", "OutOfMemory"],
  ])("a job that ended %s (%s) without a state gives its step a failed not_run state", (slurmState, reason) => {
    const plan = compilePlan(tree, RUN);
    const facts = new Map<string, JobFact>([
      ["j001", { state: "COMPLETED", reason: null, slurmJobId: "1232" }],
      ["j002", { state: slurmState, reason, slurmJobId: "1233" }],
    ]);
    const merged = mergeStates(plan, states(stateFile("p.a", true)), { jobFacts: facts, now: NOW });
    const b = merged.step_states?.["p.b"];
    expect(b).toMatchObject({ success: false, failure: "STEP_FAILED", timestamp: NOW, meta: { not_run: true, slurm_state: slurmState, slurm_reason: reason, job: "j002", slurm_job_id: "1233" } });
    expect(b?.error).toBe(`job j002 (SLURM 1233) ended ${slurmState}${reason ? ` (${reason})` : ""} before this step wrote its state`);
    // c's job has no facts and no state (never submitted): left out.
    expect(Object.keys(merged.step_states ?? {})).toEqual(["p.a", "p.b"]);
    expect(merged.meta.failed_step).toBe("p.b");
    expect(exitCodeFrom(merged)).toBe(ExitCode.STEP_FAILED);
  });

  it("says 'job j003 (SLURM 1234) ended CANCELLED (DependencyNeverSatisfied) before this step wrote its state'", () => {
    const plan = compilePlan(tree, RUN);
    const facts = new Map<string, JobFact>([["j003", { state: "CANCELLED", reason: "DependencyNeverSatisfied", slurmJobId: "1234" }]]);
    const merged = mergeStates(plan, states(stateFile("p.a", true), stateFile("p.b", false)), { jobFacts: facts, now: NOW });
    expect(merged.step_states?.["p.c"]?.error).toBe("job j003 (SLURM 1234) ended CANCELLED (DependencyNeverSatisfied) before this step wrote its state");
    expect(merged.meta.failed_step).toBe("p.b");
  });

  it("leaves out steps of jobs that are still pending or running, and the root says the run did not finish", () => {
    const plan = compilePlan(tree, RUN);
    const facts = new Map<string, JobFact>([
      ["j002", { state: "RUNNING", reason: null }],
      ["j003", { state: "PENDING", reason: "Dependency" }],
    ]);
    const merged = mergeStates(plan, states(stateFile("p.a", true)), { jobFacts: facts, now: NOW });
    expect(Object.keys(merged.step_states ?? {})).toEqual(["p.a"]);
    expect(merged.success).toBe(false);
    expect(merged.meta.not_finished).toEqual(["p.b", "p.c"]);
  });

  it("uses per-task facts of an array: only the task that died gets not_run states", () => {
    const plan = compilePlan(pipeline("p", [map("m", ["x", "y", "z"], [step("s1"), step("s2")])]), RUN);
    const facts = new Map<string, JobFact>([
      [
        "j001",
        {
          state: "TIMEOUT",
          reason: "TimeLimit",
          slurmJobId: "40",
          tasks: new Map([
            [0, { state: "COMPLETED", reason: null }],
            [1, { state: "TIMEOUT", reason: "TimeLimit", slurmJobId: "42" }],
            [2, { state: "COMPLETED", reason: null }],
          ]),
        },
      ],
    ]);
    const files = states(stateFile("p.m.0.s1", true), stateFile("p.m.0.s2", true), stateFile("p.m.2.s1", true), stateFile("p.m.2.s2", true));
    const merged = mergeStates(plan, files, { jobFacts: facts, now: NOW });
    expect(merged.step_states?.["p.m.1.s1"]?.error).toBe("job j001 task 1 (SLURM 42) ended TIMEOUT (TimeLimit) before this step wrote its state");
    expect(merged.step_states?.["p.m.1.s1"]?.meta.task).toBe(1);
    expect(merged.step_states?.["p.m.1"]).toMatchObject({ success: false, meta: { failed_step: "p.m.1.s1", not_run: true } });
    expect(merged.step_states?.["p.m.0"]?.success).toBe(true);
    expect(merged.meta.failed_step).toBe("p.m.1.s1");
  });

  it("in a fused job, steps after a failed step are left out, but steps after a job that died are not_run", () => {
    const fused = pipeline("p", [pipeline("f", [step("a"), step("b"), step("c")], { fuse: true })]);
    const plan = compilePlan(fused, RUN);
    expect(plan.jobs).toHaveLength(1);
    const failedFacts = new Map<string, JobFact>([["j001", { state: "FAILED", reason: "NonZeroExitCode" }]]);
    const stopped = mergeStates(plan, states(stateFile("p.f.a", false)), { jobFacts: failedFacts, now: NOW });
    expect(Object.keys(stopped.step_states ?? {}).sort()).toEqual(["p.f", "p.f.a"]);

    const oom = new Map<string, JobFact>([["j001", { state: "OUT_OF_MEMORY", reason: "OutOfMemory", slurmJobId: "7" }]]);
    const died = mergeStates(plan, states(stateFile("p.f.a", true)), { jobFacts: oom, now: NOW });
    expect(Object.keys(died.step_states ?? {}).sort()).toEqual(["p.f", "p.f.a", "p.f.b", "p.f.c"]);
    expect(died.step_states?.["p.f.b"]?.meta).toMatchObject({ not_run: true, slurm_state: "OUT_OF_MEMORY" });
    expect(died.meta.failed_step).toBe("p.f.b");
  });

  it("a job that COMPLETED without writing a step's state is a failure, not a silent success", () => {
    const plan = compilePlan(tree, RUN);
    const facts = new Map<string, JobFact>([["j001", { state: "COMPLETED", reason: "None", slurmJobId: "5" }]]);
    const merged = mergeStates(plan, new Map(), { jobFacts: facts, now: NOW });
    expect(merged.step_states?.["p.a"]?.error).toBe("job j001 (SLURM 5) ended COMPLETED without writing this step's state");
  });

  it("reads 'CANCELLED by 1001' as a final state", () => {
    const plan = compilePlan(tree, RUN);
    const facts = new Map<string, JobFact>([["j001", { state: "CANCELLED by 1001", reason: null }]]);
    const merged = mergeStates(plan, new Map(), { jobFacts: facts, now: NOW });
    expect(merged.step_states?.["p.a"]?.error).toBe("job j001 ended CANCELLED by 1001 before this step wrote its state");
  });

  it("is pure: the same inputs give the same result and the inputs are not changed", () => {
    const plan = compilePlan(tree, RUN);
    const before = JSON.stringify(plan);
    const files = states(stateFile("p.a", true));
    const a = mergeStates(plan, files, { now: NOW });
    const b = mergeStates(plan, files, { now: NOW });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify(plan)).toBe(before);
    expect(files.size).toBe(1);
  });
});
