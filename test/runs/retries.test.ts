// The client's view of retries: the records the controllers write, the jobs they add, the watch's end, the attempts.
import { describe, expect, it } from "vitest";
import { compile } from "../../src/compiler/compile.js";
import { CompletedState } from "../../src/core/completed-state.js";
import { parseRetryRecords } from "../../src/plan/retry.js";
import { mapJobStatuses } from "../../src/runs/job-status.js";
import type { JobStatus } from "../../src/runs/job-status.js";
import { annotateAttempts, controllersDue, holdOpenControllers, withRetryJobs } from "../../src/runs/retries.js";
import { pipelineFromSpecObject } from "../../src/spec/load.js";
import { structureRenderer, target } from "../compiler/helpers.js";

const plan = compile({
  root: pipelineFromSpecObject({ name: "t", steps: [{ map: "m", items: ["a", "b", "c"], retries: 2, steps: [{ step: "w", run: "echo" }] }, { step: "after", run: "echo" }] }, "spec.yaml").pipeline,
  context: {},
  runId: "run1",
  target: target(),
  renderer: { ...structureRenderer, retryLib: () => "# retry\n" },
});
const ids = { j000: "100", j001: "101", j002: "102" };
const attempt2 = { job: "j000", attempt: 2, by: "101", retry_job_id: "110", controller_job_id: "111", tasks: [1], reasons: { "1": "exit 3" }, time_s: 0, mem_mb: 0, exclude: [] };
const records = (files: Record<string, unknown>) => parseRetryRecords(new Map(Object.entries(files).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));

/** Job statuses with every job in `final` ended (COMPLETED) and the rest pending. */
function statuses(p: typeof plan, jobs: Record<string, string>, final: string[], state = "COMPLETED"): JobStatus[] {
  return mapJobStatuses(p, jobs, new Map()).map((s) => (final.includes(s.job) ? { ...s, final: true, state } : { ...s, final: false, state: "PENDING" }));
}

describe("retry records", () => {
  it("are validated with zod: a record whose name and fields disagree, or that is not JSON, is a problem, never trusted", () => {
    const r = records({ "j000.2.json": attempt2, "j000.3.json": { ...attempt2 }, "j000.end.json": "{not json", "notes.txt": "x" });
    expect(r.attempts.get("j000")?.map((a) => a.attempt)).toEqual([2]);
    expect(r.problems.map((p) => p.file).sort()).toEqual(["j000.3.json", "j000.end.json"]);
  });
});

describe("the jobs a controller submitted join the run", () => {
  it("adds the retry (remapped onto the retried tasks) and the next controller, with their SLURM ids", () => {
    const { plan: p, jobs } = withRetryJobs(plan, ids, records({ "j000.2.json": attempt2 }));
    const retry = p.jobs.find((j) => j.id === "j000.r2");
    expect(retry?.array?.indices).toEqual([1]);
    expect(p.jobs.find((j) => j.id === "j001.r2")?.dependencies).toEqual([{ job: "j000.r2", type: "afterany" }]);
    expect(jobs).toMatchObject({ "j000.r2": "110", "j001.r2": "111" });
  });

  it("leaves out a record naming tasks the job does not have", () => {
    const { plan: p, problems } = withRetryJobs(plan, ids, records({ "j000.2.json": { ...attempt2, tasks: [7] } }));
    expect(p.jobs.length).toBe(plan.jobs.length);
    expect(problems[0]).toMatch(/logical task 7 is not a task of this array/);
  });
});

describe("the run does not end while a retry is to come", () => {
  it("holds open a controller that ended ok before its next attempt or its end was on record", () => {
    const held = holdOpenControllers(plan, statuses(plan, ids, ["j000", "j001", "j002"]), records({}));
    expect(held.find((s) => s.job === "j001")?.final).toBe(false);
    const ended = holdOpenControllers(plan, statuses(plan, ids, ["j000", "j001", "j002"]), records({ "j000.end.json": { job: "j000", attempts: 1, ok: true, by: "101", failed: {} } }));
    expect(ended.every((s) => s.final)).toBe(true);
  });

  it("holds open the last controller of the chain, not the first", () => {
    const r = records({ "j000.2.json": attempt2 });
    const { plan: p, jobs } = withRetryJobs(plan, ids, r);
    const held = holdOpenControllers(p, statuses(p, jobs, Object.keys(jobs)), r);
    expect(held.filter((s) => !s.final).map((s) => s.job)).toEqual(["j001.r2"]);
  });

  it("a controller that failed (retries used up) is final: the run ends failed", () => {
    const held = holdOpenControllers(plan, statuses(plan, ids, ["j000", "j001", "j002"], "FAILED"), records({}));
    expect(held.every((s) => s.final)).toBe(true);
  });

  it("names a controller whose job has ended as due, so the scheduler is asked soon", () => {
    expect(controllersDue(plan, statuses(plan, ids, ["j000"]))).toEqual(["j001"]);
    expect(controllersDue(plan, statuses(plan, ids, []))).toEqual([]);
  });
});

describe("the merged result shows the attempts", () => {
  it("gives each step of a retried task meta.attempts, the last attempt's state being the state", () => {
    const state = new CompletedState({ success: true, step_states: { "t.m.1.w": CompletedState.ok({ meta: { attempt: 2 } }), "t.m.0.w": CompletedState.ok() } });
    annotateAttempts(state, plan, records({ "j000.2.json": attempt2, "j000.end.json": { job: "j000", attempts: 2, ok: true, by: "111", failed: {} } }));
    expect(state.step_states?.["t.m.1.w"]?.meta.attempts).toEqual([
      { attempt: 1, slurm_job_id: null, retried_because: "exit 3", state_file: "attempts/1/states/t.m.1.w.json", log: "attempts/1/logs/t.m.1.w.out" },
      { attempt: 2, slurm_job_id: "110", time_s: null, mem_mb: null, exclude: [] },
    ]);
    expect(state.step_states?.["t.m.0.w"]?.meta.attempts).toBeUndefined();
  });

  it("points a packed item's earlier attempt at its task's pack file and slot logs (kept under attempts/<n>/)", () => {
    const packed = compile({
      root: pipelineFromSpecObject({ name: "t", steps: [{ map: "m", items: ["a", "b", "c", "d"], items_per_task: 2, retries: 2, steps: [{ step: "w", run: "echo" }] }] }, "spec.yaml").pipeline,
      context: {},
      runId: "run1",
      target: target(),
      renderer: { ...structureRenderer, retryLib: () => "# retry\n" },
    });
    const log = "logs/t.m.items-2-3.s1";
    const state = new CompletedState({
      success: false,
      step_states: {
        "t.m.2": CompletedState.fail("w failed", { meta: { attempt: 2 } }),
        "t.m.2.w": CompletedState.fail("exit 3", { meta: { attempt: 2, log } }),
        "t.m.3.w": CompletedState.ok({ meta: { attempt: 1, log: "logs/t.m.items-2-3.s0" } }),
      },
    });
    annotateAttempts(state, packed, records({ "j000.2.json": attempt2 }));
    expect(state.step_states?.["t.m.2.w"]?.meta.attempts).toEqual([
      { attempt: 1, slurm_job_id: null, retried_because: "exit 3", state_file: "attempts/1/states/t.m.items-2-3.jsonl", log: "attempts/1/logs/t.m.items-2-3.s*.out" },
      { attempt: 2, slurm_job_id: "110", time_s: null, mem_mb: null, exclude: [] },
    ]);
    expect(state.step_states?.["t.m.2"]?.meta.attempts).toEqual([
      { attempt: 1, slurm_job_id: null, retried_because: "exit 3", state_file: "attempts/1/states/t.m.items-2-3.jsonl" },
      { attempt: 2, slurm_job_id: "110", time_s: null, mem_mb: null, exclude: [] },
    ]);
    // Done in attempt 1 and skipped when its task ran again: not retried.
    expect(state.step_states?.["t.m.3.w"]?.meta.attempts).toBeUndefined();
  });
});

describe("a large map's item lines carry the attempts too", () => {
  it("meta.attempts is written into result.items.jsonl as each retried item is merged", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { mergeRun } = await import("../../src/app/collect.js");
    const { itemsFileOf, readItemLines } = await import("../../src/core/item-lines.js");
    const { stateFileSchema } = await import("../../src/plan/state-file.js");
    const step = plan.jobs[0]?.bodies[0]?.steps[0];
    const stateOf = (key: string, attempt: number, success = true) =>
      stateFileSchema.parse({
        success,
        timestamp: "2026-01-01T00:00:01.000Z",
        duration_s: 0.1,
        provides: [],
        outputs: {},
        error: success ? null : "exit 3",
        meta: {},
        signature: key.endsWith(".w") ? (step?.signature ?? "") : "",
        failure: success ? null : "STEP_FAILED",
        key,
        slurm: { job_id: "1009", array_job_id: attempt === 1 ? "100" : "110", array_task_id: "0", task: 0 },
        attempt,
      });
    const states = new Map([0, 1, 2].flatMap((i) => [`t.m.${i}`, `t.m.${i}.w`].map((k) => [k, stateOf(k, i === 1 ? 2 : 1)] as const)));
    states.set("t.after", stateOf("t.after", 1));
    const dir = mkdtempSync(join(tmpdir(), "hpcpipe-attempt-lines-"));
    const before = process.env.HPCPIPE_ITEMS_INLINE_MAX;
    process.env.HPCPIPE_ITEMS_INLINE_MAX = "0";
    try {
      const r = records({ "j000.2.json": attempt2, "j000.end.json": { job: "j000", attempts: 2, ok: true, by: "111", failed: {} } });
      const merged = mergeRun(plan, { states, problems: [], files: states.size, retries: r }, statuses(plan, ids, ["j000", "j001", "j002"]), undefined, dir);
      const file = itemsFileOf(merged);
      expect(file).toBeDefined();
      const lines = [...readItemLines(file as string, "t.m")];
      expect(lines.map((l) => l.index)).toEqual([0, 1, 2]);
      const one = lines[1];
      expect(one?.steps.w?.meta.attempts).toEqual([
        { attempt: 1, slurm_job_id: null, retried_because: "exit 3", state_file: "attempts/1/states/t.m.1.w.json", log: "attempts/1/logs/t.m.1.w.out" },
        { attempt: 2, slurm_job_id: "110", time_s: null, mem_mb: null, exclude: [] },
      ]);
      expect(one?.state?.meta.attempts).toHaveLength(2);
      expect(lines[0]?.steps.w?.meta.attempts).toBeUndefined();
    } finally {
      if (before === undefined) delete process.env.HPCPIPE_ITEMS_INLINE_MAX;
      else process.env.HPCPIPE_ITEMS_INLINE_MAX = before;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
