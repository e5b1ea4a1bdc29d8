// The scheduler-times query of `hpcpipe report` (src/slurm: sacctTimesArgv, parseSacctTimes,
// SlurmScheduler.jobTimes), against REAL sacct output captured from the test cluster by
// test/report/fixtures/capture-sacct-times.sh (SLURM 22.05.8), plus the real
// "accounting storage is disabled" capture of test/fixtures/slurm.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { timesByJobId } from "../../src/app/report.js";
import {
  AccountingDisabledError,
  parseSacctTimes,
  sacctTimesArgv,
  SchedulerError,
  SlurmScheduler,
  SlurmOutputError,
} from "../../src/slurm/index.js";
import type { CommandExecutor } from "../../src/slurm/index.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const Fixture = z.object({
  name: z.string(),
  note: z.string(),
  synthetic: z.literal(false),
  slurmVersion: z.string(),
  argv: z.array(z.string()),
  code: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
});
type Fixture = z.infer<typeof Fixture>;

function fixture(file: string): Fixture {
  return Fixture.parse(JSON.parse(readFileSync(file, "utf8")));
}
const own = (name: string): Fixture => fixture(path.join(HERE, "fixtures", `${name}.json`));
const ids = (f: Fixture): string[] => (f.argv[f.argv.indexOf("-j") + 1] ?? "").split(",");

function replaying(f: Fixture): { execute: CommandExecutor; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    execute: async (argv) => {
      calls.push(argv);
      return { code: f.code, stdout: f.stdout, stderr: f.stderr };
    },
  };
}

describe("sacctTimesArgv", () => {
  it("is exactly the command the fixtures were captured with (epoch times via SLURM_TIME_FORMAT=%s)", () => {
    for (const name of ["sacct-times-finished", "sacct-times-active", "sacct-times-array-mixed"]) {
      const f = own(name);
      expect(sacctTimesArgv(ids(f)), name).toEqual(f.argv);
    }
  });

  it("refuses anything that is not a job id, and asks for each id once", () => {
    expect(() => sacctTimesArgv(["12;rm -rf ~"])).toThrow(/not a SLURM job id/);
    expect(() => sacctTimesArgv([])).toThrow(/no job ids/);
    expect(sacctTimesArgv(["7", "7", "8"]).at(-1)).toBe("7,8");
  });
});

describe("parseSacctTimes on real output", () => {
  it("a finished run: a plain job, a group array with one failed task, a job cancelled by its dependency", () => {
    const f = own("sacct-times-finished");
    const [first, groupId, last] = ids(f);
    const records = parseSacctTimes(f.stdout);
    expect(records).toHaveLength(5);
    const plain = records.find((r) => r.jobId === first);
    expect(plain).toMatchObject({ arrayJobId: null, taskId: null, state: "COMPLETED", nodes: "vm" });
    expect(plain?.submit).toBeTypeOf("number");
    // Submitted, then eligible, started and ended in that order.
    expect(plain && plain.submit !== null && plain.start !== null && plain.end !== null && plain.submit <= plain.start && plain.start <= plain.end).toBe(true);

    const tasks = records.filter((r) => r.arrayJobId === groupId).sort((a, b) => (a.taskId ?? 0) - (b.taskId ?? 0));
    expect(tasks.map((t) => t.taskId)).toEqual([0, 1, 2]);
    expect(tasks.map((t) => t.state)).toEqual(["COMPLETED", "FAILED", "COMPLETED"]);
    // Each task has its own job id; the last one runs under the array's id.
    expect(new Set(tasks.map((t) => t.jobId)).size).toBe(3);
    expect(tasks[2]?.jobId).toBe(groupId);
    // Waiting for the first job: eligible only after it ended.
    for (const t of tasks) expect(t.eligible ?? 0).toBeGreaterThanOrEqual(plain?.end ?? Infinity);

    const cancelled = records.find((r) => r.jobId === last);
    expect(cancelled).toMatchObject({ state: "CANCELLED", eligible: null, start: null, nodes: null });
    expect(cancelled?.end).toBeTypeOf("number");
    // The id that never existed has no row.
    expect(records.some((r) => r.jobId === "4000000")).toBe(false);
  });

  it("an active run: a running job has no end yet; a pending throttled range expands to its tasks, all without start or node", () => {
    const records = parseSacctTimes(own("sacct-times-active").stdout);
    const [running, ...pending] = records;
    expect(running).toMatchObject({ state: "RUNNING", end: null, nodes: "vm" });
    expect(running?.start).toBeTypeOf("number");
    expect(pending.map((r) => r.taskId)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const r of pending) expect(r).toMatchObject({ state: "PENDING", start: null, end: null, eligible: null, nodes: null, rawId: expect.stringContaining("[") });
  });

  it("an array part way: done tasks with their own ids, the rest as one range under the array id", () => {
    const f = own("sacct-times-array-mixed");
    const records = parseSacctTimes(f.stdout);
    const done = records.filter((r) => r.state === "COMPLETED");
    const waiting = records.filter((r) => r.state === "PENDING");
    expect(done.length).toBeGreaterThanOrEqual(1);
    expect(waiting.length).toBeGreaterThanOrEqual(1);
    for (const r of done) expect(r.jobId).not.toBe(ids(f)[0]);
    for (const r of waiting) expect(r.jobId).toBe(ids(f)[0]);
    // timesByJobId keeps a task's own row over the range that shares the array id.
    const byId = timesByJobId(records);
    for (const r of done) expect(byId.get(r.jobId)?.start).toBe((r.start ?? 0) * 1000);
  });

  it("refuses rows it cannot trust, naming the line", () => {
    // Without SLURM_TIME_FORMAT=%s sacct prints local times without a zone: refused rather than guessed.
    expect(() => parseSacctTimes("24609|24609|COMPLETED|2026-11-28T18:38:58|2026-11-28T18:38:58|2026-11-28T18:38:59|2026-11-28T18:39:00|vm\n")).toThrow(SlurmOutputError);
    expect(() => parseSacctTimes("24609|24609|COMPLETED|1|2|3\n")).toThrow(/6 fields, expected 8/);
    expect(() => parseSacctTimes("24609|x24609|COMPLETED|1|2|3|4|vm\n")).toThrow(/line 1/);
    // Step rows are skipped, blank lines ignored.
    expect(parseSacctTimes("\n24609.batch|24609.batch|COMPLETED|1|2|3|4|vm\n")).toEqual([]);
  });
});

describe("SlurmScheduler.jobTimes", () => {
  it("is ONE query for every job of a run", async () => {
    const f = own("sacct-times-finished");
    const fake = replaying(f);
    const scheduler = new SlurmScheduler(fake.execute);
    const records = await scheduler.jobTimes(ids(f));
    expect(fake.calls).toEqual([f.argv]);
    expect(scheduler.queries).toBe(1);
    expect(records).toHaveLength(5);
  });

  it("without accounting: the typed error (real capture), and later calls do not run sacct again", async () => {
    const disabled = fixture(path.join(HERE, "..", "fixtures", "slurm", "sacct-accounting-disabled.json"));
    const fake = replaying(disabled);
    const scheduler = new SlurmScheduler(fake.execute);
    await expect(scheduler.jobTimes(["5"])).rejects.toBeInstanceOf(AccountingDisabledError);
    await expect(scheduler.jobTimes(["5"])).rejects.toBeInstanceOf(AccountingDisabledError);
    expect(fake.calls).toHaveLength(1);
    await expect(new SlurmScheduler(fake.execute, { accounting: "off" }).jobTimes(["5"])).rejects.toBeInstanceOf(AccountingDisabledError);
    expect(fake.calls).toHaveLength(1);
  });

  it("output it cannot read is a SchedulerError, not a crash", async () => {
    const scheduler = new SlurmScheduler(async () => ({ code: 0, stdout: "garbage\n", stderr: "" }));
    await expect(scheduler.jobTimes(["5"])).rejects.toBeInstanceOf(SchedulerError);
    expect(await scheduler.jobTimes([])).toEqual([]);
  });
});
