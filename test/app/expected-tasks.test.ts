/**
 * Which array tasks a status poll still looks for (src/app/collect.ts expectedTasks):
 * every task of every submitted array job, less the tasks an earlier poll saw end,
 * so a task squeue leaves out is asked of accounting only while it matters.
 */
import { afterAll, describe, expect, it } from "vitest";
import { expectedTasks } from "../../src/app/collect.js";
import { preparePlan } from "../../src/app/prepare.js";
import { mapJobStatuses } from "../../src/runs/index.js";
import type { JobState, TaskRecord } from "../../src/slurm/index.js";
import { tempBase, writeLocalCluster, writeYaml } from "../integration/helpers.js";

const base = tempBase("hpcpipe-expected-tasks-");
afterAll(() => base.cleanup());

const plan = preparePlan({
  spec: writeYaml(base.dir, "spec", {
    name: "exp",
    steps: [
      { step: "prep", run: "true" },
      { map: "each", items: ["a", "b", "c"], steps: [{ step: "work", run: "true", requires: ["item"] }] },
    ],
  }),
  cluster: writeLocalCluster(base.dir, "c"),
}).plan;

function record(jobId: string, taskId: number | null, state: JobState): TaskRecord {
  return {
    jobId: taskId === null ? jobId : `${jobId}_${taskId}`,
    arrayJobId: taskId === null ? null : jobId,
    taskId,
    rawId: taskId === null ? jobId : `${jobId}_${taskId}`,
    state,
    rawState: state,
    reason: null,
    exitCode: state === "COMPLETED" ? 0 : null,
    signal: null,
    source: "squeue",
  };
}

describe("expectedTasks", () => {
  const jobs = { j000: "100", j001: "101" };

  it("expects every task of each submitted array, and nothing of plain jobs", () => {
    expect([...expectedTasks(plan, jobs, null)]).toEqual([["101", [0, 1, 2]]]);
    expect([...expectedTasks(plan, { j000: "100" }, null)]).toEqual([]);
  });

  it("leaves out the tasks the previous poll saw end", () => {
    const previous = mapJobStatuses(plan, jobs, new Map([
      ["100", [record("100", null, "COMPLETED")]],
      ["101", [record("101", 0, "COMPLETED"), record("101", 1, "RUNNING"), record("101", 2, "PENDING")]],
    ]));
    expect([...expectedTasks(plan, jobs, previous)]).toEqual([["101", [1, 2]]]);
    const allDone = mapJobStatuses(plan, jobs, new Map([["101", [0, 1, 2].map((t) => record("101", t, "FAILED"))]]));
    expect([...expectedTasks(plan, jobs, allDone)]).toEqual([]);
  });
});
