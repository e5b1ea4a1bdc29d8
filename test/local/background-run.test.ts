// Issue 11: one lifecycle on every executor. A local run submitted in the background has a detached
// supervisor that starts dependent jobs after the CLI has gone; `status`, `logs`, `cancel`,
// `collect`, `runs`, `report` and `--resume` work on it as on a cluster run. Real processes: the CLI
// compiled into a temp directory (test/support/build-cli.ts), real bash jobs, real signals.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processStartTime } from "../../src/local/process-identity.js";
import { buildCli } from "../support/build-cli.js";

const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let main: string;
let home: string;

function env(): NodeJS.ProcessEnv {
  return { ...process.env, HPCPIPE_HOME: home };
}

async function hpcpipe(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [main, ...args], { cwd: dir, env: env(), timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

function runIdOf(output: string): string {
  const id = /submitted run (\S+):/.exec(output)?.[1];
  if (id === undefined) throw new Error(`no run id in:\n${output}`);
  return id;
}

function record(runId: string): { phase: string; executor?: string; supervisor?: { pid: number; started: string } | null; remote_dir: string } {
  return JSON.parse(readFileSync(path.join(home, "runs", runId, "run.json"), "utf8")) as never;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function writeSpec(name: string, text: string): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, text);
  return file;
}

describe("a local run in the background (detached supervisor, real bash jobs)", { timeout: 300_000 }, () => {
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-bg-"));
    home = path.join(dir, "home");
    mkdirSync(home);
    main = await buildCli(dir);
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the supervisor starts the dependent job after the CLI that submitted it was SIGKILLed, and status, logs, collect, runs and report work on the run", async () => {
    const gate = path.join(dir, "gate-1");
    const spec = writeSpec(
      "chain",
      `name: chain\nsteps:\n  - step: first\n    run: |\n      echo first-out\n      while [ ! -e ${JSON.stringify(gate)} ]; do sleep 0.1; done\n  - step: second\n    run: echo second-out\n`,
    );
    const child = spawn(process.execPath, [main, "submit", spec, "--cluster", "local", "--no-fuse", "--runs-dir", path.join(dir, "runs"), "--wait"], { cwd: dir, env: env(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    await until("the submission", () => /submitted run \S+:/.test(output));
    const runId = runIdOf(output);
    expect(child.kill("SIGKILL")).toBe(true);
    expect(await exited).toBe("SIGKILL");

    const sup = record(runId).supervisor;
    expect(sup?.pid).toBeGreaterThan(0);
    expect(processStartTime(sup?.pid ?? 0)).toBe(sup?.started);
    const running = await hpcpipe("status", runId, "--json");
    expect(running.code).toBe(0);
    expect(JSON.parse(running.stdout)).toMatchObject({ final: false, jobs: [{ state: "RUNNING" }, { state: "PENDING" }] });

    writeFileSync(gate, "");
    await until("the run's end", () => record(runId).phase === "collected");
    // The supervisor records the run collected, then exits: it is gone soon after, not at that instant.
    await until("the supervisor to exit", () => processStartTime(sup?.pid ?? 0) === null, 10_000);

    const watched = await hpcpipe("status", runId, "--watch");
    expect(watched.code).toBe(0);
    const status = JSON.parse((await hpcpipe("status", runId, "--json")).stdout) as { final: boolean; result: { success: boolean }; steps: Record<string, { success: boolean }> };
    expect(status.final).toBe(true);
    expect(status.result.success).toBe(true);
    expect(Object.keys(status.steps).sort()).toEqual(["chain.first", "chain.second"]);

    const logs = await hpcpipe("logs", runId, "second");
    expect(logs).toMatchObject({ code: 0, stdout: "second-out\n" });
    const collected = await hpcpipe("collect", runId, "--json");
    expect(collected.code).toBe(0);
    expect(JSON.parse(collected.stdout)).toMatchObject({ success: true });
    const runs = await hpcpipe("runs", "--json");
    expect(JSON.parse(runs.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ run_id: runId })]));
    const report = await hpcpipe("report", runId, "--out", path.join(dir, "r.html"));
    expect(report.code).toBe(0);
    expect(readFileSync(path.join(dir, "r.html"), "utf8")).toContain("chain.second");
  });

  it("cancel stops the supervisor and its running job; the job ends CANCELLED and the dependent job never runs", async () => {
    const marker = path.join(dir, "second-ran");
    const spec = writeSpec(
      "long",
      `name: long\nsteps:\n  - step: sleeper\n    run: echo $$ > sleeper.pid; sleep 300\n  - step: after\n    run: touch ${JSON.stringify(marker)}\n`,
    );
    const submitted = await hpcpipe("submit", spec, "--cluster", "local", "--no-fuse", "--runs-dir", path.join(dir, "runs"));
    expect(submitted.code).toBe(0);
    const runId = runIdOf(submitted.stdout);
    const runDir = record(runId).remote_dir;
    await until("the job's start", () => existsSync(path.join(runDir, "work", "sleeper.pid")) && readFileSync(path.join(runDir, "work", "sleeper.pid"), "utf8").trim() !== "");
    const jobPid = Number(readFileSync(path.join(runDir, "work", "sleeper.pid"), "utf8").trim());
    expect(processStartTime(jobPid)).not.toBeNull();

    const cancelled = await hpcpipe("cancel", runId);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`cancelled run ${runId}`));
    expect(record(runId).phase).toBe("cancelled");
    expect(processStartTime(jobPid)).toBeNull();
    const status = JSON.parse((await hpcpipe("status", runId, "--json")).stdout) as { final: boolean; jobs: Array<{ state: string; reason: string | null }> };
    expect(status.final).toBe(true);
    expect(status.jobs.map((j) => j.state)).toEqual(["CANCELLED", "CANCELLED"]);
    expect(existsSync(marker)).toBe(false);
    const again = await hpcpipe("cancel", runId);
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toMatch(/has already ended/);
  });

  it("--resume reruns only the map item that failed, in the same run directory, and merges again", async () => {
    const counts = path.join(dir, "counts");
    mkdirSync(counts);
    const fix = path.join(dir, "fixed");
    const spec = writeSpec(
      "flaky",
      `name: flaky\nsteps:\n  - map: each\n    items: [a, b, c]\n    as: item\n    steps:\n      - step: work\n        run: |\n          echo x >> ${JSON.stringify(counts)}/"$item"\n          [ "$item" != b ] || [ -e ${JSON.stringify(fix)} ]\n`,
    );
    const first = await hpcpipe("run", spec, "--runs-dir", path.join(dir, "runs"), "-q", "--json");
    expect(first.code).toBe(4);
    const id = /runs\/flaky\/([^\s/]+) \(/.exec(first.stderr)?.[1];
    expect(id, first.stderr).toBeDefined();
    writeFileSync(fix, "");
    const resumed = await hpcpipe("run", spec, "--runs-dir", path.join(dir, "runs"), "--resume", id as string, "--json");
    expect(resumed.stderr).toMatch(/2 step\(s\) already succeeded; running 1 job\(s\) again/);
    expect(resumed.code, resumed.stderr + resumed.stdout).toBe(0);
    const merged = JSON.parse(resumed.stdout) as { success: boolean; step_states: Record<string, { success: boolean }> };
    expect(merged.success).toBe(true);
    expect(Object.keys(merged.step_states).filter((k) => k.endsWith(".work")).sort()).toEqual(["flaky.each.0.work", "flaky.each.1.work", "flaky.each.2.work"]);
    expect(["a", "b", "c"].map((i) => readFileSync(path.join(counts, i), "utf8").split("\n").filter(Boolean).length)).toEqual([1, 2, 1]);
  });
});
