// SlurmScheduler against the real local SLURM cluster (scripts/cluster/up.sh),
// with an executor that runs each argv as a local child process (no shell).
// Runs only when the vitest global setup found the cluster (HPCPIPE_E2E=1).
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  PollInterval,
  SlurmScheduler,
  isFinal,
  parseSacctAnswer,
  parseSacctRunsAnswer,
  pollPolicy,
  sacctArgv,
  sacctRunsArgv,
  statusFingerprint,
  type CommandExecutor,
  type JobStatusMap,
  type SbatchOptions,
} from "../../src/slurm/index.js";

const enabled = process.env.HPCPIPE_E2E === "1";

const runLocally: CommandExecutor = (argv) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      reject(new Error("empty argv"));
      return;
    }
    execFile(file, args, { encoding: "utf8", timeout: 20_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") {
        reject(error); // could not start it, or killed by the timeout
        return;
      }
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!enabled)("SlurmScheduler on the local SLURM cluster", { timeout: 60_000 }, () => {
  let scratch: string;
  let partition: string;
  const submitted: string[] = [];
  let scheduler: SlurmScheduler;

  function script(name: string, body: string): string {
    const file = path.join(scratch, `${name}.sh`);
    writeFileSync(file, `#!/bin/bash\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  async function submit(name: string, body: string, extra: Partial<SbatchOptions> = {}): Promise<string> {
    const id = await scheduler.submit({
      script: script(name, body),
      jobName: `hpcpipe-e2e-${name}`,
      comment: "hpcpipe:e2e-slurm-scheduler",
      partition,
      output: "/dev/null",
      chdir: scratch,
      ...extra,
    });
    submitted.push(id);
    return id;
  }

  // Polls as the tool will: one status call per poll, backing off, until every task is final.
  async function waitUntilFinal(ids: string[], timeoutMs = 30_000): Promise<{ status: JobStatusMap; polls: number }> {
    const interval = new PollInterval(pollPolicy({ initialMs: 200, maxMs: 1_000 }));
    const deadline = Date.now() + timeoutMs;
    let previous = "";
    for (let polls = 1; ; polls += 1) {
      const status = await scheduler.status(ids);
      const tasks = [...status.values()].flat();
      if (tasks.every((task) => isFinal(task.state))) return { status, polls };
      if (Date.now() > deadline) throw new Error(`not final after ${timeoutMs} ms: ${statusFingerprint(status)}`);
      const fingerprint = statusFingerprint(status);
      await sleep(interval.next(fingerprint !== previous));
      previous = fingerprint;
    }
  }

  beforeAll(() => {
    const facts = inject("cluster");
    partition = facts.partition;
    scheduler = new SlurmScheduler(runLocally, { accounting: facts.accounting ? "auto" : "off" });
    scratch = mkdtempSync(path.join(tmpdir(), "hpcpipe-slurm-e2e-"));
    chmodSync(scratch, 0o755);
  });

  afterAll(async () => {
    if (scheduler && submitted.length > 0) await scheduler.cancel(submitted).catch(() => undefined);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("reports ok, failed and dependent jobs as COMPLETED, FAILED and CANCELLED DependencyNeverSatisfied, one query per poll", async () => {
    const ok = await submit("ok", "true");
    const fail = await submit("fail", "exit 3");
    const dependent = await submit("dependent", "true", { dependencies: [{ type: "afterok", jobIds: [fail] }] });
    const array = await submit("array", "true", { array: "0-3" });
    const before = scheduler.queries;

    const { status, polls } = await waitUntilFinal([ok, fail, dependent, array]);

    expect(scheduler.queries - before).toBe(polls);
    expect(status.get(ok)).toEqual([expect.objectContaining({ state: "COMPLETED", source: "squeue" })]);
    expect(status.get(fail)).toEqual([expect.objectContaining({ state: "FAILED", reason: "NonZeroExitCode" })]);
    expect(status.get(dependent)).toEqual([
      expect.objectContaining({ state: "CANCELLED", reason: "DependencyNeverSatisfied", dependency: `afterok:${fail}(failed)` }),
    ]);
    expect(status.get(array)?.map((task) => [task.taskId, task.state])).toEqual(
      expect.arrayContaining([
        [0, "COMPLETED"],
        [1, "COMPLETED"],
        [2, "COMPLETED"],
        [3, "COMPLETED"],
      ]),
    );
    expect(status.get(ok)?.[0]?.comment).toBe("hpcpipe:e2e-slurm-scheduler");
  });

  it("reads sacct through the cluster-side filter as plain sacct: the same tasks, a shorter answer", async ({ skip }) => {
    if (!inject("cluster").accounting) skip();
    const array = await submit("filtered", "exit $((SLURM_ARRAY_TASK_ID % 3 == 2))", { array: "0-11" });
    const plain = await submit("filtered-plain", "true");
    await waitUntilFinal([array, plain]);
    // sacct lags squeue: ask both ways until the filtered and the plain answer list every task, in the same state.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [filtered, direct] = await Promise.all([runLocally(sacctRunsArgv([array, plain])), runLocally(sacctArgv([array, plain]))]);
      expect(filtered.code, filtered.stderr).toBe(0);
      expect(direct.code, direct.stderr).toBe(0);
      const runs = parseSacctRunsAnswer(filtered.stdout).records();
      const rows = parseSacctAnswer(direct.stdout).records();
      if (rows.length === 13 && rows.every((r) => isFinal(r.state)) && JSON.stringify(runs) === JSON.stringify(rows)) {
        expect(runs).toEqual(rows);
        expect(filtered.stdout.trimEnd().split("\n").at(-1)).toBe("~hpcpipe-sacct|1|13");
        expect(runs.filter((r) => r.state === "FAILED").map((r) => r.taskId)).toEqual([2, 5, 8, 11]);
        break;
      }
      if (Date.now() > deadline) expect({ tasks: rows.length, final: rows.every((r) => isFinal(r.state)), runs }).toEqual({ tasks: 13, final: true, runs: rows });
      await sleep(500);
    }
  });

  it("cancels running and pending jobs with one scancel", async () => {
    const running = await submit("sleeper", "sleep 60");
    const held = await submit("held", "true", { extra: ["--hold"] });
    await sleep(500);

    await scheduler.cancel([running, held]);
    const { status } = await waitUntilFinal([running, held], 20_000);

    expect(status.get(running)?.[0]?.state).toBe("CANCELLED");
    expect(status.get(held)?.[0]).toMatchObject({ state: "CANCELLED", reason: "JobHeldUser" });
  });

  it("reports an id SLURM never had as UNKNOWN after one squeue and one sacct (or scontrol)", async () => {
    const before = scheduler.queries;
    const status = await scheduler.status(["4000000"]);
    expect(status.get("4000000")).toEqual([expect.objectContaining({ state: "UNKNOWN", source: "none" })]);
    expect(scheduler.queries - before).toBe(2);
  });
});
