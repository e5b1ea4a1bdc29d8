/**
 * A status poll of one 200,000-task array (issue 16): the parsers take
 * SLURM's answers (a pending range, one row per task) without overflowing
 * the stack, the mapping onto the plan is linear, and the status keeps ONE
 * record per array (a handful of distinct states and a number per task),
 * with exact counts, every failed task findable, and a bounded JSON view.
 */
import { afterEach, describe, expect, it } from "vitest";
import { expectedTasks } from "../../src/app/collect.js";
import { statusKey } from "../../src/app/status.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { carryFinalStates, JSON_TASKS_MAX, jobFactsOf, mapJobStatuses } from "../../src/runs/index.js";
import { parseSacct, parseScontrol, parseSqueue, SlurmScheduler } from "../../src/slurm/index.js";
import type { CommandExecutor, JobStatusMap, TaskRecord } from "../../src/slurm/index.js";
import { tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

const N = 200_000;
const ARRAY = "200";
/** Every 200th task fails (1,000 tasks). */
const failing = (t: number): boolean => t % 200 === 7;

let run: TempRun | undefined;
afterEach(() => run?.cleanup());

/** The thumbnail plan with its 4-task render array grown to N tasks (job j001, SLURM id 200). */
async function bigPlan(): Promise<{ plan: CompiledPlan; jobs: Record<string, string> }> {
  run = await tempRun("examples/specs/thumbnail-shape.yaml");
  const plan: CompiledPlan = {
    ...run.plan,
    jobs: run.plan.jobs.map((j) => (j.array === null ? j : { ...j, array: { ...j.array, count: N, total: N, throttle: 50 } })),
  };
  return { plan, jobs: run.record.jobs };
}

/** sacct's rows for every task of the finished array: COMPLETED, or FAILED with exit 3. */
function sacctRows(): string {
  const rows: string[] = ["100|100|COMPLETED|0:0|None", "300|300|COMPLETED|0:0|None"];
  for (let t = 0; t < N; t++) rows.push(failing(t) ? `${ARRAY}_${t}|${1000 + t}|FAILED|3:0|NonZeroExitCode` : `${ARRAY}_${t}|${1000 + t}|COMPLETED|0:0|None`);
  return `${rows.join("\n")}\n`;
}

/** squeue while the array runs: 10 tasks RUNNING, the rest one pending range. */
function squeueRunning(): string {
  const lines = [`100|100|100|N/A|COMPLETED|None|(null)|hpcpipe:t`];
  for (let t = 0; t < 10; t++) lines.push(`${ARRAY}_${t}|${1000 + t}|${ARRAY}|${t}|RUNNING|None|(null)|hpcpipe:t`);
  lines.push(`${ARRAY}_[10-${N - 1}%50]|${ARRAY}|${ARRAY}|10-${N - 1}%50|PENDING|JobArrayTaskLimit|(null)|hpcpipe:t`);
  lines.push(`300|300|300|N/A|PENDING|Dependency|(null)|hpcpipe:t`);
  return `${lines.join("\n")}\n`;
}

function byJob(records: readonly TaskRecord[]): JobStatusMap {
  const map: JobStatusMap = new Map();
  for (const r of records) {
    const id = r.arrayJobId ?? r.jobId;
    const list = map.get(id);
    if (list) list.push(r);
    else map.set(id, [r]);
  }
  return map;
}

describe("parsers on a 200,000-task array", () => {
  it("parse a pending range of 199,990 tasks from squeue without throwing, one record per task", () => {
    const records = parseSqueue(squeueRunning());
    expect(records).toHaveLength(1 + 10 + (N - 10) + 1);
    const pending = records.filter((r) => r.state === "PENDING" && r.arrayJobId === ARRAY);
    expect(pending).toHaveLength(N - 10);
    expect(pending[0]?.taskId).toBe(10);
    expect(pending.at(-1)?.taskId).toBe(N - 1);
    expect(pending.at(-1)?.reason).toBe("JobArrayTaskLimit");
  });

  it("parse 200,000 sacct rows and a 200,000-task scontrol range without throwing", () => {
    const records = parseSacct(sacctRows());
    expect(records).toHaveLength(N + 2);
    expect(records.filter((r) => r.state === "FAILED")).toHaveLength(N / 200);
    const scontrol = parseScontrol(`JobId=${ARRAY} ArrayJobId=${ARRAY} ArrayTaskId=0-${N - 1}%50 JobName=x JobState=PENDING Reason=JobArrayTaskLimit Dependency=(null)\n`);
    expect(scontrol).toHaveLength(N);
    expect(scontrol[N - 1]).toMatchObject({ taskId: N - 1, state: "PENDING", reason: "JobArrayTaskLimit" });
  });

  it("the scheduler answers one squeue for the whole array, every task expected and found", async () => {
    const calls: string[] = [];
    const execute: CommandExecutor = async (argv) => {
      calls.push(argv[0] ?? "");
      return { code: 0, stdout: argv[0] === "squeue" ? squeueRunning() : "", stderr: "" };
    };
    const scheduler = new SlurmScheduler(execute);
    const all = Array.from({ length: N }, (_, i) => i);
    const status = await scheduler.status(["100", ARRAY, "300"], { expect: new Map([[ARRAY, all]]) });
    expect(calls).toEqual(["squeue"]);
    expect(status.get(ARRAY)).toHaveLength(N);
  });
});

describe("status of a 200,000-task array: one record per array", () => {
  it("counts every task by phase and by state from a running squeue answer, with a handful of distinct states", async () => {
    const { plan, jobs } = await bigPlan();
    const statuses = mapJobStatuses(plan, jobs, byJob(parseSqueue(squeueRunning())));
    const array = statuses[1];
    expect(array?.tasks.size).toBe(N);
    expect(array?.counts).toEqual({ pending: N - 10, running: 10, done: 0, failed: 0 });
    expect(array?.tasks.kinds).toHaveLength(2);
    expect(array?.states.map((s) => [s.state, s.reason, s.count])).toEqual([
      ["PENDING", "JobArrayTaskLimit", N - 10],
      ["RUNNING", null, 10],
    ]);
    expect([array?.state, array?.final]).toEqual(["RUNNING", false]);
    expect(array?.tasks.at(N - 1)).toMatchObject({ task: N - 1, taskId: N - 1, slurmJobId: `${ARRAY}_${N - 1}`, state: "PENDING" });
    // The JSON view of a big array lists the running and failed tasks only.
    const json = JSON.parse(JSON.stringify(array)) as { tasks: Array<{ task: number; state: string }> };
    expect(json.tasks.map((t) => t.state)).toEqual(Array.from({ length: 10 }, () => "RUNNING"));
    // The next poll asks only for the tasks not seen final: all of them here.
    expect(expectedTasks(plan, jobs, statuses).get(ARRAY)).toHaveLength(N);
  });

  it("finds each of the 1,000 failed tasks among 200,000 finished ones, for the merger and for the JSON view", async () => {
    const { plan, jobs } = await bigPlan();
    const statuses = mapJobStatuses(plan, jobs, byJob(parseSacct(sacctRows())));
    const array = statuses[1];
    expect(array?.counts).toEqual({ pending: 0, running: 0, done: N - N / 200, failed: N / 200 });
    expect(array?.tasks.kinds).toHaveLength(2);
    expect([array?.state, array?.reason, array?.final]).toEqual(["FAILED", "NonZeroExitCode", true]);
    const failed = array?.tasks.where((k) => k.phase === "failed") ?? [];
    expect(failed).toHaveLength(N / 200);
    expect(failed.every((t) => failing(t.task) && t.exitCode === 3)).toBe(true);
    const facts = jobFactsOf(statuses).get("j001");
    expect(facts?.tasks?.get(199_807)).toEqual({ state: "FAILED", reason: "NonZeroExitCode", slurmJobId: `${ARRAY}_199807` });
    expect(facts?.tasks?.get(199_808)?.state).toBe("COMPLETED");
    expect(facts?.tasks?.get(N)).toBeUndefined();
    const json = JSON.parse(JSON.stringify(array)) as { tasks: Array<{ task: number }> };
    expect(json.tasks.map((t) => t.task)).toEqual(failed.slice(0, JSON_TASKS_MAX).map((t) => t.task));
    expect(expectedTasks(plan, jobs, statuses).has(ARRAY)).toBe(false);
  });

  it("keeps every task's final state when a later answer knows none of them, and sees a change in one task", async () => {
    const { plan, jobs } = await bigPlan();
    const done = mapJobStatuses(plan, jobs, byJob(parseSacct(sacctRows())));
    const forgotten = carryFinalStates(done, mapJobStatuses(plan, jobs, new Map()));
    expect(forgotten[1]?.counts).toEqual(done[1]?.counts);
    expect(forgotten[1]?.tasks.at(7)?.state).toBe("FAILED");
    expect(statusKey(forgotten)).toBe(statusKey(done));

    const running = mapJobStatuses(plan, jobs, byJob(parseSqueue(squeueRunning())));
    const oneMore = squeueRunning().replace(`${ARRAY}_3|1003|${ARRAY}|3|RUNNING|`, `${ARRAY}_3|1003|${ARRAY}|3|COMPLETING|`);
    expect(statusKey(mapJobStatuses(plan, jobs, byJob(parseSqueue(oneMore))))).not.toBe(statusKey(running));
    expect(statusKey(mapJobStatuses(plan, jobs, byJob(parseSqueue(squeueRunning()))))).toBe(statusKey(running));
    // Same states, same counts, two tasks swapped: still a change.
    const swapped = sacctRows()
      .replace(`${ARRAY}_7|1007|FAILED|3:0|NonZeroExitCode`, `${ARRAY}_7|1007|COMPLETED|0:0|None`)
      .replace(`${ARRAY}_8|1008|COMPLETED|0:0|None`, `${ARRAY}_8|1008|FAILED|3:0|NonZeroExitCode`);
    const other = mapJobStatuses(plan, jobs, byJob(parseSacct(swapped)));
    expect(other[1]?.counts).toEqual(done[1]?.counts);
    expect(statusKey(other)).not.toBe(statusKey(done));
  });
});
