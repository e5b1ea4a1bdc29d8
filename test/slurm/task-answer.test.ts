/**
 * SLURM's answers kept compact (issue 16): a pending range is one segment,
 * tasks in order in the same state share one, the compact answer resolves
 * every task exactly as the per-task records did (a task's own row over a
 * range, a later row over an earlier one, squeue over sacct), and a bad row
 * among a million good ones is still an error naming its line.
 */
import { describe, expect, it } from "vitest";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { mapJobStatuses } from "../../src/runs/index.js";
import { dedupeTasks, parseSacct, parseSacctAnswer, parseScontrolAnswer, parseSqueue, parseSqueueAnswer, SlurmOutputError, SlurmScheduler, TaskAnswer } from "../../src/slurm/index.js";
import type { CommandExecutor, TaskRecord } from "../../src/slurm/index.js";

const SQ = (id: string, own: string, array: string, task: string, state: string, reason = "None"): string => `${id}|${own}|${array}|${task}|${state}|${reason}|(null)|hpcpipe:t`;

describe("parsers keep ranges and runs of tasks as segments", () => {
  it("squeue without -r: a pending range is one segment; tasks started in order are one segment per state", () => {
    const lines = [SQ("70_[10-199999%50]", "70", "70", "10-199999%50", "PENDING", "JobArrayTaskLimit")];
    for (let t = 0; t < 10; t++) lines.push(SQ(`70_${t}`, String(100 + t), "70", String(t), t === 4 ? "FAILED" : "RUNNING"));
    const answer = parseSqueueAnswer(`${lines.join("\n")}\n`);
    // The range, tasks 0-3 running (ids 100-103), task 4 failed, tasks 5-9 running (ids 105-109).
    expect(answer.size).toBe(4);
    expect(answer.segment(0)).toMatchObject({ first: 10, last: 199_999, step: 1, range: true });
    expect(answer.segment(1)).toMatchObject({ first: 0, last: 3, own: 100, seq: true, range: false });
    expect(answer.segment(3)).toMatchObject({ first: 5, last: 9, own: 105, seq: true });
    const records = parseSqueue(`${lines.join("\n")}\n`);
    expect(records).toHaveLength(199_990 + 10);
    expect(records[1]).toMatchObject({ jobId: "70", arrayJobId: "70", taskId: 11, rawId: "70_[10-199999%50]", state: "PENDING", reason: "JobArrayTaskLimit", comment: "hpcpipe:t" });
    expect(records.at(-1)).toMatchObject({ jobId: "109", arrayJobId: "70", taskId: 9, rawId: "70_9", state: "RUNNING", reason: null, source: "squeue" });
    expect(records.find((r) => r.taskId === 4)).toMatchObject({ jobId: "104", rawId: "70_4", state: "FAILED" });
  });

  it("squeue -r: pending tasks sharing the array's id are one segment; a range with steps and a list keeps its steps", () => {
    const lines: string[] = [];
    for (let t = 0; t < 1000; t++) lines.push(SQ(`80_${t}`, "80", "80", String(t), "PENDING", "Dependency"));
    lines.push(SQ("81_[0-15:4,20%2]", "81", "81", "0-15:4,20%2", "PENDING", "JobArrayTaskLimit"));
    const answer = parseSqueueAnswer(lines.join("\r\n"));
    expect(answer.size).toBe(3);
    expect(answer.segment(0)).toMatchObject({ first: 0, last: 999, own: 80, seq: false });
    expect(answer.segment(1)).toMatchObject({ first: 0, last: 15, step: 4, range: true });
    expect(answer.segment(2)).toMatchObject({ first: 20, last: 20, range: true });
    const records = answer.expand();
    expect(records.slice(1000).map((r) => r.taskId)).toEqual([0, 4, 8, 12, 20]);
    expect(records[999]).toMatchObject({ jobId: "80", taskId: 999, rawId: "80_999" });
  });

  it("sacct: a million task rows are a few segments, one template per distinct state text", () => {
    const rows: string[] = ["5|5|COMPLETED|0:0|None", "5.batch|5.batch|COMPLETED|0:0|"];
    for (let t = 0; t < 1_000_000; t++) rows.push(t % 1000 === 7 ? `90_${t}|${1000 + t}|FAILED|3:0|NonZeroExitCode` : `90_${t}|${1000 + t}|COMPLETED|0:0|None`);
    rows.push("91_[3-9]|91|PENDING|0:0|Dependency");
    const answer = parseSacctAnswer(`${rows.join("\n")}\n`);
    expect(answer.templates.length).toBeLessThan(10);
    expect(answer.size).toBe(1 + 2 * 1000 + 1 + 1);
    expect(answer.whole()).toMatchObject({ jobId: "5", taskId: null, state: "COMPLETED", exitCode: 0 });
    const records = answer.expand();
    expect(records).toHaveLength(1 + 1_000_000 + 7);
    expect(records[8]).toMatchObject({ jobId: "1007", arrayJobId: "90", taskId: 7, rawId: "90_7", state: "FAILED", exitCode: 3, signal: 0, reason: "NonZeroExitCode", source: "sacct" });
    expect(records.at(-1)).toMatchObject({ jobId: "91", arrayJobId: "91", taskId: 9, rawId: "91_[3-9]", state: "PENDING" });
  });

  it("scontrol: a pending range of 200,000 tasks is one segment", () => {
    const answer = parseScontrolAnswer("JobId=300 ArrayJobId=300 ArrayTaskId=0-199999%50 JobName=x JobState=PENDING Reason=JobArrayTaskLimit Dependency=(null)\n");
    expect(answer.size).toBe(1);
    expect(answer.segment(0)).toMatchObject({ first: 0, last: 199_999, range: true });
    expect(answer.recordAt(0, 199_999)).toMatchObject({ jobId: "300", taskId: 199_999, rawId: "300_[0-199999%50]", state: "PENDING", reason: "JobArrayTaskLimit" });
  });

  it("still checks every row: a bad id, a bad state or too few fields among good rows is an error naming its line", () => {
    const good = Array.from({ length: 50 }, (_, t) => SQ(`70_${t}`, String(100 + t), "70", String(t), "RUNNING"));
    const at = (line: string): unknown => {
      try {
        parseSqueueAnswer([...good, line, ...good].join("\n"));
      } catch (err) {
        return err;
      }
      return null;
    };
    for (const bad of [SQ("70_5x", "150", "70", "5", "RUNNING"), SQ("70_5", "15a", "70", "5", "RUNNING"), SQ("70_5", "150", "70", "5", ""), "70_5|150|70|5|RUNNING|None"]) {
      const err = at(bad);
      expect(err, bad).toBeInstanceOf(SlurmOutputError);
      expect((err as SlurmOutputError).lineNumber).toBe(51);
    }
    expect(() => parseSacctAnswer("90_1|1001|COMPLETED|0:0|None\n90_2||COMPLETED|0:0|None\n")).toThrow(SlurmOutputError);
    expect(() => parseSacctAnswer("90_1|1001|COMPLETED|0:0|None\n90_2|1002|COMPLETED|0:0\n")).toThrow(/too few fields/);
  });
});

/** A deterministic random generator. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("a compact answer resolves every task as the per-task records did", () => {
  const SIZE = 40;
  const plan = { runId: "r", jobs: [{ id: "j000", shape: "map", map: { key: "p.each" }, steps: ["p.each.{i}.a"], bodies: [], dependencies: [], array: { count: SIZE, offset: 0, throttle: null, chunk: 0, chunks: 1, total: SIZE, indices: null } }] } as unknown as CompiledPlan;
  const states = ["PENDING|JobArrayTaskLimit", "RUNNING|None", "COMPLETED|None", "FAILED|NonZeroExitCode"];

  it("for random squeue and sacct answers with ranges, duplicates and tasks left out (200 cases)", async () => {
    const rand = rng(42);
    for (let c = 0; c < 200; c++) {
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
      const squeue: string[] = [];
      const sacct: string[] = [];
      for (let k = 0; k < 12; k++) {
        const t = Math.floor(rand() * SIZE);
        const [state, reason] = pick(states).split("|") as [string, string];
        if (rand() < 0.2) {
          const last = Math.min(SIZE - 1, t + Math.floor(rand() * 10));
          squeue.push(SQ(`50_[${t}-${last}]`, "50", "50", `${t}-${last}`, "PENDING", reason));
          sacct.push(`50_[${t}-${last}]|50|PENDING|0:0|${reason}`);
        } else {
          if (rand() < 0.5) squeue.push(SQ(`50_${t}`, String(500 + t), "50", String(t), state, reason));
          else sacct.push(`50_${t}|${500 + t}|${state}|${state === "FAILED" ? "3:0" : "0:0"}|${reason}`);
        }
      }
      const execute: CommandExecutor = async (argv) => ({ code: 0, stdout: `${(argv[0] === "squeue" ? squeue : sacct).join("\n")}\n`, stderr: "" });
      const expect_ = new Map([["50", Array.from({ length: SIZE }, (_, i) => i)]]);
      const compact = await new SlurmScheduler(execute).statusAnswers(["50"], { expect: expect_ });
      const records = await new SlurmScheduler(execute).status(["50"], { expect: expect_ });
      const fromCompact = JSON.stringify(mapJobStatuses(plan, { j000: "50" }, compact));
      const fromRecords = JSON.stringify(mapJobStatuses(plan, { j000: "50" }, records));
      if (fromCompact !== fromRecords) throw new Error(`case ${c}: squeue ${JSON.stringify(squeue)} sacct ${JSON.stringify(sacct)}:\n${fromCompact}\n!=\n${fromRecords}`);
      // And the records are those of the per-task parsers, deduplicated, with squeue's tasks kept.
      const sq = parseSqueue(squeue.join("\n"));
      const seen = new Set(sq.map((r) => r.taskId));
      const sa = sq.length === 0 ? parseSacct(sacct.join("\n")) : parseSacct(sacct.join("\n")).filter((r) => r.taskId !== null && !seen.has(r.taskId));
      const covered = sq.length > 0 && Array.from({ length: SIZE }, (_, i) => i).every((t) => seen.has(t));
      const expected: TaskRecord[] = dedupeTasks(covered ? sq : [...sq, ...sa]);
      expect(records.get("50"), `case ${c}`).toEqual(expected.length === 0 ? [expect.objectContaining({ state: "UNKNOWN" })] : expected);
    }
  });

  it("a task's own row beats a range and a later row an earlier one; records in the old order", () => {
    const answer = new TaskAnswer();
    const base = { jobId: "50", arrayJobId: "50", taskId: 0, rawId: "50_[0-9]", state: "PENDING" as const, rawState: "PENDING", reason: null, exitCode: null, signal: null, source: "sacct" as const };
    answer.add(answer.template(base), 0, 9, 1, -1, true);
    answer.addTask(answer.template({ ...base, rawId: "50_3", state: "RUNNING", rawState: "RUNNING" }), 3, 103);
    answer.addTask(answer.template({ ...base, rawId: "50_3", state: "COMPLETED", rawState: "COMPLETED" }), 3, 203);
    const win = answer.resolve(10);
    expect(win[3]).toBe(2);
    expect(win[4]).toBe(0);
    expect(answer.records().map((r) => `${r.taskId}:${r.state}:${r.jobId}`)).toEqual(["0:PENDING:50", "1:PENDING:50", "2:PENDING:50", "4:PENDING:50", "5:PENDING:50", "6:PENDING:50", "7:PENDING:50", "8:PENDING:50", "9:PENDING:50", "3:COMPLETED:203"]);
  });
});
