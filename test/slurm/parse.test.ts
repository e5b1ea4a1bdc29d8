import { describe, expect, it } from "vitest";
import {
  SlurmOutputError,
  dedupeTasks,
  expandArrayRange,
  parseExitCode,
  parsePrintedJobId,
  parseSacct,
  parseSbatchParsable,
  parseScontrol,
  parseScontrolLine,
  parseSqueue,
  type TaskRecord,
} from "../../src/slurm/index.js";
import { fixture } from "./fixtures.js";

describe("array ranges", () => {
  it("expands a throttled range and drops the throttle", () => {
    expect(expandArrayRange("2-9%2")).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("expands lists, single indices and stepped ranges", () => {
    expect(expandArrayRange("1,3,5-7")).toEqual([1, 3, 5, 6, 7]);
    expect(expandArrayRange("0-15:4%3")).toEqual([0, 4, 8, 12]);
    expect(expandArrayRange("7")).toEqual([7]);
  });

  it("refuses malformed ranges instead of guessing", () => {
    expect(expandArrayRange("9-2")).toBeNull();
    expect(expandArrayRange("a-b")).toBeNull();
    expect(expandArrayRange("")).toBeNull();
  });

  it("splits printed job ids into array job id and task ids", () => {
    expect(parsePrintedJobId("44")).toEqual({ baseId: "44", taskIds: null, isRange: false });
    expect(parsePrintedJobId("46_3")).toEqual({ baseId: "46", taskIds: [3], isRange: false });
    expect(parsePrintedJobId("16_[2-9%2]")).toEqual({ baseId: "16", taskIds: [2, 3, 4, 5, 6, 7, 8, 9], isRange: true });
    expect(parsePrintedJobId("7+1")).toEqual({ baseId: "7", taskIds: null, isRange: false });
    expect(parsePrintedJobId("45.batch")).toBeNull();
  });
});

describe("exit codes", () => {
  it("reads 3:0 as exit 3 without a signal and 0:9 as killed by signal 9", () => {
    expect(parseExitCode("3:0")).toEqual({ exitCode: 3, signal: 0 });
    expect(parseExitCode("0:9")).toEqual({ exitCode: 0, signal: 9 });
  });

  it("gives nulls for text that is not an exit code", () => {
    expect(parseExitCode("")).toEqual({ exitCode: null, signal: null });
    expect(parseExitCode(undefined)).toEqual({ exitCode: null, signal: null });
    expect(parseExitCode("N/A")).toEqual({ exitCode: null, signal: null });
  });
});

describe("squeue output", () => {
  it("reads the 7-field format without the comment too", () => {
    const [record] = parseSqueue("49|49|49|N/A|RUNNING|None|(null)\n");
    expect(record).toMatchObject({ jobId: "49", arrayJobId: null, taskId: null, state: "RUNNING", reason: null });
    expect(record?.comment).toBeUndefined();
  });

  it("keeps a comment that contains '|' whole", () => {
    const [record] = parseSqueue("5|5|5|N/A|PENDING|JobHeldUser|(null)|hpcpipe:r1 a|b\n");
    expect(record?.comment).toBe("hpcpipe:r1 a|b");
  });

  it("throws a SlurmOutputError naming the line for a line with too few fields", () => {
    expect(() => parseSqueue("49|49|RUNNING\n")).toThrow(SlurmOutputError);
    expect(() => parseSqueue("x|49|49|N/A|RUNNING|None|(null)\n")).toThrow(/line 1/);
  });

  it("reads empty output as no records", () => {
    expect(parseSqueue("")).toEqual([]);
    expect(parseSqueue("\n")).toEqual([]);
  });
});

describe("sacct output", () => {
  it("skips step rows such as 45.batch and keeps one record per allocation", () => {
    const captured = fixture("sacct-with-steps");
    expect(captured.stdout).toContain(".batch|");
    const records = parseSacct(captured.stdout);
    expect(records.every((record) => !record.rawId.includes("."))).toBe(true);
    expect(records).toHaveLength(5); // one failed job, four array tasks
  });

  it("throws a SlurmOutputError for a line with too few fields", () => {
    expect(() => parseSacct("44|44|COMPLETED\n")).toThrow(SlurmOutputError);
  });
});

describe("scontrol show job -o lines", () => {
  it("splits Key=Value pairs, including keys with ':' and '/'", () => {
    const pairs = parseScontrolLine("JobId=5 AllocNode:Sid=vm:123 CPUs/Task=1 JobState=RUNNING Power=");
    expect(pairs.get("AllocNode:Sid")).toBe("vm:123");
    expect(pairs.get("CPUs/Task")).toBe("1");
    expect(pairs.get("JobState")).toBe("RUNNING");
    expect(pairs.get("Power")).toBe("");
  });

  it("keeps spaces inside values such as Reason=ReqNodeNotAvail, UnavailableNodes:n1", () => {
    const pairs = parseScontrolLine(
      "JobId=5 JobState=PENDING Reason=ReqNodeNotAvail, UnavailableNodes:n[1-2] Dependency=(null) WorkDir=/home/a b/c  StdErr=/x",
    );
    expect(pairs.get("Reason")).toBe("ReqNodeNotAvail, UnavailableNodes:n[1-2]");
    expect(pairs.get("WorkDir")).toBe("/home/a b/c");
    expect(pairs.get("StdErr")).toBe("/x");
  });

  it("keeps a 'word=' that is not a scontrol key inside a free-text value", () => {
    const pairs = parseScontrolLine("JobId=5 JobName=a b=c JobState=RUNNING Comment=run x=1 y=2 StdOut=/o");
    expect(pairs.get("JobName")).toBe("a b=c");
    expect(pairs.get("Comment")).toBe("run x=1 y=2");
    expect(pairs.get("JobState")).toBe("RUNNING");
    expect(pairs.has("x")).toBe(false);
  });

  it("throws a SlurmOutputError for a line that is not a job record", () => {
    expect(() => parseScontrol("garbage here\n")).toThrow(SlurmOutputError);
    expect(() => parseScontrol("JobId=abc JobState=RUNNING\n")).toThrow(SlurmOutputError);
  });
});

describe("sbatch --parsable output", () => {
  it("reads the job id the real sbatch printed", () => {
    const captured = fixture("sbatch-parsable");
    expect(parseSbatchParsable(captured.stdout).jobId).toBe(captured.stdout.trim());
  });

  it("reads a federated 'id;cluster' answer and refuses text without an id", () => {
    expect(parseSbatchParsable("123;other\n")).toEqual({ jobId: "123", cluster: "other" });
    expect(() => parseSbatchParsable("Submitted batch job 5\n")).toThrow(SlurmOutputError);
  });
});

describe("one record per task", () => {
  const record = (rawId: string, taskId: number, jobId: string, state: TaskRecord["state"]): TaskRecord => ({
    jobId,
    arrayJobId: "29",
    taskId,
    rawId,
    state,
    rawState: state,
    reason: null,
    exitCode: 0,
    signal: 0,
    source: "sacct",
  });

  it("prefers a task's own sacct row over the pending range that still lists it (sacct lag seen on 22.05)", () => {
    // Seen for real: `29_4|34|RUNNING` and `29_[4-9%2]|29|PENDING` in the same sacct answer.
    const rows = parseSacct("29_4|34|RUNNING|0:0|None\n29_[4-9%2]|29|PENDING|0:0|JobArrayTaskLimit\n");
    const tasks = dedupeTasks(rows);
    expect(tasks).toHaveLength(6);
    expect(tasks.find((task) => task.taskId === 4)).toMatchObject({ state: "RUNNING", jobId: "34" });
    expect(tasks.filter((task) => task.state === "PENDING").map((task) => task.taskId)).toEqual([5, 6, 7, 8, 9]);
  });

  it("keeps the later of two rows for the same task", () => {
    const tasks = dedupeTasks([record("29_1", 1, "31", "REQUEUED"), record("29_1", 1, "31", "PENDING")]);
    expect(tasks.map((task) => task.state)).toEqual(["PENDING"]);
  });
});
