// Progress a person can read (src/app/progress.ts, progress-view.ts, progress-events.ts), as pure code:
// the bar, durations and rates as text, the ETA from the durations seen so far (unknown until there is
// data), the rows of a real compiled plan fed with fake snapshots and state files, the frame fitting a
// terminal's width, the plain lines, and every JSON event parsed by its zod schema.
import { afterEach, describe, expect, it } from "vitest";
import { ProgressTracker, etaSeconds, outputFiles } from "../../src/app/progress.js";
import type { RowProgress } from "../../src/app/progress.js";
import { endEvent, jobEvent, progressEvent, startEvent, stateEvent, watchEventSchema } from "../../src/app/progress-events.js";
import { clipStart, durationText, plainLine, progressBar, progressFrame, rateText, rowLine } from "../../src/app/progress-view.js";
import type { RunStatus } from "../../src/app/status.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { totalCounts } from "../../src/runs/index.js";
import type { JobStatus, TaskStatus } from "../../src/runs/index.js";
import { phasedJob as job, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
afterEach(() => {
  run?.cleanup();
  run = undefined;
});


function status(jobs: JobStatus[], extra: Partial<RunStatus> = {}): RunStatus {
  return {
    run_id: "20260101-000000-abcdef", pipeline: "batch_map", cluster: "localcluster", phase: "submitted", remote_dir: "/runs/r1", error: null,
    polled_at: "2026-01-01T12:00:05.000Z", final: jobs.every((j) => j.final), counts: totalCounts(jobs), jobs, steps: null, result: null, state_problems: [], ...extra,
  };
}

/** The batch-map example's three jobs: setup (100), the 12-item map (200), aggregate (300). */
function snapshot(setup: Array<TaskStatus["phase"]>, items: Array<TaskStatus["phase"]>, aggregate: Array<TaskStatus["phase"]>): RunStatus {
  return status([
    job("j000", "batch_map.setup", "100", setup, false),
    job("j001", "batch_map.check_all [12 tasks]", "200", items, true),
    job("j002", "batch_map.aggregate", "300", aggregate, false),
  ]);
}

function state(key: string, extra: Partial<StateFile> = {}): StateFile {
  return { success: true, timestamp: "2026-01-01T12:00:01.000Z", duration_s: 2, provides: [], outputs: {}, error: null, meta: {}, signature: "0", failure: null, key, ...extra };
}

const items = (done: number, running: number, failed = 0): Array<TaskStatus["phase"]> => [
  ...Array<TaskStatus["phase"]>(done).fill("done"),
  ...Array<TaskStatus["phase"]>(failed).fill("failed"),
  ...Array<TaskStatus["phase"]>(running).fill("running"),
  ...Array<TaskStatus["phase"]>(12 - done - failed - running).fill("pending"),
];

function row(extra: Partial<RowProgress> = {}): RowProgress {
  return { key: "j001", label: "p.m [10 tasks]", jobs: ["j001"], counts: { done: 4, failed: 1, running: 2, pending: 3 }, total: 10, state: "RUNNING", final: false, ratePerS: 0.5, taskMeanS: 4, etaS: 12, latestImage: null, failedItems: 0, ...extra };
}

describe("the bar, durations and rates as text", () => {
  it("draws done, failed, running and pending in proportion, every count that is there at least one cell wide", () => {
    expect(progressBar({ done: 5, failed: 0, running: 0, pending: 5 }, 10)).toBe("[#####.....]");
    expect(progressBar({ done: 2, failed: 1, running: 3, pending: 4 }, 10)).toBe("[##!>>>....]");
    expect(progressBar({ done: 998, failed: 1, running: 1, pending: 0 }, 10)).toMatch(/^\[#{8}!>\]$/);
    expect(progressBar({ done: 0, failed: 0, running: 0, pending: 0 }, 4)).toBe("[....]");
    expect(progressBar({ done: 7, failed: 3, running: 0, pending: 0 }, 20).length).toBe(22);
  });

  it("writes durations and throughput the way people read them, and ? or - before there is data", () => {
    expect(durationText(null)).toBe("?");
    expect(durationText(42.4)).toBe("42s");
    expect(durationText(185)).toBe("3m05s");
    expect(durationText(7620)).toBe("2h07m");
    expect(rateText(null)).toBe("-/min");
    expect(rateText(2.5)).toBe("2.5/s");
    expect(rateText(0.05)).toBe("3.0/min");
    expect(rateText(1 / 7200)).toBe("0.5/h");
  });

  it("keeps the end of a long path (the file name)", () => {
    expect(clipStart("/a/b/c/frame_0042.png", 12)).toBe("…me_0042.png");
    expect(clipStart("short.png", 12)).toBe("short.png");
  });
});

describe("the ETA", () => {
  it("is unknown until a duration or an end has been seen", () => {
    expect(etaSeconds({ remaining: 10, running: 2, maxRunning: 2, taskMeanS: null, ratePerS: null })).toBeNull();
  });

  it("is the tasks left times the mean task duration over how many run at once (at least the most seen running)", () => {
    expect(etaSeconds({ remaining: 10, running: 2, maxRunning: 2, taskMeanS: 4, ratePerS: null })).toBe(20);
    // Queued for now: as many as ran at once before.
    expect(etaSeconds({ remaining: 10, running: 0, maxRunning: 5, taskMeanS: 4, ratePerS: null })).toBe(8);
    expect(etaSeconds({ remaining: 3, running: 0, maxRunning: 0, taskMeanS: 4, ratePerS: null })).toBe(12);
  });

  it("once the throughput has been measured over two task durations, comes from it (it has seen how many really run at once)", () => {
    expect(etaSeconds({ remaining: 12, running: 1, maxRunning: 1, taskMeanS: 4, ratePerS: 1, rateWindowS: 7 })).toBe(48);
    expect(etaSeconds({ remaining: 12, running: 1, maxRunning: 1, taskMeanS: 4, ratePerS: 1, rateWindowS: 8 })).toBe(12);
  });

  it("falls back on the throughput, and is 0 when nothing is left", () => {
    expect(etaSeconds({ remaining: 10, running: 1, maxRunning: 1, taskMeanS: null, ratePerS: 0.5 })).toBe(20);
    expect(etaSeconds({ remaining: 0, running: 0, maxRunning: 3, taskMeanS: null, ratePerS: null })).toBe(0);
  });
});

describe("the rows of a run", () => {
  it("one row per step and map, counts from the snapshots, ETA from the map items' durations, the newest image", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    const t = new ProgressTracker(run.plan, run.record.jobs, "/runs/r1");
    t.observe(snapshot(["pending"], items(0, 0), ["pending"]), 0);
    let rows = t.rows(0);
    expect(rows.map((r) => [r.key, r.label, r.total])).toEqual([
      ["j000", "batch_map.setup", 1],
      ["map:batch_map.check_all", "batch_map.check_all [12 tasks]", 12],
      ["j002", "batch_map.aggregate", 1],
    ]);
    expect(rows[1]).toMatchObject({ etaS: null, ratePerS: null, taskMeanS: null, latestImage: null, state: "PENDING" });

    t.observe(snapshot(["done"], items(0, 4), ["pending"]), 1_000);
    // Items' unit states measure a task; their steps' states add nothing to the sample count.
    const slurm = { job_id: "201", array_job_id: "200", array_task_id: "0", task: 0 };
    expect(t.state("batch_map.check_all.0.check", state("batch_map.check_all.0.check", { duration_s: 3, slurm, outputs: { files: ["out/checked/a.txt"] } }))).toMatchObject({ row: "map:batch_map.check_all", job: "j001", status: "ok", task: 0 });
    t.state("batch_map.check_all.0", state("batch_map.check_all.0", { duration_s: 4, slurm }));
    t.state("batch_map.check_all.1", state("batch_map.check_all.1", { duration_s: 6, slurm: { ...slurm, task: 1 }, timestamp: "2026-01-01T12:00:03.000Z", outputs: { files: ["out/a.json", "out/frames/f1.png"] } }));
    t.state("batch_map.check_all.2", state("batch_map.check_all.2", { duration_s: 5, slurm: { ...slurm, task: 2 }, timestamp: "2026-01-01T12:00:02.000Z", outputs: { files: ["/abs/f2.exr"] } }));
    t.observe(snapshot(["done"], items(3, 4), ["pending"]), 3_000);
    rows = t.rows(3_000);
    const map = rows[1] as RowProgress;
    expect(map.counts).toEqual({ done: 3, failed: 0, running: 4, pending: 5 });
    // The units' (4 + 6 + 5) s over 3 units = 5 s a task (the step inside a unit is not counted again).
    expect(map.taskMeanS).toBe(5);
    // 3 ended in the 2 s since the row was first seen running.
    expect(map.ratePerS).toBeCloseTo(1.5);
    // 9 left, 4 at once (the throughput was measured over 2 s only, less than two durations).
    expect(map.etaS).toBeCloseTo((9 * 5) / 4);
    // The newest state's image, under the run's work/ directory; an older state's image does not replace it.
    expect(map.latestImage).toBe("/runs/r1/work/out/frames/f1.png");

    // A failed item allowed to fail: its task is done, the item counts as failed.
    t.state("batch_map.check_all.4", state("batch_map.check_all.4", { success: false, failure: "STEP_FAILED", slurm: { ...slurm, task: 4 } }));
    expect(t.rows(3_000)[1]).toMatchObject({ failedItems: 1 });
    t.observe(snapshot(["done"], items(11, 0, 1), ["done"]), 9_000);
    expect(t.rows(9_000)[1]).toMatchObject({ final: true, etaS: 0, state: "FAILED" });
  });

  it("counts a retry controller's retries in the row of the job they retry: the retried tasks leave the failed count", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    const t = new ProgressTracker(run.plan, run.record.jobs, "/runs/r1");
    const first = snapshot(["done"], items(10, 0, 2), ["pending"]);
    t.observe(first, 0);
    expect(t.rows(0)[1]).toMatchObject({ counts: { done: 10, failed: 2, running: 0, pending: 0 }, state: "FAILED" });
    // Attempt 2 reruns the two failed tasks: one succeeds, one is still running.
    t.observe(status([...first.jobs, job("j001.r2", "batch_map.check_all", "400", ["done", "running"], true)]), 1_000);
    expect(t.rows(1_000)[1]).toMatchObject({ counts: { done: 11, failed: 0, running: 1, pending: 0 }, final: false, state: "RUNNING" });
    // It fails again; attempt 3 reruns it and it succeeds: the map ended with every task done.
    const second = job("j001.r2", "batch_map.check_all", "400", ["done", "failed"], true);
    t.observe(status([...first.jobs, second, job("j001.r3", "batch_map.check_all", "500", ["done"], true)]), 2_000);
    expect(t.rows(2_000)[1]).toMatchObject({ counts: { done: 12, failed: 0, running: 0, pending: 0 }, final: true, state: "COMPLETED" });
    expect(t.rows(2_000)[1]?.total).toBe(12);
  });

  it("ignores states of another submission (an earlier attempt's SLURM ids) and restored ones for the durations", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    const t = new ProgressTracker(run.plan, run.record.jobs, "/runs/r1");
    t.observe(snapshot(["done"], items(0, 2), ["pending"]), 0);
    expect(t.state("batch_map.check_all.0", state("batch_map.check_all.0", { slurm: { job_id: "91", array_job_id: "90", task: 0 } }))).toBeNull();
    expect(t.state("batch_map.check_all.0", state("batch_map.check_all.0"))).toBeNull();
    t.state("batch_map.check_all.1", state("batch_map.check_all.1", { slurm: { array_job_id: "200", task: 1 }, cached: { run: "r0", step: "batch_map.check_all.1", key: "a".repeat(64) } }));
    expect(t.rows(0)[1]?.taskMeanS).toBeNull();
  });

  it("takes the latest images from every state at the end (a polling watch may end before its feed brought the last)", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    const t = new ProgressTracker(run.plan, run.record.jobs, "/runs/r1");
    t.observe(snapshot(["done"], items(12, 0), ["done"]), 0);
    t.imagesFrom(new Map([["batch_map.check_all.11", state("batch_map.check_all.11", { slurm: { array_job_id: "200", task: 11 }, outputs: { files: ["out/last.webp"] } })]]));
    expect(t.rows(0)[1]?.latestImage).toBe("/runs/r1/work/out/last.webp");
    expect(outputFiles({ outputs: { files: ["a", 3, null, "b"] } })).toEqual(["a", "b"]);
    expect(outputFiles({ outputs: { files: "a" } })).toEqual([]);
  });
});

describe("the frame and the plain lines", () => {
  it("a row shows its label, bar, counts, throughput, ETA and state; narrower terminals drop the state, then the rate and counts", () => {
    const wide = rowLine(row(), 16, 140);
    expect(wide).toMatch(/^p\.m \[10 tasks\] +\[#+!+>+\.+\] {2}5\/10 {2}4 done, 1 failed, 2 running, 3 pending {2}30\/min {2}ETA 12s {2}RUNNING$/);
    const mid = rowLine(row(), 16, 100);
    expect(mid).not.toContain("RUNNING");
    expect(mid).toContain("ETA 12s");
    const narrow = rowLine(row(), 16, 60);
    expect(narrow).toMatch(/5\/10 {2}1 failed {2}ETA 12s$/);
    expect(rowLine(row({ etaS: null }), 16, 140)).toContain("ETA ?");
    expect(rowLine(row({ final: true, etaS: 0 }), 16, 140)).toContain("30/min  ended");
    // Ended before the watch measured anything (a finished run): no rate shown.
    expect(rowLine(row({ final: true, etaS: 0, ratePerS: null }), 16, 140)).toMatch(/3 pending {2}ended {2}RUNNING$/);
    expect(rowLine(row({ ratePerS: null }), 16, 140)).toContain("3 pending  -/min  ETA 12s");
    // Items that failed beyond the failed tasks (allowed failures): said after the counts, also when narrow.
    expect(rowLine(row({ failedItems: 3 }), 16, 160)).toContain("3 pending, 3 items failed");
    expect(rowLine(row({ failedItems: 3 }), 16, 80)).toMatch(/ {2}5\/10 {2}1 failed, 3 items failed {2}ETA 12s$/);
    expect(rowLine(row({ failedItems: 1 }), 16, 160)).not.toContain("items failed");
  });

  it("the frame fits the terminal's width, shows each row's latest image, and no Ctrl-C hint once final", () => {
    const s = status([job("j001", "p.m [3 tasks]", "200", ["done", "running", "pending"], true)]);
    const rows = [row({ label: "p.m [3 tasks]", latestImage: `/very/long/${"dir/".repeat(30)}frame_0007.png` })];
    for (const width of [40, 80, 200]) {
      const lines = progressFrame(s, rows, { width, elapsedS: 75 });
      for (const line of lines) expect(line.length).toBeLessThanOrEqual(width);
      expect(lines.some((l) => l.startsWith("  latest image: ") && l.endsWith("frame_0007.png"))).toBe(true);
    }
    const lines = progressFrame(s, rows, { width: 120, elapsedS: 75 });
    expect(lines[0]).toBe("run 20260101-000000-abcdef (batch_map on localcluster) [running]: 1/3 tasks ended, 0 failed");
    expect(lines.at(-1)).toMatch(/^updated \d\d:\d\d:\d\d {2}elapsed 1m15s {2}\(Ctrl-C stops watching\)$/);
    const final = progressFrame({ ...s, final: true, result: { success: true, failure: null, error: null, exit_code: 0 } }, rows, { width: 120 });
    expect(final[0]).toContain("[finished: ok]");
    expect(final.at(-1)).not.toContain("Ctrl-C");
  });

  it("a frame taller than the terminal leaves out images of ended rows, then all images, then ended rows, then says how many more", () => {
    const s = status([job("j001", "p.m [3 tasks]", "200", ["done", "running", "pending"], true)]);
    const rows = Array.from({ length: 10 }, (_, i) => row({ key: `r${i}`, label: `p.s${i}`, final: i < 4, latestImage: `/w/f${i}.png` }));
    expect(progressFrame(s, rows, { width: 120, height: 40 })).toHaveLength(22);
    const noEndedImages = progressFrame(s, rows, { width: 120, height: 19 });
    expect(noEndedImages).toHaveLength(18);
    expect(noEndedImages.filter((l) => l.includes("latest image"))).toHaveLength(6);
    expect(progressFrame(s, rows, { width: 120, height: 13 }).some((l) => l.includes("latest image"))).toBe(false);
    const openOnly = progressFrame(s, rows, { width: 120, height: 10 });
    expect(openOnly[1]).toBe("(4 ended rows not shown)");
    expect(openOnly.filter((l) => l.startsWith("p.s"))).toHaveLength(6);
    const cut = progressFrame(s, rows, { width: 120, height: 7 });
    expect(cut).toHaveLength(6);
    expect(cut.slice(1, 5)).toEqual(["(4 ended rows not shown)", expect.stringMatching(/^p\.s4 /), expect.stringMatching(/^p\.s5 /), "(4 more rows not shown)"]);
  });

  it("a plain line has the time, the row, its counts, rate, ETA, state and latest image", () => {
    const at = new Date(2026, 0, 1, 9, 5, 7).getTime();
    expect(plainLine(row({ latestImage: "/w/out/f.png" }), at)).toBe("09:05:07 p.m [10 tasks]: 5/10 ended (4 done, 1 failed, 2 running, 3 pending), 30/min, ETA 12s, RUNNING, latest image /w/out/f.png");
    expect(plainLine(row({ total: 1, counts: { done: 1, failed: 0, running: 0, pending: 0 }, final: true, state: "COMPLETED" }), at)).toBe("09:05:07 p.m [10 tasks]: 1/1 ended (1 done, 0 failed, 0 running, 0 pending), ended, COMPLETED");
  });
});

describe("the JSON events", () => {
  it("every event parses with the declared schema", () => {
    const s = status([job("j001", "p.m [3 tasks]", "200", ["done", "failed", "running"], true)], {
      steps: { "p.m.1": { success: false, failure: "STEP_FAILED", error: "x", not_run: false, slurm_state: null, slurm_reason: null }, "p.m.0": { success: true, failure: null, error: null, not_run: false, slurm_state: null, slurm_reason: null } },
      result: { success: false, failure: "STEP_FAILED", error: "x", exit_code: 4 },
    });
    const at = "2026-01-01T12:00:00.000Z";
    const events = [
      startEvent(s, [row()], at),
      stateEvent({ row: "j001", step: "p.m.0", job: "j001", task: 0, status: "ok", duration_s: 1.5, outputs: ["out/f.png"], attempt: 1 }, at),
      jobEvent(s.jobs[0] as JobStatus, at),
      progressEvent([row(), row({ etaS: null, ratePerS: null, taskMeanS: null, latestImage: "/w/f.png" })], at),
      { type: "message", at, text: "hpcpipe: this poll failed" },
      endEvent(s, false, at),
    ];
    for (const e of events) expect(watchEventSchema.safeParse(JSON.parse(JSON.stringify(e))).success, JSON.stringify(e)).toBe(true);
    expect(events[5]).toMatchObject({ type: "end", failed_steps: ["p.m.1"], failed_steps_total: 1, result: { exit_code: 4 } });
    expect(watchEventSchema.safeParse({ type: "state", at }).success).toBe(false);
  });
});
