import { describe, expect, it } from "vitest";
import type { RunStatus } from "../../src/app/status.js";
import { formatStatus, redrawFrame, renderWatchView, stateText } from "../../src/app/watch-view.js";
import type { JobStatus, TaskStatus } from "../../src/runs/index.js";
import { TaskTable, totalCounts } from "../../src/runs/index.js";

function task(task: number, state: string, phase: TaskStatus["phase"], reason: string | null = null): TaskStatus {
  return { task, taskId: task, slurmJobId: `7_${task}`, state, reason, exitCode: null, signal: null, phase, final: phase === "done" || phase === "failed" };
}

function job(id: string, label: string, state: string, reason: string | null, list: TaskStatus[], array = false): JobStatus {
  const counts = { pending: 0, running: 0, done: 0, failed: 0 };
  for (const t of list) counts[t.phase] += 1;
  const spec = array ? { offset: 0, count: list.length, total: list.length, chunk: 0, chunks: 1, throttle: null, indices: null } : null;
  const tasks = TaskTable.build(spec, id.replace("j", "1"), list.length, (i) => list[i] as TaskStatus);
  return {
    job: id,
    label,
    slurmJobId: id.replace("j", "1"),
    steps: [],
    array: spec === null ? null : { offset: 0, count: list.length, total: list.length, chunk: 0, chunks: 1 },
    state,
    reason,
    final: list.every((t) => t.final),
    counts,
    states: tasks.tally(),
    tasks,
  };
}

function snapshot(jobs: JobStatus[], at = "2026-01-01T12:00:05.000Z"): RunStatus {
  return {
    run_id: "r1", pipeline: "thumbs", cluster: "hpc", phase: "submitted", remote_dir: "$HOME/r1", error: null, polled_at: at,
    final: jobs.every((j) => j.final), counts: totalCounts(jobs), jobs, steps: null, result: null, state_problems: [],
  };
}

const running = snapshot([
  job("j000", "thumbs.prep", "COMPLETED", null, [task(0, "COMPLETED", "done")]),
  job("j001", "thumbs.renders [4 tasks]", "RUNNING", null, [task(0, "COMPLETED", "done"), task(1, "RUNNING", "running"), task(2, "RUNNING", "running"), task(3, "PENDING", "pending", "JobArrayTaskLimit")], true),
  job("j002", "thumbs.metadata", "PENDING", "Dependency", [task(0, "PENDING", "pending", "Dependency")]),
]);

describe("the watch view", () => {
  it("shows one row per job with its pending/running/done/failed counts and the SLURM state with its reason", () => {
    const lines = renderWatchView(running, { width: 120 });
    expect(lines[0]).toBe("run r1 (thumbs on hpc): 3 job(s), 6 task(s): pending 2, running 2, done 2, failed 0 [running]");
    expect(lines[1]).toMatch(/^job +slurm +step +pend +run +done +fail +state$/);
    expect(lines[3]).toMatch(/^j001 +1001 +thumbs\.renders \[4 tasks\] +1 +2 +1 +0 +RUNNING$/);
    expect(lines[4]).toMatch(/thumbs\.metadata +1 +0 +0 +0 +PENDING \(Dependency\)$/);
    expect(lines[5]).toBe("updated 12:00:05  (Ctrl-C stops watching)");
  });

  it("shows DependencyNeverSatisfied and other final states by name", () => {
    expect(stateText("CANCELLED", "DependencyNeverSatisfied")).toBe("CANCELLED (DependencyNeverSatisfied)");
    expect(stateText("COMPLETED", "None")).toBe("COMPLETED");
    const view = renderWatchView(snapshot([job("j000", "p.a", "CANCELLED", "DependencyNeverSatisfied", [task(0, "CANCELLED", "failed", "DependencyNeverSatisfied")])]));
    expect(view[2]).toContain("CANCELLED (DependencyNeverSatisfied)");
    expect(view[0]).toContain("[finished]");
  });

  it("clips long step names to the width", () => {
    const long = snapshot([job("j000", `p.${"x".repeat(300)}`, "PENDING", `ReqNodeNotAvail, UnavailableNodes:${"n".repeat(200)}`, [task(0, "PENDING", "pending")])]);
    for (const line of renderWatchView(long, { width: 80 })) expect(line.length).toBeLessThanOrEqual(80);
  });

  it("redraws in place: cursor up over the previous frame, clear, the new lines", () => {
    expect(redrawFrame(["a", "b"], 0)).toBe("\r\x1b[2Ka\n\r\x1b[2Kb\n");
    // Six lines up; the two new lines rewritten; the four left of the old frame cleared.
    expect(redrawFrame(["a", "b"], 6)).toBe("\x1b[6A\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J");
    expect(redrawFrame(["a", "b"], 2)).toBe("\x1b[2A\r\x1b[2Ka\n\r\x1b[2Kb\n");
    // A line for people where the old frame began, the frame below it.
    expect(redrawFrame(["a"], 1, ["note"])).toBe("\x1b[1A\r\x1b[2Knote\n\r\x1b[2Ka\n");
  });

  it("formats a final status with every step's result", () => {
    const done = {
      ...snapshot([job("j000", "p.a", "FAILED", "NonZeroExitCode", [task(0, "FAILED", "failed")])]),
      steps: {
        "p.a": { success: false, failure: "STEP_FAILED", error: "command exited with status 3", not_run: false, slurm_state: null, slurm_reason: null },
        "p.b": { success: false, failure: "STEP_FAILED", error: "x", not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied" },
      },
      result: { success: false, failure: "STEP_FAILED", error: "p.a: command exited with status 3", exit_code: 4 },
    };
    const text = formatStatus(done);
    expect(text).toContain("[finished: failed, exit 4]");
    expect(text).toMatch(/p\.a +STEP_FAILED: command exited with status 3/);
    expect(text).toMatch(/p\.b +not run: CANCELLED \(DependencyNeverSatisfied\)/);
  });

  it("counts a large map's items from its result's summary (the items are in result.items.jsonl, not listed)", () => {
    const item_lines = { file: "result.items.jsonl", items: 5000, ok: 4990, failed: 10, not_run: 0, failed_items: [3, 7], slowest: [], cached_steps: 0, leaf_steps: { failed: 10, not_run: 0, ok_by_attempt: {} } };
    const done = {
      ...snapshot([job("j000", "p.m", "COMPLETED", null, [task(0, "COMPLETED", "done")])]),
      steps: { "p.m": { success: true, failure: null, error: null, not_run: false, slurm_state: null, slurm_reason: null, item_lines } },
      result: { success: true, failure: null, error: null, exit_code: 0 },
    };
    expect(formatStatus(done)).toMatch(/p\.m +ok; 5,000 items: 4,990 ok, 10 failed \(items 3, 7 and 8 more\)/);
  });
});
