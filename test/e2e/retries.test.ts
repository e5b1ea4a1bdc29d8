// Retries on the real test cluster: a retry controller job (afterany the map) resubmits the failed items
// on the cluster, escalates a time limit, never excludes every node, and the step after the map waits on
// it (its dependency moved with scontrol update), also when the submitting CLI is killed right after submit.
import { execFile, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { sleep, until } from "../faults/env.js";
import { e2eSkipped, readRemote, REPO, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface ResultJson {
  success: boolean;
  step_states: Record<string, { success: boolean; error: string | null; meta: Record<string, unknown> }>;
}
interface StatusJson {
  final: boolean;
  jobs: Array<{ job: string; state: string; slurmJobId: string | null; final: boolean }>;
}

/** A map of three items; item b fails (exit 3) in its first FAILS runs; `after` runs once the map has succeeded. */
function flakySpec(name: string, fails: number, fields: string): string {
  return `name: ${name}
steps:
  - map: each
    items: [a, b, c]
    as: item
${fields
  .split("\n")
  .map((l) => `    ${l}`)
  .join("\n")}
    steps:
      - step: work
        requires: [item]
        cache: false
        run: |
          echo "attempt $HPCPIPE_ATTEMPT" >> "$HPCPIPE_OUT_DIR/runs-$item"
          n=$(wc -l < "$HPCPIPE_OUT_DIR/runs-$item")
          if [ "$item" = b ] && [ "$n" -le ${fails} ]; then echo "b fails in run $n" >&2; exit 3; fi
  - step: after
    cache: false
    run: echo ran >> "$HPCPIPE_OUT_DIR/after"
`;
}

describe.skipIf(e2eSkipped)("retries on the test cluster", { timeout: 400_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let remote: SshTransport;

  beforeAll(async () => {
    env = workflowEnv("retries");
    cluster = env.config("testcluster");
    // The partition's limits bound an escalated time limit (3 minutes here).
    appendFileSync(cluster, `partitions:\n  ${env.facts.partition}:\n    max_time: "3:00"\n`);
    remote = await env.remote();
    await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO });
  }, 300_000);
  afterAll(async () => {
    await env?.cleanup();
  });

  const remoteDir = async (runId: string): Promise<string> => (await env.record(runId)).remote_dir;

  it("an item that fails twice and then succeeds (retries: 2) ends ok with 3 attempts, and the step after the map runs", async () => {
    const spec = env.spec("flaky", flakySpec("flaky", 2, "retries: 2"));
    const run = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(run.code, run.stderr).toBe(0);
    const runId = runIdFrom(run.stderr + run.stdout);
    const result = JSON.parse(run.stdout) as ResultJson;
    const b = result.step_states["flaky.each.1.work"];
    expect(b?.success).toBe(true);
    expect(b?.meta.attempt).toBe(3);
    const attempts = b?.meta.attempts as Array<Record<string, unknown>>;
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(attempts.slice(0, 2).map((a) => a.retried_because)).toEqual(["exit 3", "exit 3"]);
    expect(result.step_states["flaky.each.0.work"]?.meta.attempts).toBeUndefined();
    expect(result.step_states["flaky.after"]?.success).toBe(true);
    const dir = await remoteDir(runId);
    expect(await readRemote(remote, dir, "out/runs-b")).toBe("attempt 1\nattempt 2\nattempt 3\n");
    expect(await readRemote(remote, dir, "out/runs-a")).toBe("attempt 1\n");
    expect(await readRemote(remote, dir, "out/after")).toBe("ran\n");
    // Every attempt kept its own state and log; the state in states/ is the last attempt's.
    expect(await readRemote(remote, dir, "attempts/1/logs/flaky.each.1.work.err")).toContain("b fails in run 1");
    expect(JSON.parse((await readRemote(remote, dir, "attempts/2/states/flaky.each.1.work.json")) ?? "{}")).toMatchObject({ success: false, attempt: 2, exit_code: 3 });
    // status knows the retries and controllers the cluster submitted.
    const status = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
    expect(status.final).toBe(true);
    expect(status.jobs.map((j) => j.job)).toEqual(expect.arrayContaining(["j000.r2", "j001.r2", "j000.r3", "j001.r3"]));
  });

  it("when the retries run out, the run fails as without retries (exit 4, the step after not run), with the attempts shown", async () => {
    const spec = env.spec("hopeless", flakySpec("hopeless", 99, "retries: 1\nretry_on: [3, TIMEOUT]"));
    const run = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(run.code, run.stderr).toBe(4);
    const result = JSON.parse(run.stdout) as ResultJson;
    expect(result.success).toBe(false);
    const b = result.step_states["hopeless.each.1.work"];
    expect(b?.success).toBe(false);
    expect((b?.meta.attempts as Array<Record<string, unknown>>).map((a) => a.attempt)).toEqual([1, 2]);
    expect((b?.meta.attempts as Array<Record<string, unknown>>)[1]?.failed_for_good).toMatch(/exit 3 \(retries used up after 2 attempts\)/);
    expect(result.step_states["hopeless.after"]?.meta).toMatchObject({ not_run: true });
    expect(result.step_states["hopeless.each.0.work"]?.success).toBe(true);
  });

  it("a plain step with retries is retried as a job of its own, and the step after it runs", async () => {
    const spec = env.spec(
      "single",
      `name: single
steps:
  - step: flaky
    retries: 1
    cache: false
    run: |
      echo "attempt $HPCPIPE_ATTEMPT" >> "$HPCPIPE_OUT_DIR/runs"
      [ "$HPCPIPE_ATTEMPT" -gt 1 ] || exit 7
  - step: after
    cache: false
    run: echo ran > "$HPCPIPE_OUT_DIR/after"
`,
    );
    const run = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as ResultJson;
    expect((result.step_states["single.flaky"]?.meta.attempts as Array<Record<string, unknown>>).map((a) => [a.attempt, a.retried_because ?? null])).toEqual([
      [1, "exit 7"],
      [2, null],
    ]);
    expect(result.step_states["single.after"]?.success).toBe(true);
  });

  it("a packed task holding a failed item reruns only that item: its done items are skipped", async () => {
    const spec = env.spec("packed", flakySpec("packed", 1, "items_per_task: 2\nretries: 1"));
    const run = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(run.code, run.stderr).toBe(0);
    const runId = runIdFrom(run.stderr + run.stdout);
    const result = JSON.parse(run.stdout) as ResultJson;
    expect(result.step_states["packed.each.1.work"]?.meta.attempt).toBe(2);
    expect(result.step_states["packed.each.0.work"]?.meta.attempt).toBe(1);
    const dir = await remoteDir(runId);
    // Item a shares task 0 with b: the retry of task 0 skipped it (done), and task 1 (item c) was not retried.
    expect(await readRemote(remote, dir, "out/runs-a")).toBe("attempt 1\n");
    expect(await readRemote(remote, dir, "out/runs-b")).toBe("attempt 1\nattempt 2\n");
    expect(await readRemote(remote, dir, "out/runs-c")).toBe("attempt 1\n");
    expect(JSON.parse((await readRemote(remote, dir, "retries/j000.2.json")) ?? "{}")).toMatchObject({ tasks: [0] });
  });

  it("after the submitting CLI is killed (SIGKILL) right after submit, the retries still happen on the cluster", async () => {
    const spec = env.spec("orphan", flakySpec("orphan", 2, "retries: 2"));
    const child = spawn(process.execPath, [path.join(REPO, "dist/cli/main.js"), "submit", spec, "--cluster", cluster, "--wait"], {
      cwd: env.dir,
      env: { ...process.env, HPCPIPE_HOME: env.home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const runId = await until("the run id", () => Promise.resolve(/submitted run (\S+):/.exec(output)?.[1]), 120_000, 50);
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    // Nothing on this machine is left to do the retries: the cluster's controllers do them.
    await until("the run to be final", async () => ((JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson).final ? true : undefined), 180_000, 3000);
    const collected = await cli("collect", runId, "--json");
    expect(collected.code, collected.stderr).toBe(0);
    const result = JSON.parse(collected.stdout) as ResultJson;
    expect(result.step_states["orphan.each.1.work"]?.meta.attempt).toBe(3);
    expect(result.step_states["orphan.after"]?.success).toBe(true);
  });

  it("an item stopped at its time limit is retried with twice the time, bounded by the partition's max_time, and succeeds", async () => {
    // 2 minutes; the wrapper gets USR1 60 s before the limit (signal_grace_s), records TIMEOUT and the job ends.
    const spec = env.spec(
      "slow",
      `name: slow
steps:
  - map: each
    items: [a]
    retries: 1
    retry_on: [TIMEOUT]
    on_timeout: { time: x2 }
    steps:
      - step: work
        cache: false
        resources: { time: "2:00" }
        run: |
          echo "attempt $HPCPIPE_ATTEMPT" >> "$HPCPIPE_OUT_DIR/runs"
          if [ "$HPCPIPE_ATTEMPT" = 1 ]; then sleep 600; fi
`,
    );
    const run = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(run.code, run.stderr).toBe(0);
    const runId = runIdFrom(run.stderr + run.stdout);
    const result = JSON.parse(run.stdout) as ResultJson;
    const attempts = result.step_states["slow.each.0.work"]?.meta.attempts as Array<Record<string, unknown>>;
    expect(attempts.map((a) => [a.attempt, a.retried_because ?? null, a.time_s ?? null])).toEqual([
      [1, "TIMEOUT", null],
      [2, null, 180], // x2 of 2 minutes is 4, bounded by the partition's 3
    ]);
    const retryId = String(attempts[1]?.slurm_job_id);
    const limit = await remote.exec(["scontrol", "show", "job", "-o", retryId]);
    expect(limit.stdout).toMatch(/TimeLimit=00:03:00/);
    expect(await readRemote(remote, await remoteDir(runId), "out/runs")).toBe("attempt 1\nattempt 2\n");
  });

  it("a faked node fault (the controller's test-only hook) is retried, and the partition's only node is never excluded", async () => {
    // The hook file is written by a step before the map: task 1 of attempt 1 of the map's job (j001) is taken as NODE_FAIL.
    const spec = env.spec(
      "nodefail",
      `name: nodefail
steps:
  - step: hook
    cache: false
    run: mkdir -p "$HPCPIPE_RUN_DIR/retries" && echo "j001 1 1 NODE_FAIL" > "$HPCPIPE_RUN_DIR/retries/fake-verdicts"
${flakySpec("x", 1, "retries: 1\nretry_on: [NODE_FAIL]").split("\n").slice(2).join("\n")}`,
    );
    const run = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as ResultJson;
    const attempts = result.step_states["nodefail.each.1.work"]?.meta.attempts as Array<Record<string, unknown>>;
    expect(attempts[0]?.retried_because).toBe("NODE_FAIL");
    expect(attempts[1]?.exclude).toEqual([]);
  });

  it("cancel stops the retries and controllers the cluster submitted, with the run's own jobs", async () => {
    // Item b fails at once, then its retry sleeps: cancel it while the retry runs.
    const spec = env.spec(
      "cancelled",
      `name: cancelled
steps:
  - map: each
    items: [a, b]
    as: item
    retries: 2
    steps:
      - step: work
        requires: [item]
        cache: false
        run: |
          if [ "$item" = b ]; then [ "$HPCPIPE_ATTEMPT" = 1 ] && exit 3; sleep 300; fi
  - step: after
    run: echo ran
`,
    );
    const submitted = await cli("submit", spec, "--cluster", cluster);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr + submitted.stdout);
    const retry = await until(
      "the retry to run",
      async () => (JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson).jobs.find((j) => j.job === "j000.r2" && j.state === "RUNNING"),
      120_000,
      2000,
    );
    const cancelled = await cli("cancel", runId);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout + cancelled.stderr).toContain(String(retry.slurmJobId));
    await sleep(2000);
    const left = await remote.exec(["squeue", "--me", "-h", "-t", "PENDING,RUNNING", "-o", "%i|%k"]);
    expect(left.stdout.split("\n").filter((l) => l.endsWith(`|hpcpipe:${runId}`))).toEqual([]);
  });
});
