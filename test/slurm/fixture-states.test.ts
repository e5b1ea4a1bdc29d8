// Every state and reason that the real cluster printed (test/fixtures/slurm,
// captured by scripts/capture-slurm-output.sh) maps to the right record.
import { describe, expect, it } from "vitest";
import { parseSacct, parseScontrol, parseSqueue, taskKey, type TaskRecord } from "../../src/slurm/index.js";
import { fixture, jobOf } from "./fixtures.js";

function byTask(records: readonly TaskRecord[]): Map<string, TaskRecord> {
  return new Map(records.map((record) => [taskKey(record), record]));
}

function only(records: readonly TaskRecord[]): TaskRecord {
  expect(records).toHaveLength(1);
  return records[0] as TaskRecord;
}

const squeueAll = byTask(parseSqueue(fixture("squeue-all").stdout));
const sacctAll = byTask(parseSacct(fixture("sacct-all").stdout));

describe("squeue states and reasons seen on the real cluster", () => {
  it("reports a successful job as COMPLETED with no reason and the run's comment", () => {
    expect(squeueAll.get(jobOf("ok"))).toMatchObject({
      state: "COMPLETED",
      reason: null,
      arrayJobId: null,
      taskId: null,
      exitCode: null,
      comment: expect.stringMatching(/^hpcpipe:capture-\d+$/),
      source: "squeue",
    });
  });

  it("reports a job that exited 3 as FAILED with reason NonZeroExitCode", () => {
    expect(squeueAll.get(jobOf("fail"))).toMatchObject({ state: "FAILED", reason: "NonZeroExitCode" });
  });

  it("reports afterok on a failed job as PENDING DependencyNeverSatisfied, with the failed dependency", () => {
    expect(squeueAll.get(jobOf("deppending"))).toMatchObject({
      state: "PENDING",
      reason: "DependencyNeverSatisfied",
      dependency: `afterok:${jobOf("fail")}(failed)`,
    });
  });

  it("reports the same with --kill-on-invalid-dep=yes as CANCELLED DependencyNeverSatisfied", () => {
    expect(squeueAll.get(jobOf("depkill"))).toMatchObject({ state: "CANCELLED", reason: "DependencyNeverSatisfied" });
  });

  it("reports every task of an array of 4, the last one running under the array's own job id", () => {
    const array = jobOf("array4");
    const tasks = [0, 1, 2, 3].map((task) => squeueAll.get(`${array}_${task}`));
    expect(tasks.map((task) => task?.state)).toEqual(["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED"]);
    expect(tasks.every((task) => task?.arrayJobId === array)).toBe(true);
    expect(tasks[3]?.jobId).toBe(array);
    expect(new Set(tasks.map((task) => task?.jobId)).size).toBe(4);
  });

  it("reports a job removed by --deadline as DEADLINE with reason DeadLine", () => {
    expect(squeueAll.get(jobOf("deadline"))).toMatchObject({ state: "DEADLINE", reason: "DeadLine" });
  });

  it("reports cancelled jobs as CANCELLED, keeping the reason they were pending for", () => {
    expect(squeueAll.get(jobOf("running"))).toMatchObject({ state: "CANCELLED", reason: null });
    expect(squeueAll.get(jobOf("held"))).toMatchObject({ state: "CANCELLED", reason: "JobHeldUser" });
    const throttled = jobOf("throttled");
    const tasks = [...squeueAll.values()].filter((record) => record.arrayJobId === throttled);
    expect(tasks.map((task) => task.taskId).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(tasks.every((task) => task.state === "CANCELLED")).toBe(true);
  });

  it("reports a running job as RUNNING", () => {
    expect(only(parseSqueue(fixture("squeue-running").stdout))).toMatchObject({ jobId: jobOf("running"), state: "RUNNING" });
  });

  it("reports a cancelled job that ignores SIGTERM as COMPLETING until KillWait", () => {
    expect(only(parseSqueue(fixture("squeue-completing").stdout)).state).toBe("COMPLETING");
  });

  it("reports a job past its time limit as COMPLETING TimeLimit, then TIMEOUT TimeLimit", () => {
    expect(only(parseSqueue(fixture("squeue-timeout-completing").stdout))).toMatchObject({
      state: "COMPLETING",
      reason: "TimeLimit",
    });
    expect(only(parseSqueue(fixture("squeue-timeout").stdout))).toMatchObject({ state: "TIMEOUT", reason: "TimeLimit" });
  });

  it("reports a suspended job as SUSPENDED and a held one as PENDING JobHeldUser", () => {
    expect(only(parseSqueue(fixture("squeue-suspended").stdout)).state).toBe("SUSPENDED");
    expect(only(parseSqueue(fixture("squeue-held").stdout))).toMatchObject({ state: "PENDING", reason: "JobHeldUser" });
  });

  it("reports a job right after scontrol requeue as COMPLETING, then PENDING (squeue never printed REQUEUED here)", () => {
    expect(["COMPLETING", "PENDING"]).toContain(only(parseSqueue(fixture("squeue-requeued").stdout)).state);
  });

  it("lists each pending task of a throttled array with reason JobArrayTaskLimit, sharing the array job id", () => {
    const throttled = jobOf("throttled");
    const records = parseSqueue(fixture("squeue-throttled-array").stdout);
    expect(records).toHaveLength(10);
    const pending = records.filter((record) => record.state === "PENDING");
    expect(pending.length).toBeGreaterThan(0);
    expect(pending.every((record) => record.reason === "JobArrayTaskLimit" && record.jobId === throttled)).toBe(true);
    const running = records.filter((record) => record.state === "RUNNING");
    expect(running.length).toBeLessThanOrEqual(2);
    expect(running.every((record) => record.jobId !== throttled)).toBe(true);
  });

  it("expands the pending range squeue prints without -r into its task ids", () => {
    const throttled = jobOf("throttled");
    const captured = fixture("squeue-throttled-array-unexpanded");
    expect(captured.stdout).toMatch(new RegExp(`^${throttled}_\\[\\d+-9%2\\]\\|`, "m"));
    const records = parseSqueue(captured.stdout);
    expect(records.map((record) => record.taskId).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const fromRange = records.filter((record) => record.rawId.includes("["));
    expect(fromRange.every((record) => record.state === "PENDING" && record.jobId === throttled)).toBe(true);
  });

  it("keeps a comment with spaces, '=' and '|' whole", () => {
    expect(only(parseSqueue(fixture("squeue-spaced").stdout)).comment).toMatch(/ note=has spaces \| and a pipe$/);
  });
});

describe("sacct states, exit codes and reasons seen on the real cluster", () => {
  it("reports exit codes: COMPLETED 0:0, FAILED 3:0", () => {
    expect(sacctAll.get(jobOf("ok"))).toMatchObject({ state: "COMPLETED", exitCode: 0, signal: 0, source: "sacct" });
    expect(sacctAll.get(jobOf("fail"))).toMatchObject({ state: "FAILED", exitCode: 3, signal: 0 });
  });

  it("reports who cancelled a job: the user's uid, or 0 for root", () => {
    const byUser = sacctAll.get(jobOf("running"));
    expect(byUser).toMatchObject({ state: "CANCELLED", rawState: expect.stringMatching(/^CANCELLED by \d+$/) });
    expect(byUser?.cancelledBy).toMatch(/^[1-9]\d*$/);
    expect(sacctAll.get(jobOf("suspended"))).toMatchObject({ state: "CANCELLED", cancelledBy: "0" });
  });

  it("reports a job killed by --kill-on-invalid-dep as plain CANCELLED: sacct keeps neither canceller nor reason", () => {
    const record = sacctAll.get(jobOf("depkill"));
    expect(record).toMatchObject({ state: "CANCELLED", reason: null });
    expect(record?.cancelledBy).toBeUndefined();
  });

  it("reports the job pending on a failed dependency as PENDING DependencyNeverSatisfied", () => {
    expect(sacctAll.get(jobOf("deppending"))).toMatchObject({ state: "PENDING", reason: "DependencyNeverSatisfied" });
  });

  it("reports DEADLINE, and every task of the array of 4", () => {
    expect(sacctAll.get(jobOf("deadline"))?.state).toBe("DEADLINE");
    const array = jobOf("array4");
    expect([0, 1, 2, 3].map((task) => sacctAll.get(`${array}_${task}`)?.state)).toEqual([
      "COMPLETED",
      "COMPLETED",
      "COMPLETED",
      "COMPLETED",
    ]);
  });

  it("expands the cancelled pending range of the throttled array into its tasks", () => {
    const throttled = jobOf("throttled");
    for (let task = 0; task <= 9; task += 1) {
      expect(sacctAll.get(`${throttled}_${task}`)).toMatchObject({ state: "CANCELLED", arrayJobId: throttled });
    }
  });

  it("lists fewer rows than ids when it does not know an id, without failing", () => {
    const captured = fixture("sacct-all");
    expect(captured.argv.at(-1)).toContain("4000000");
    expect(sacctAll.has("4000000")).toBe(false);
  });

  it("expands a pending range into task records", () => {
    const throttled = jobOf("throttled");
    const records = parseSacct(fixture("sacct-throttled-array").stdout);
    const pending = records.filter((record) => record.state === "PENDING");
    expect(pending.length).toBeGreaterThan(0);
    // The reason lags in accounting: JobArrayTaskLimit in one capture, None in another.
    expect(pending.every((record) => record.rawId.startsWith(`${throttled}_[`) && record.jobId === throttled)).toBe(true);
    expect(new Set(records.map((record) => record.taskId)).size).toBe(10);
  });

  it("reports a TIMEOUT job as TIMEOUT (ExitCode 0:0 on the allocation row here)", () => {
    expect(only(parseSacct(fixture("sacct-timeout").stdout))).toMatchObject({ state: "TIMEOUT", exitCode: 0 });
  });

  it("reports a job squeue shows as COMPLETING after scancel as CANCELLED by the user", () => {
    expect(only(parseSacct(fixture("sacct-completing").stdout)).state).toBe("CANCELLED");
  });

  it("lists the earlier run of a requeued job as REQUEUED, before the current run (sacct -D)", () => {
    const records = parseSacct(fixture("sacct-requeued").stdout);
    expect(records[0]).toMatchObject({ jobId: jobOf("requeued"), state: "REQUEUED" });
    expect(records.slice(1).every((record) => record.state !== "REQUEUED")).toBe(true);
  });

  it("reports the purged job it still knows", () => {
    expect(only(parseSacct(fixture("sacct-purged").stdout)).jobId).toBe(jobOf("purged"));
  });
});

describe("scontrol show job -o seen on the real cluster", () => {
  it("reads a job that exited 3 as FAILED NonZeroExitCode with exit code 3", () => {
    expect(only(parseScontrol(fixture("scontrol-finished").stdout))).toMatchObject({
      jobId: jobOf("fail"),
      state: "FAILED",
      reason: "NonZeroExitCode",
      exitCode: 3,
      signal: 0,
      source: "scontrol",
    });
  });

  it("reads one record per task of an array", () => {
    const array = jobOf("array4");
    const records = parseScontrol(fixture("scontrol-array").stdout);
    expect(records.map((record) => taskKey(record)).sort()).toEqual([0, 1, 2, 3].map((task) => `${array}_${task}`).sort());
    expect(records.every((record) => record.state === "COMPLETED" && record.exitCode === 0)).toBe(true);
  });

  it("reads the dependency and reason of a job pending on a failed dependency", () => {
    expect(only(parseScontrol(fixture("scontrol-pending-dependent").stdout))).toMatchObject({
      state: "PENDING",
      reason: "DependencyNeverSatisfied",
      dependency: `afterok:${jobOf("fail")}(failed)`,
    });
  });

  it("expands the pending ArrayTaskId range of a throttled array", () => {
    const throttled = jobOf("throttled");
    const records = parseScontrol(fixture("scontrol-throttled-array").stdout);
    expect(new Set(records.map((record) => record.taskId)).size).toBe(10);
    const pending = records.filter((record) => record.state === "PENDING");
    expect(pending.every((record) => record.jobId === throttled && record.reason === "JobArrayTaskLimit")).toBe(true);
  });

  it("reads SUSPENDED, and TIMEOUT TimeLimit with signal 9", () => {
    expect(only(parseScontrol(fixture("scontrol-suspended").stdout)).state).toBe("SUSPENDED");
    expect(only(parseScontrol(fixture("scontrol-timeout").stdout))).toMatchObject({
      state: "TIMEOUT",
      reason: "TimeLimit",
      exitCode: 0,
      signal: 9,
    });
  });

  it("keeps spaces and '=' inside JobName, Comment and WorkDir", () => {
    const captured = fixture("scontrol-spaced");
    const record = only(parseScontrol(captured.stdout));
    expect(record).toMatchObject({ state: "PENDING", reason: "JobHeldUser" });
    expect(record.comment).toMatch(/ note=has spaces \| and a pipe$/);
  });

  it("reads every job slurmctld holds from one call without an id", () => {
    const records = parseScontrol(fixture("scontrol-all").stdout);
    const keys = new Set(records.map((record) => record.arrayJobId ?? record.jobId));
    for (const name of ["ok", "fail", "array4", "deppending", "depkill"]) expect(keys.has(jobOf(name))).toBe(true);
  });
});

describe("states this cluster cannot produce (synthetic-*.json, hand-written)", () => {
  it("maps OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, REVOKED and REQUEUED from squeue", () => {
    const records = byTask(parseSqueue(fixture("synthetic-squeue-rare-states").stdout));
    expect(records.get("9001")).toMatchObject({ state: "OUT_OF_MEMORY", reason: "OutOfMemory" });
    expect(records.get("9002")).toMatchObject({ state: "NODE_FAIL", reason: "NodeDown" });
    expect(records.get("9003")?.state).toBe("PREEMPTED");
    expect(records.get("9004")?.state).toBe("BOOT_FAIL");
    expect(records.get("9005")?.state).toBe("REVOKED");
    expect(records.get("9006")?.state).toBe("REQUEUED");
    expect(records.get("9007_2")).toMatchObject({ state: "OUT_OF_MEMORY", jobId: "9009", arrayJobId: "9007", taskId: 2 });
    expect(records.get("9012")).toMatchObject({ state: "PENDING", rawState: "CONFIGURING" });
    expect(records.get("9013")?.reason).toBe("ReqNodeNotAvail, UnavailableNodes:node[01-02]");
  });

  it("maps the same states from sacct, OUT_OF_MEMORY with ExitCode 0:125", () => {
    const records = byTask(parseSacct(fixture("synthetic-sacct-rare-states").stdout));
    expect(records.get("9001")).toMatchObject({ state: "OUT_OF_MEMORY", exitCode: 0, signal: 125 });
    expect(["9002", "9003", "9004", "9005", "9006"].map((id) => records.get(id)?.state)).toEqual([
      "NODE_FAIL",
      "PREEMPTED",
      "BOOT_FAIL",
      "REVOKED",
      "REQUEUED",
    ]);
  });

  it("keeps a state word it does not know as UNKNOWN with the raw text", () => {
    for (const records of [
      parseSqueue(fixture("synthetic-squeue-rare-states").stdout),
      parseSacct(fixture("synthetic-sacct-rare-states").stdout),
    ]) {
      expect(byTask(records).get("9011")).toMatchObject({ state: "UNKNOWN", rawState: "SOMETHING_NEW" });
    }
  });
});
