// Issue 6: several runs submitted at once, by separate CLI processes, to the same cluster and the
// SAME HPCPIPE_HOME (the load figure with 20 is bench/load.ts, section "concurrent"). Real processes
// (the CLI compiled into a private directory by test/support/build-cli.ts, so no shared dist/ is
// raced), the real test cluster (scripts/cluster/up.sh), real sshd. Each run's two jobs publish the
// run id they ran under (from their run directory) and the tag their process was given: every
// record, plan, result and job must belong to its own run, and every run must be collected.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OWNER_PIPELINE, ownerSpec, ownerValue } from "../../bench/lib/specs.js";
import type { SshTransport } from "../../src/transport/index.js";
import { taggedJobs } from "../faults/env.js";
import { buildCli } from "../support/build-cli.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const PROCESSES = 7;

interface StateJson {
  success: boolean;
  meta: Record<string, unknown>;
  step_states: Record<string, { success: boolean; outputs: { published?: Record<string, string> } }>;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(e2eSkipped)(`${PROCESSES} CLI processes submitting at once into one HPCPIPE_HOME (real processes, the real test cluster)`, { timeout: 240_000 }, () => {
  let env: WorkflowEnv;
  let remote: SshTransport;
  let cluster: string;
  let buildDir: string;
  let main: string;

  beforeAll(async () => {
    env = workflowEnv("concurrent");
    remote = await env.remote();
    cluster = env.config("testcluster");
    buildDir = mkdtempSync(path.join(tmpdir(), "hpcpipe-concurrent-cli-"));
    main = await buildCli(buildDir);
  }, 300_000);
  afterAll(async () => {
    await env?.cleanup();
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  });

  function hpcpipe(args: string[]): Promise<Exit> {
    const child = spawn(process.execPath, [main, ...args], { cwd: env.dir, env: { ...process.env, HPCPIPE_HOME: env.home }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  it("every run gets its own id, record, plan, SLURM jobs (tagged with its id), result and outputs, and all are collected", async () => {
    const spec = env.spec("owner", ownerSpec());
    const tags = Array.from({ length: PROCESSES }, (_, k) => `t${k}`);
    const exits = await Promise.all(tags.map((tag) => hpcpipe(["submit", spec, "--cluster", cluster, "--set", `tag=${tag}`, "--wait", "--json", "--on-interrupt", "cancel"])));
    for (const [k, e] of exits.entries()) expect(e.code, `process ${tags[k]}: ${e.stderr}`).toBe(0);

    const runIds = exits.map((e) => runIdFrom(e.stderr));
    expect(new Set(runIds).size).toBe(PROCESSES);

    // The store holds exactly these runs, every record readable and collected.
    const { records, problems } = await env.store().list();
    expect(problems).toEqual([]);
    expect(records.filter((r) => r.pipeline === OWNER_PIPELINE).map((r) => r.run_id).sort()).toEqual([...runIds].sort());
    expect(records.every((r) => r.phase === "collected")).toBe(true);

    const allJobs: string[] = [];
    for (const [k, runId] of runIds.entries()) {
      const tag = tags[k] ?? "";
      const exit = exits[k] as Exit;
      const record = await env.record(runId);
      expect(record.run_id).toBe(runId);
      expect(record.remote_dir.endsWith(`/${OWNER_PIPELINE}/${runId}`)).toBe(true);
      expect(Object.keys(record.jobs)).toEqual(["j000", "j001"]);
      allJobs.push(...Object.values(record.jobs));
      const plan = await env.store().readPlan(runId);
      expect(plan.runId).toBe(runId);

      // On the cluster, the jobs tagged hpcpipe:<run id> are exactly the recorded ones.
      const tagged = await taggedJobs(remote, runId);
      expect(Object.fromEntries(tagged)).toEqual({ j000: [record.jobs.j000], j001: [record.jobs.j001] });

      // The result this process printed is its own run's, and so is the stored one.
      const state = JSON.parse(exit.stdout) as StateJson;
      expect(state.success).toBe(true);
      expect(state.meta.run_id).toBe(runId);
      expect(state.step_states[`${OWNER_PIPELINE}.whoami`]?.outputs.published?.owner).toBe(ownerValue(runId, tag));
      expect(state.step_states[`${OWNER_PIPELINE}.check`]?.outputs.published?.checked).toBe(ownerValue(runId, tag));
      const stored = JSON.parse(readFileSync(path.join(env.home, "runs", runId, "result.json"), "utf8")) as StateJson;
      expect(stored).toEqual(state);
      // No write was left half done.
      expect(readdirSync(path.join(env.home, "runs", runId)).filter((f) => f.startsWith("pipeline_"))).toEqual([]);
    }
    // No SLURM job belongs to two runs.
    expect(new Set(allJobs).size).toBe(PROCESSES * 2);
  });
});
