import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { aggregateState, carryFinalStates, jobFactsOf, jobLabel, mapJobStatuses, NOT_SUBMITTED } from "../../src/runs/index.js";
import type { TaskStatus } from "../../src/runs/index.js";
import { parseSacct, parseSqueue } from "../../src/slurm/index.js";
import type { JobStatusMap, TaskRecord } from "../../src/slurm/index.js";
import { smallArrayConfig, squeueJob, squeueTask, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
afterEach(() => run?.cleanup());

/** What SlurmScheduler.status returns: records grouped by the asked-for job id. */
function statusOf(lines: string[], parse: (s: string) => TaskRecord[] = parseSqueue): JobStatusMap {
  const map: JobStatusMap = new Map();
  for (const r of parse(lines.map((l) => `${l}\n`).join(""))) {
    const id = r.arrayJobId ?? r.jobId;
    map.set(id, [...(map.get(id) ?? []), r]);
  }
  return map;
}

describe("mapping scheduler records to plan jobs and tasks", () => {
  it("gives each plan job its state and each array task its own, with per-phase counts", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const status = statusOf([
      squeueJob("100", "COMPLETED"),
      squeueTask("200", 0, "COMPLETED"),
      squeueTask("200", 1, "RUNNING"),
      squeueTask("200", 2, "RUNNING"),
      `200_[3]|200|200|3|PENDING|Resources|(null)|hpcpipe:test`,
      squeueJob("300", "PENDING", "Dependency"),
    ]);
    const jobs = mapJobStatuses(run.plan, run.record.jobs, status);
    expect(jobs.map((j) => [j.job, j.slurmJobId, j.state, j.reason, j.final])).toEqual([
      ["j000", "100", "COMPLETED", null, true],
      ["j001", "200", "RUNNING", null, false],
      ["j002", "300", "PENDING", "Dependency", false],
    ]);
    const renders = jobs[1];
    expect(renders?.label).toBe("thumbnail_shape.renders [4 tasks]");
    expect(renders?.counts).toEqual({ pending: 1, running: 2, done: 1, failed: 0 });
    expect(renders?.tasks.list().map((t) => [t.task, t.state, t.slurmJobId])).toEqual([
      [0, "COMPLETED", "200_0"],
      [1, "RUNNING", "200_1"],
      [2, "RUNNING", "200_2"],
      [3, "PENDING", "200_3"],
    ]);
  });

  it("maps the tasks of a chunked array to logical task indices through each chunk's offset", async () => {
    const cfgDir = mkdtempSync(path.join(tmpdir(), "hpcpipe-cfg-"));
    run = await tempRun("examples/specs/batch-map.yaml", { cluster: smallArrayConfig(cfgDir, 5) });
    rmSync(cfgDir, { recursive: true, force: true });
    const chunks = run.plan.jobs.filter((j) => j.shape === "map");
    expect(chunks.map((j) => [j.id, j.array?.offset, j.array?.count])).toEqual([
      ["j001", 0, 5],
      ["j002", 5, 5],
      ["j003", 10, 2],
    ]);
    const status = statusOf([
      squeueJob("100", "COMPLETED"),
      ...[0, 1, 2, 3, 4].map((t) => squeueTask("200", t, "COMPLETED")),
      ...[0, 1, 2, 3, 4].map((t) => squeueTask("300", t, t === 2 ? "FAILED" : "COMPLETED", t === 2 ? "NonZeroExitCode" : "None")),
      squeueTask("400", 0, "RUNNING"),
      squeueTask("400", 1, "PENDING", "JobArrayTaskLimit"),
      squeueJob("500", "PENDING", "Dependency"),
    ]);
    const jobs = mapJobStatuses(run.plan, run.record.jobs, status);
    const tasks = jobs.filter((j) => j.array !== null).flatMap((j) => j.tasks.list().map((t) => [t.task, t.taskId, t.state]));
    expect(tasks.map((t) => t[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(tasks[7]).toEqual([7, 2, "FAILED"]);
    expect(tasks[11]).toEqual([11, 1, "PENDING"]);
    expect(jobs[2]?.label).toBe("batch_map.check_all [chunk 2/3: tasks 5-9]");
    expect(jobs[2]?.state).toBe("FAILED");
    const facts = jobFactsOf(jobs);
    expect(facts.get("j002")?.tasks?.get(7)).toEqual({ state: "FAILED", reason: "NonZeroExitCode", slurmJobId: "300_2" });
    expect(facts.get("j003")?.tasks?.get(11)?.reason).toBe("JobArrayTaskLimit");
  });

  it("shows every SLURM state by name: DependencyNeverSatisfied, CANCELLED by uid, TIMEOUT, NODE_FAIL", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const status = statusOf(
      ["100|100|NODE_FAIL|0:0|None", "200_0|201|TIMEOUT|0:9|TimeLimit", "200_1|202|CANCELLED by 1001|0:15|None", "200_2|203|OUT_OF_MEMORY|0:125|None", "200_3|200|COMPLETED|0:0|None", "300|300|CANCELLED|0:0|DependencyNeverSatisfied"],
      parseSacct,
    );
    const jobs = mapJobStatuses(run.plan, run.record.jobs, status);
    expect(jobs.map((j) => `${j.state}/${j.reason ?? ""}`)).toEqual(["NODE_FAIL/", "OUT_OF_MEMORY/", "CANCELLED/DependencyNeverSatisfied"]);
    expect(jobs[1]?.tasks.list().map((t) => t.state)).toEqual(["TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "COMPLETED"]);
    expect(jobs[1]?.counts).toEqual({ pending: 0, running: 0, done: 1, failed: 3 });
    expect(jobs.every((j) => j.final)).toBe(true);
  });

  it("a job no source knows is UNKNOWN and not final within MinJobAge of its submission, then LOST (final) with that reason; a job never submitted is NOT_SUBMITTED (final)", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const submitted = "2026-12-07T10:00:00.000Z";
    const at = (s: number): number => Date.parse(submitted) + s * 1000;
    const early = mapJobStatuses(run.plan, { j000: "100" }, new Map(), { submitted, now: at(299), minJobAgeS: 300 });
    expect(early.map((j) => [j.state, j.final])).toEqual([
      ["UNKNOWN", false],
      [NOT_SUBMITTED, true],
      [NOT_SUBMITTED, true],
    ]);
    const late = mapJobStatuses(run.plan, { j000: "100" }, new Map(), { submitted, now: at(300), minJobAgeS: 300 });
    expect(late.map((j) => [j.state, j.final])).toEqual([
      ["LOST", true],
      [NOT_SUBMITTED, true],
      [NOT_SUBMITTED, true],
    ]);
    expect(late[0]?.reason).toBe("no scheduler source knows the job 300 s (MinJobAge) after its submission");
    // Without the rule (no submission time known), it is never taken as final.
    expect(mapJobStatuses(run.plan, { j000: "100" }, new Map())[0]?.final).toBe(false);
  });

  it("a state spelling hpcpipe does not know keeps its text and is not final", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const jobs = mapJobStatuses(run.plan, { j000: "100" }, statusOf([squeueJob("100", "WEIRD_NEW_STATE")]));
    expect([jobs[0]?.state, jobs[0]?.final, jobs[0]?.tasks.at(0)?.phase]).toEqual(["WEIRD_NEW_STATE", false, "pending"]);
  });

  it("keeps a task's final state when a later poll no longer knows the job", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const before = mapJobStatuses(run.plan, run.record.jobs, statusOf([squeueJob("100", "COMPLETED"), ...[0, 1, 2, 3].map((t) => squeueTask("200", t, "RUNNING")), squeueJob("300", "PENDING", "Dependency")]));
    const after = carryFinalStates(before, mapJobStatuses(run.plan, run.record.jobs, statusOf([...[0, 1, 2, 3].map((t) => squeueTask("200", t, "COMPLETED")), squeueJob("300", "RUNNING")])));
    expect(after.map((j) => j.state)).toEqual(["COMPLETED", "COMPLETED", "RUNNING"]);
    expect(after[0]?.final).toBe(true);
  });

  it("summarises an array whose tasks disagree by the most telling state", () => {
    const t = (state: string, phase: TaskStatus["phase"], final: boolean, reason: string | null = null): TaskStatus => ({
      task: 0, taskId: 0, slurmJobId: "1", state, reason, exitCode: null, signal: null, phase, final,
    });
    expect(aggregateState([t("COMPLETED", "done", true), t("RUNNING", "running", false)]).state).toBe("RUNNING");
    expect(aggregateState([t("COMPLETED", "done", true), t("PENDING", "pending", false, "JobArrayTaskLimit")])).toEqual({ state: "PENDING", reason: "JobArrayTaskLimit" });
    expect(aggregateState([t("COMPLETED", "done", true), t("CANCELLED", "failed", true), t("TIMEOUT", "failed", true, "TimeLimit")])).toEqual({ state: "TIMEOUT", reason: "TimeLimit" });
  });

  it("gives neighbouring tasks that differ in one field only (exit code, signal, reason, state text) their own state; the first record of a task wins, ids past the array are ignored", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const status = statusOf(
      [
        "200_0|2000|FAILED|3:0|NonZeroExitCode",
        "200_1|2001|FAILED|4:0|NonZeroExitCode",
        "200_2|2002|FAILED|4:9|NonZeroExitCode",
        "200_3|2003|CANCELLED by 1001|0:15|None",
        "200_0|2010|COMPLETED|0:0|None",
        "200_9|2009|COMPLETED|0:0|None",
      ],
      parseSacct,
    );
    const renders = mapJobStatuses(run.plan, run.record.jobs, status)[1];
    expect(renders?.tasks.list().map((t) => [t.task, t.state, t.exitCode, t.signal, t.reason])).toEqual([
      [0, "FAILED", 3, 0, "NonZeroExitCode"],
      [1, "FAILED", 4, 0, "NonZeroExitCode"],
      [2, "FAILED", 4, 9, "NonZeroExitCode"],
      [3, "CANCELLED", 0, 15, null],
    ]);
    const next = statusOf(["200_0|2000|FAILED|3:0|NonZeroExitCode", "200_1|2001|FAILED|3:0|TimeLimit", "200_2|2002|CANCELLED by 1001|0:15|None", "200_3|2003|CANCELLED by 1001|0:9|None"], parseSacct);
    expect(mapJobStatuses(run.plan, run.record.jobs, next)[1]?.tasks.list().map((t) => [t.state, t.reason, t.signal])).toEqual([
      ["FAILED", "NonZeroExitCode", 0],
      ["FAILED", "TimeLimit", 0],
      ["CANCELLED", null, 15],
      ["CANCELLED", null, 9],
    ]);
  });

  it("labels jobs by what they run", async () => {
    run = await tempRun("examples/specs/chain.yaml");
    expect(run.plan.jobs.map(jobLabel)[0]).toMatch(/^chain\.\w+ \+ \d+ fused$/);
  });
});
