// The cluster-side sacct filter (src/slurm/sacct-runs.ts) and its reader
// (parseSacctRunsAnswer): the REAL script is run here with bash and every awk this
// machine has, over captured and synthetic sacct answers, and what it prints must read
// as the same answer as sacct's own rows, task for task; hostile and garbled answers are
// refused; the scheduler falls back to plain sacct when the filter fails.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  AccountingDisabledError,
  SACCT_RUNS_ANY_OWN,
  SchedulerError,
  SlurmOutputError,
  SlurmScheduler,
  parseSacctAnswer,
  parseSacctRunsAnswer,
  sacctArgv,
  sacctRunsArgv,
  type CommandExecutor,
  type CommandResult,
  type TaskAnswer,
  type TaskRecord,
} from "../../src/slurm/index.js";
import { filteredCommand, queryName, throughFilter } from "../support/sacct-filter.js";
import { fixture } from "./fixtures.js";

/** The awks on this machine (awk is always tried; mawk and gawk when installed). */
const AWKS = ["awk", ...["mawk", "gawk", "original-awk"].filter((a) => spawnSync("sh", ["-c", `command -v ${a}`]).status === 0)];

const filtered = (stdout: string, awk = "awk", options: string[] = []): string => {
  const out = throughFilter({ code: 0, stdout, stderr: "" }, awk, options);
  expect(out.code, out.stderr).toBe(0);
  return out.stdout;
};

/** Every task's record (records() of the answer, as the scheduler's status() gives them). */
const recordsOf = (answer: TaskAnswer): unknown[] => answer.records();

/** The rows of `arrays` arrays of `tasks` finished tasks, own ids in order, 1 in 97 FAILED, the last task under the array's id. */
function finishedArrays(arrays: number, tasks: number): string {
  const rows: string[] = [];
  for (let a = 0; a < arrays; a++) {
    const A = 5000 + a * (tasks + 1);
    for (let t = 0; t < tasks; t++) {
      const own = t === tasks - 1 ? A : A + 1 + t;
      rows.push(`${A}_${t}|${own}|${(a * tasks + t) % 97 === 5 ? "FAILED|3:0|NonZeroExitCode" : "COMPLETED|0:0|None"}`);
    }
  }
  return rows.map((r) => `${r}\n`).join("");
}

/** Answers that must read the same through the filter as they are. */
const CASES: Record<string, string> = {
  "captured sacct-all": fixture("sacct-all").stdout,
  "captured sacct-with-steps": fixture("sacct-with-steps").stdout,
  "captured sacct-requeued": fixture("sacct-requeued").stdout,
  "captured sacct-throttled-array": fixture("sacct-throttled-array").stdout,
  "captured sacct-purged": fixture("sacct-purged").stdout,
  "synthetic rare states": fixture("synthetic-sacct-rare-states").stdout,
  "3 finished arrays of 300 tasks": finishedArrays(3, 300),
  // Own ids interleaved between two arrays (their tasks started alternately): no run of own ids in order.
  "interleaved own ids": Array.from({ length: 40 }, (_, i) => `${i < 20 ? 700 : 800}_${i % 20}|${900 + 2 * (i % 20) + (i < 20 ? 0 : 1)}|COMPLETED|0:0|None\n`).join(""),
  // Pending tasks on their own rows sharing the array's id (mode e), then a range and own rows of the same tasks (sacct lag: own rows win).
  "equal own ids, a range and own rows of the same tasks": [
    "60_0|60|PENDING|0:0|JobArrayTaskLimit",
    "60_1|60|PENDING|0:0|JobArrayTaskLimit",
    "60_2|60|PENDING|0:0|JobArrayTaskLimit",
    "61_[0-9%2]|61|PENDING|0:0|JobArrayTaskLimit",
    "61_0|62|COMPLETED|0:0|None",
    "61_1|63|COMPLETED|0:0|None",
    "61_2|64|COMPLETED|0:0|None",
    "61_0|65|FAILED|1:0|None",
  ].map((r) => `${r}\n`).join(""),
  // A reason with `|`, shell and awk metacharacters, a CR line end, blank lines, 16-digit ids (passed through), a hetjob.
  "hostile text": [
    "70_0|71|COMPLETED|0:0|a|b $(rm -rf ~) `id` 'q' \"d\" \\n %s %d",
    "70_1|72|COMPLETED|0:0|a|b $(rm -rf ~) `id` 'q' \"d\" \\n %s %d",
    "70_2|73|COMPLETED|0:0|None\r",
    "70_3|74|COMPLETED|0:0|None\r",
    "",
    "   ",
    "1234567890123456_0|1234567890123457|COMPLETED|0:0|None",
    "1234567890123456_1|1234567890123458|COMPLETED|0:0|None",
    "80+0|80|COMPLETED|0:0|None",
    "80+1|81|COMPLETED|0:0|None",
    "90_5|95|CANCELLED by 1001|0:15|None",
    "90_6|96|CANCELLED by 1001|0:15|None",
  ].map((r) => `${r}\n`).join(""),
  "empty answer": "",
};

describe("the sacct filter on this machine, read back", () => {
  for (const awk of AWKS) {
    for (const [name, stdout] of Object.entries(CASES)) {
      it(`${awk}: ${name} reads the same, task for task, as sacct's own rows`, () => {
        const out = filtered(stdout, awk);
        expect(out.trimEnd().split("\n").at(-1)).toMatch(/^~hpcpipe-sacct\|1\|\d+$/);
        const plain = parseSacctAnswer(stdout);
        const runs = parseSacctRunsAnswer(out);
        expect(recordsOf(runs)).toEqual(recordsOf(plain));
        expect(runs.expand()).toEqual(plain.expand());
        expect(runs.size).toBeLessThanOrEqual(plain.size);
      });
    }
  }

  for (const awk of AWKS) {
    for (const [name, stdout] of Object.entries(CASES)) {
      it(`${awk} --any-own-ids: ${name} reads the same tasks in the same states, folded tasks carrying their array's job id`, () => {
        const plain = parseSacctAnswer(stdout).records();
        const runs = parseSacctRunsAnswer(filtered(stdout, awk, [SACCT_RUNS_ANY_OWN])).records();
        const withoutJobId = (records: TaskRecord[]): unknown[] => records.map(({ jobId: _jobId, ...rest }) => rest);
        expect(withoutJobId(runs)).toEqual(withoutJobId(plain));
        // Each task's jobId: its own (a row left as it was) or its array's (folded).
        for (const [i, r] of runs.entries()) expect([plain[i]?.jobId, r.arrayJobId ?? r.jobId]).toContain(r.jobId);
      });
    }
  }

  it("--any-own-ids folds tasks whose own ids are interleaved with another array's (a busy cluster), and nothing else changes", () => {
    const out = filtered(CASES["interleaved own ids"] as string, "awk", [SACCT_RUNS_ANY_OWN]);
    expect(out).toBe("~700|0|19|700|a|COMPLETED|0:0|None\n~800|0|19|800|a|COMPLETED|0:0|None\n~hpcpipe-sacct|1|40\n");
    expect(parseSacctRunsAnswer(out).records().at(-1)).toMatchObject({ jobId: "800", arrayJobId: "800", taskId: 19, rawId: "800_19", state: "COMPLETED" });
    // Rows that fold by own id fold the same way, but as mode a.
    expect(filtered("9_0|10|COMPLETED|0:0|None\n9_1|11|COMPLETED|0:0|None\n", "awk", [SACCT_RUNS_ANY_OWN])).toBe("~9|0|1|9|a|COMPLETED|0:0|None\n~hpcpipe-sacct|1|2\n");
  });

  it("folds 3 arrays of 300 finished tasks into a few lines, and 1,000 tasks in one state into one", () => {
    const out = filtered(finishedArrays(3, 300));
    // Per array: runs between the FAILED tasks (about 300/97 of them), and the last task on its own row.
    expect(out.trimEnd().split("\n").length).toBeLessThan(30);
    const one = filtered(Array.from({ length: 1000 }, (_, t) => `9_${t}|${10 + t}|COMPLETED|0:0|None\n`).join(""));
    expect(one).toBe("~9|0|999|10|s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|1000\n");
    expect(parseSacctRunsAnswer(one).records()).toHaveLength(1000);
    expect(parseSacctRunsAnswer(one).records()[999]).toMatchObject({ jobId: "1009", arrayJobId: "9", taskId: 999, rawId: "9_999", state: "COMPLETED", exitCode: 0 });
  });

  it("passes rows it does not fold through byte for byte (interleaved own ids, 16-digit ids, ranges, steps)", () => {
    for (const name of ["interleaved own ids", "captured sacct-with-steps"]) {
      const stdout = CASES[name] as string;
      expect(filtered(stdout)).toBe(`${stdout}~hpcpipe-sacct|1|${stdout.trimEnd().split("\n").length}\n`);
    }
    expect(filtered(CASES["hostile text"] as string)).toContain("1234567890123456_1|1234567890123458|COMPLETED|0:0|None\n");
  });
});

describe("parseSacctRunsAnswer refuses what the filter did not print", () => {
  const good = "~9|0|2|10|s|COMPLETED|0:0|None\n9_3|9|COMPLETED|0:0|None\n~hpcpipe-sacct|1|4\n";
  const refused: Record<string, string> = {
    "no trailer (an answer cut short)": "~9|0|2|10|s|COMPLETED|0:0|None\n9_3|9|COMPLETED|0:0|None\n",
    "plain sacct, no trailer": "9_0|10|COMPLETED|0:0|None\n",
    "nothing at all": "",
    "another format version": good.replace("|1|4", "|2|4"),
    "a row count that is not the lines'": good.replace("|1|4", "|1|5"),
    "a dropped line": "~9|0|2|10|s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|4\n",
    "a trailer with more fields": good.replace("|1|4", "|1|4|x"),
    "a trailer in the middle": `~hpcpipe-sacct|1|3\n${good}`,
    "a run line with too few fields": "~9|0|2|10|s\n~hpcpipe-sacct|1|3\n",
    "a run line with a letter in an id": "~9x|0|2|10|s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line with an empty own id": "~9|0|2||s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line with a 16-digit id": "~1234567890123456|0|2|10|s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line of one task": "~9|2|2|10|s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|1\n",
    "a run line counting down": "~9|5|2|10|s|COMPLETED|0:0|None\n~hpcpipe-sacct|1|4\n",
    "a run line beyond SLURM's largest index": "~9|0|4000001|10|e|COMPLETED|0:0|None\n~hpcpipe-sacct|1|4000002\n",
    "a run line with another mode": "~9|0|2|10|x|COMPLETED|0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line of mode a whose own id is not its array's": "~9|0|2|10|a|COMPLETED|0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line with a long mode": "~9|0|2|10|ss|COMPLETED|0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line whose row has no state": "~9|0|2|10|s||0:0|None\n~hpcpipe-sacct|1|3\n",
    "a run line whose row has too few fields": "~9|0|2|10|s|COMPLETED\n~hpcpipe-sacct|1|3\n",
    "a garbled row among run lines": "~9|0|2|10|s|COMPLETED|0:0|None\n9_3\n~hpcpipe-sacct|1|4\n",
  };
  it("reads the good answer", () => {
    expect(parseSacctRunsAnswer(good).records().map((r) => [r.taskId, r.jobId])).toEqual([
      [0, "10"],
      [1, "11"],
      [2, "12"],
      [3, "9"],
    ]);
  });
  for (const [name, text] of Object.entries(refused)) {
    it(`refuses ${name}`, () => {
      expect(() => parseSacctRunsAnswer(text)).toThrow(SlurmOutputError);
    });
  }
  it("refuses a run line in plain sacct's answer (only the filter prints them)", () => {
    expect(() => parseSacctAnswer(good)).toThrow(SlurmOutputError);
  });
  it("names the line and what is wrong", () => {
    expect(() => parseSacctRunsAnswer(refused["a run line with another mode"] as string)).toThrow(/run line has a mode that is not s, e or a \(line 1: "~9\|0\|2\|10\|x/);
    expect(() => parseSacctRunsAnswer(refused["a dropped line"] as string)).toThrow(/read 4 rows but its answer stands for 3 \(line 2: "~hpcpipe-sacct\|1\|4"\)/);
  });
});

/** An executor answering squeue with nothing and sacct with `rows`; the filter as `filter` says. */
function cluster(rows: string, filter: (plain: CommandResult) => CommandResult): { execute: CommandExecutor; calls: string[][] } {
  const calls: string[][] = [];
  const execute: CommandExecutor = async (argv) => {
    calls.push(argv);
    if (argv[0] === "squeue") return { code: 0, stdout: "", stderr: "" };
    const sacct = filteredCommand(argv) ?? argv;
    if (sacct[0] !== "sacct") throw new Error(`unexpected ${argv.join(" ")}`);
    const plain = { code: 0, stdout: rows, stderr: "" };
    return filteredCommand(argv) !== null ? filter(plain) : plain;
  };
  return { execute, calls };
}

describe("SlurmScheduler with the sacct filter", () => {
  const rows = finishedArrays(1, 50);
  const ids = ["5000"];

  it("asks sacct through the filter: one query, the same tasks as plain sacct gives", async () => {
    const fake = cluster(rows, (plain) => throughFilter(plain));
    const scheduler = new SlurmScheduler(fake.execute);
    const filteredStatus = await scheduler.status(ids);
    expect(fake.calls.map(queryName)).toEqual(["squeue", "sacct"]);
    expect(fake.calls[1]).toEqual(sacctRunsArgv(ids));
    const plain = await new SlurmScheduler(cluster(rows, () => ({ code: 1, stdout: "", stderr: "unused" })).execute, { sacctFilter: false }).status(ids);
    expect(filteredStatus).toEqual(plain);
    expect(filteredStatus.get("5000")).toHaveLength(50);
  });

  it("with taskJobIds: false asks the filter to fold whatever the own ids: the same tasks in the same states", async () => {
    const interleaved = CASES["interleaved own ids"] as string;
    const fake = cluster(interleaved, (plain) => throughFilter(plain, "awk", [SACCT_RUNS_ANY_OWN]));
    const answers = await new SlurmScheduler(fake.execute).statusAnswers(["700", "800"], { taskJobIds: false });
    expect(fake.calls[1]).toEqual(sacctRunsArgv(["700", "800"], { taskJobIds: false }));
    expect(answers.get("700")?.size).toBe(1);
    const plain = await new SlurmScheduler(cluster(interleaved, () => ({ code: 1, stdout: "", stderr: "unused" })).execute, { sacctFilter: false }).status(["700", "800"]);
    for (const id of ["700", "800"]) {
      expect(answers.get(id)?.records().map((r) => [r.taskId, r.state, r.rawId])).toEqual(plain.get(id)?.map((r) => [r.taskId, r.state, r.rawId]));
      expect(plain.get(id)?.[0]?.jobId).not.toBe(id);
    }
  });

  it("falls back to plain sacct in the same poll, and for good, when awk is missing on the cluster", async () => {
    const fake = cluster(rows, (plain) => throughFilter(plain, "no-such-awk-here"));
    const scheduler = new SlurmScheduler(fake.execute);
    const status = await scheduler.status(ids);
    expect(status.get("5000")).toHaveLength(50);
    expect(fake.calls.slice(1)).toEqual([sacctRunsArgv(ids), sacctArgv(ids)]);
    expect(scheduler.queries).toBe(3);
    expect(scheduler.sacctFiltered).toBe(false);
    await scheduler.status(ids);
    expect(fake.calls.slice(3)).toEqual([fake.calls[0], sacctArgv(ids)]);
  });

  it("falls back when bash is missing (the login shell's 127) and when the filter's answer is garbled", async () => {
    for (const broken of [
      (): CommandResult => ({ code: 127, stdout: "", stderr: "sh: 1: bash: not found\n" }),
      (plain: CommandResult): CommandResult => {
        const out = throughFilter(plain);
        return { ...out, stdout: out.stdout.replace("~hpcpipe-sacct", "~hpcpipe-sacct|cut") };
      },
      (plain: CommandResult): CommandResult => ({ ...throughFilter(plain), stdout: "~5000|0|x\n" }),
    ]) {
      const fake = cluster(rows, broken);
      const scheduler = new SlurmScheduler(fake.execute);
      expect((await scheduler.status(ids)).get("5000")).toHaveLength(50);
      expect(fake.calls.map(queryName)).toEqual(["squeue", "sacct", "sacct"]);
      expect(fake.calls[2]).toEqual(sacctArgv(ids));
      expect(scheduler.sacctFiltered).toBe(false);
    }
  });

  it("keeps the filter when plain sacct fails the same way (the fault was sacct's)", async () => {
    const calls: string[][] = [];
    const execute: CommandExecutor = async (argv) => {
      calls.push(argv);
      if (argv[0] === "squeue") return { code: 0, stdout: "", stderr: "" };
      const plain = { code: 2, stdout: "", stderr: "sacct: fatal: something new\n" };
      return filteredCommand(argv) !== null ? throughFilter(plain) : plain;
    };
    const scheduler = new SlurmScheduler(execute);
    await expect(scheduler.status(ids)).rejects.toThrow(/something new/);
    expect(calls.map(queryName)).toEqual(["squeue", "sacct", "sacct"]);
    expect(scheduler.sacctFiltered).toBe(true);
  });

  it("passes sacct's own failures through the filter unchanged: accounting disabled (then scontrol), a busy controller (thrown, no fallback)", async () => {
    const disabled = fixture("sacct-accounting-disabled");
    const out = throughFilter({ code: disabled.code, stdout: disabled.stdout, stderr: disabled.stderr });
    expect(out).toMatchObject({ code: disabled.code, stderr: disabled.stderr });
    const calls: string[][] = [];
    const busy: CommandExecutor = async (argv) => {
      calls.push(argv);
      if (argv[0] === "squeue") return { code: 0, stdout: "", stderr: "" };
      return throughFilter({ code: 1, stdout: "", stderr: "sacct: error: Socket timed out on send/recv operation\n" });
    };
    const scheduler = new SlurmScheduler(busy);
    const error = await scheduler.status(ids).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchedulerError);
    expect((error as SchedulerError).transient).toBe(true);
    expect(calls.map(queryName)).toEqual(["squeue", "sacct"]);
    expect(scheduler.sacctFiltered).toBe(true);
    const off = new SlurmScheduler(async (argv) => (argv[0] === "squeue" ? { code: 0, stdout: "", stderr: "" } : argv[0] === "scontrol" ? { code: 0, stdout: "", stderr: "" } : out), { accounting: "on" });
    await expect(off.status(ids)).rejects.toBeInstanceOf(AccountingDisabledError);
  });
});
