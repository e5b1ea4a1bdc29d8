// Issue 6, "Faults to survive": the CLI process itself dies or is interrupted, on the real test
// cluster. The built CLI (`node dist/cli/main.js`, compiled in beforeAll) runs as a child process
// and gets a real SIGKILL in the middle of its submit script (a shim sbatch, first in the submit
// script's PATH through path_prepend, sleeps in its 2nd call to give the moment), or a real SIGINT
// during `submit --wait`, or a Ctrl-C typed on its terminal (a pseudo-terminal from `script`), where
// it asks whether to cancel. (The in-process Ctrl-C tests are in test/e2e/workflow.test.ts: "Ctrl-C
// during submit --wait ..."; these send the signal to a real process and check its exit status.)
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shQuote } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { COUNTED_STEPS, countingSpec, executions, sleep, taggedJobs, until, writeFaultConfig } from "../faults/env.js";
import { SbatchShim } from "../faults/sbatch-shim.js";
import { e2eSkipped, REPO, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface StatusJson {
  phase: string;
  final: boolean;
  jobs: Array<{ job: string; state: string; reason: string | null }>;
}

interface Child {
  process: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

describe.skipIf(e2eSkipped)("the CLI is killed or interrupted (real processes, real signals)", { timeout: 240_000 }, () => {
  let env: WorkflowEnv;
  let shim: SbatchShim;
  let remote: SshTransport;
  let cluster: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    env = workflowEnv("faults-kill");
    remote = await env.remote();
    shim = await SbatchShim.install(remote);
    cluster = writeFaultConfig(env.dir, "withshim", env.facts, env.workdir, { pathPrepend: [shim.bin] });
    await promisify(execFile)("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO });
  }, 300_000);
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await shim?.remove();
    await env?.cleanup();
  });

  /** Runs the built CLI as a child process with this file's HPCPIPE_HOME. */
  function hpcpipe(...args: string[]): Child {
    const child = spawn(process.execPath, [path.join(REPO, "dist/cli/main.js"), ...args], {
      cwd: env.dir,
      env: { ...process.env, HPCPIPE_HOME: env.home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
    );
    return { process: child, exit };
  }

  /** Starts a submission and SIGKILLs the CLI while its submit script waits in the 2nd sbatch; returns the run id. */
  async function killedMidSubmission(name: string): Promise<{ runId: string; spec: string }> {
    const spec = env.spec(name, countingSpec(name));
    await shim.configure({ delayAt: 2, delayS: 3 });
    const child = hpcpipe("submit", spec, "--cluster", cluster);
    await until("the 2nd sbatch call", async () => ((await shim.delaying()) ? true : undefined), 60_000, 50);
    child.process.kill("SIGKILL");
    const ended = await child.exit;
    expect(ended.signal).toBe("SIGKILL");
    const [record] = (await env.store().list()).records.filter((r) => r.pipeline === name);
    expect(record?.phase).toBe("submitting");
    expect(record?.jobs).toEqual({});
    await shim.configure({});
    return { runId: record?.run_id ?? "", spec };
  }

  it("SIGKILL during the submit script: status, cancel and collect work afterwards, the run reconciled from the cluster (jobs tagged with the run id)", async () => {
    const { runId } = await killedMidSubmission("killed");
    // The script on the cluster outlived the CLI until its next write: jobs 1 and 2 are in, job 3 is not.
    const status = await cli("status", runId, "--json");
    expect(status.code, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as StatusJson;
    expect(parsed.phase).toBe("submitted");
    expect(parsed.jobs.find((j) => j.job === "j002")?.state).toBe("NOT_SUBMITTED");
    const record = await env.record(runId);
    expect(Object.keys(record.jobs).sort()).toEqual(["j000", "j001"]);
    expect(record.error).toMatch(/never submitted: j002/);
    const tagged = await taggedJobs(remote, runId);
    expect(Object.fromEntries([...tagged].map(([job, ids]) => [job, ids]))).toEqual({ j000: [record.jobs.j000], j001: [record.jobs.j001] });

    const cancelled = await cli("cancel", runId);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain("scancel of 2 job(s)");
    await until("the run to be final", async () => ((JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson).final ? true : undefined), 60_000, 300);
    const collected = await cli("collect", runId, "--json");
    expect(collected.code).toBe(4);
    const state = JSON.parse(collected.stdout) as { step_states: Record<string, { success: boolean; meta: Record<string, unknown> }> };
    expect(state.step_states["killed.c"]?.meta).toMatchObject({ not_run: true });
    expect((await env.record(runId)).phase).toBe("cancelled");
  });

  it("SIGKILL during the submit script: resubmitting does not duplicate the jobs that did get submitted", async () => {
    const { runId, spec } = await killedMidSubmission("killed_resume");
    // The first resume reconciles; while the reconciled jobs still run it refuses (exit 64) and says why.
    let resumed = await cli("submit", spec, "--cluster", cluster, "--resume", runId, "--wait");
    for (let i = 0; resumed.code === 64 && /still has jobs waiting or running/.test(resumed.stderr); i++) {
      expect(i).toBeLessThan(60);
      await sleep(1_000);
      resumed = await cli("submit", spec, "--cluster", cluster, "--resume", runId, "--wait");
    }
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resubmitting 1 job\(s\)/);
    const record = await env.record(runId);
    expect(record.phase).toBe("collected");
    expect(record.attempt).toBe(2);
    expect(Object.keys(record.history?.[0]?.jobs ?? {}).sort()).toEqual(["j000", "j001"]);
    // Each plan job went to SLURM once in all; each step ran once.
    const tagged = await taggedJobs(remote, runId);
    expect([...tagged.keys()].sort()).toEqual(["j000", "j001", "j002"]);
    for (const ids of tagged.values()) expect(ids).toHaveLength(1);
    expect(await shim.calls()).toHaveLength(1);
    expect(await executions(remote, record.remote_dir, COUNTED_STEPS)).toEqual({ a: 1, g1: 1, g2: 1, c: 1 });
  });

  /** Starts `submit --wait` with a long first step and sends SIGINT once its jobs are recorded. */
  async function interrupted(name: string, policy: "cancel" | "leave"): Promise<{ runId: string; code: number | null; stderr: string }> {
    const spec = env.spec(name, countingSpec(name, { sleepA: 120 }));
    await shim.configure({});
    const child = hpcpipe("submit", spec, "--cluster", cluster, "--wait", "--on-interrupt", policy);
    const runId = await until(
      "the run's jobs to be recorded",
      async () => (await env.store().list()).records.find((r) => r.pipeline === name && r.phase === "submitted")?.run_id,
      60_000,
      100,
    );
    // Past the submission, into the watch.
    await sleep(500);
    child.process.kill("SIGINT");
    const ended = await child.exit;
    return { runId, code: ended.code, stderr: ended.stderr };
  }

  it("SIGINT during submit --wait --on-interrupt cancel: exit 130, every job cancelled, the record says cancelled", async () => {
    const { runId, code, stderr } = await interrupted("sigint_cancel", "cancel");
    expect(code).toBe(130);
    expect(stderr).toContain(`interrupted; cancelled run ${runId}`);
    expect((await env.record(runId)).phase).toBe("cancelled");
    const status = await until("the run to be final", async () => {
      const s = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
      return s.final ? s : undefined;
    });
    expect(status.jobs.every((j) => j.state === "CANCELLED")).toBe(true);
  });

  it("Ctrl-C during submit --wait on a terminal asks whether to cancel; answering y cancels every job: exit 130", async () => {
    const name = "sigint_ask";
    const spec = env.spec(name, countingSpec(name, { sleepA: 120 }));
    await shim.configure({});
    // `script` gives the CLI a pseudo-terminal: stdin and stderr are TTYs, so the default policy is to ask.
    const command = [process.execPath, path.join(REPO, "dist/cli/main.js"), "submit", spec, "--cluster", cluster, "--wait"].map(shQuote).join(" ");
    const child = spawn("script", ["-q", "-e", "-c", command, "/dev/null"], { cwd: env.dir, env: { ...process.env, HPCPIPE_HOME: env.home }, stdio: ["pipe", "pipe", "pipe"] });
    children.push(child);
    let screen = "";
    child.stdout.on("data", (chunk: Buffer) => (screen += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const runId = await until(
      "the run's jobs to be recorded",
      async () => (await env.store().list()).records.find((r) => r.pipeline === name && r.phase === "submitted")?.run_id,
      60_000,
      100,
    );
    await sleep(500);
    child.stdin.write("\x03"); // Ctrl-C, turned into SIGINT by the terminal
    await until("the question", async () => (screen.includes(`Cancel the 3 job(s) of run ${runId}`) ? true : undefined), 30_000, 100);
    child.stdin.write("y\r");
    expect(await exit).toBe(130);
    expect(screen).toContain(`interrupted; cancelled run ${runId}`);
    expect((await env.record(runId)).phase).toBe("cancelled");
  });

  it("SIGINT during submit --wait --on-interrupt leave: exit 130, the jobs go on, the record says submitted", async () => {
    const { runId, code, stderr } = await interrupted("sigint_leave", "leave");
    expect(code).toBe(130);
    expect(stderr).toContain(`hpcpipe cancel ${runId}`);
    expect((await env.record(runId)).phase).toBe("submitted");
    const status = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
    expect(status.final).toBe(false);
    expect((await cli("cancel", runId)).code).toBe(0);
  });
});
