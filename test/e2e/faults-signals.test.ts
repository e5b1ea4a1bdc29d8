// Issue 6, "Faults to survive": a job is killed from outside hpcpipe during a step, on the real
// test cluster: by the user's own scancel (one array task), by a signal the wrapper can trap
// (scancel --signal=TERM --full; scancel --signal=KILL, which SLURM turns into TERM then KILL), and
// by one it cannot (kill -KILL of the job's processes, as the OOM killer does). The state file
// written by the wrapper's trap says so, or, where no trap could run, the merged state carries
// SLURM's state and reason. (`hpcpipe cancel` mid-run is tested in test/e2e/workflow.test.ts, the
// time limit in test/e2e/workflow-timeout.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { sleep, until } from "../faults/env.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface StepJson {
  success: boolean;
  failure: string | null;
  error: string | null;
  meta: Record<string, unknown>;
}
interface StateJson {
  success: boolean;
  step_states: Record<string, StepJson>;
}
interface StatusJson {
  final: boolean;
  jobs: Array<{ job: string; state: string; reason: string | null; tasks: Array<{ task: number; state: string; reason: string | null }> }>;
}

describe.skipIf(e2eSkipped)("a job killed from outside during a step", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let remote: SshTransport;
  let cluster: string;

  beforeAll(async () => {
    env = workflowEnv("faults-signals");
    remote = await env.remote();
    cluster = env.config("testcluster");
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  /** Submits, and waits until `step`'s command runs (its log exists: the wrapper's traps are set). */
  async function runningStep(name: string, yaml: string, step: string, task?: number): Promise<{ runId: string; jobs: Record<string, string> }> {
    const submitted = await cli("submit", env.spec(name, yaml), "--cluster", cluster);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stdout);
    const args = task === undefined ? ["logs", runId, step] : ["logs", runId, step, "--task", String(task)];
    await until(`the log of ${step}`, async () => ((await cli(...args)).code === 0 ? true : undefined), 60_000, 200);
    await sleep(300);
    return { runId, jobs: (await env.record(runId)).jobs };
  }

  async function finalCollect(runId: string): Promise<{ code: number; state: StateJson; status: StatusJson }> {
    const status = await until(
      "every job to end",
      async () => {
        const s = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
        return s.final ? s : undefined;
      },
      90_000,
      300,
    );
    const collected = await cli("collect", runId, "--json");
    return { code: collected.code, state: JSON.parse(collected.stdout) as StateJson, status };
  }

  const CHAIN = (name: string): string =>
    [`name: ${name}`, "steps:", "  - step: long", "    run: sleep 120", "    fuse: false", "  - step: after", "    run: echo never", ""].join("\n");

  it("the user's own scancel of one array task: that task's state (written by the trap) says CANCELLED, its siblings succeed", async () => {
    const yaml = [
      "name: sigtask",
      "steps:",
      "  - group: g",
      "    parallel: true",
      "    steps:",
      "      - step: quick",
      "        run: echo ok",
      "      - step: slow",
      "        run: sleep 120",
      "      - step: quick2",
      "        run: echo ok",
      "",
    ].join("\n");
    const { runId, jobs } = await runningStep("sigtask", yaml, "g.slow", 1);
    const scancel = await remote.exec(["scancel", `${jobs.j000}_1`]);
    expect(scancel.code, scancel.stderr).toBe(0);
    const { code, state, status } = await finalCollect(runId);
    expect(code).toBe(4);
    expect(status.jobs[0]?.tasks.map((t) => t.state)).toEqual(["COMPLETED", "CANCELLED", "COMPLETED"]);
    const slow = state.step_states["sigtask.g.slow"];
    expect(slow).toMatchObject({ success: false, failure: "STEP_FAILED", error: "killed by SIGTERM: the job ended CANCELLED" });
    expect(slow?.meta).toMatchObject({ reason: "CANCELLED", slurm_state: "CANCELLED" });
    expect(slow?.meta.not_run).toBeUndefined();
    expect(state.step_states["sigtask.g.quick"]?.success).toBe(true);
    expect(state.step_states["sigtask.g.quick2"]?.success).toBe(true);
    // hpcpipe did not cancel the run: its record still says submitted/collected, not cancelled.
    expect((await env.record(runId)).phase).toBe("collected");
  });

  it("SIGTERM sent to the job (scancel --signal=TERM --full): the trap writes the state, and SLURM's verdict is merged in", async () => {
    const { runId, jobs } = await runningStep("sigterm", CHAIN("sigterm"), "long");
    const signalled = await remote.exec(["scancel", "--signal=TERM", "--full", jobs.j000 ?? ""]);
    expect(signalled.code, signalled.stderr).toBe(0);
    const { code, state, status } = await finalCollect(runId);
    expect(code).toBe(4);
    const long = state.step_states["sigterm.long"];
    // Not a cancel: the job ends FAILED (the wrapper exits non-zero after writing the state).
    expect(status.jobs[0]?.state).toBe("FAILED");
    expect(long).toMatchObject({ success: false, failure: "STEP_FAILED", error: "killed by SIGTERM: the job ended FAILED" });
    expect(long?.meta).toMatchObject({ reason: "FAILED", slurm_state: "FAILED" });
    expect(long?.meta.not_run).toBeUndefined();
    expect(state.step_states["sigterm.after"]?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied" });
  });

  it("scancel --signal=KILL is a cancel (SLURM sends TERM first, then KILL): the trap still writes the state", async () => {
    const { runId, jobs } = await runningStep("sigkill", CHAIN("sigkill"), "long");
    const signalled = await remote.exec(["scancel", "--signal=KILL", "--full", jobs.j000 ?? ""]);
    expect(signalled.code, signalled.stderr).toBe(0);
    const { code, state } = await finalCollect(runId);
    expect(code).toBe(4);
    expect(state.step_states["sigkill.long"]).toMatchObject({ success: false, error: "killed by SIGTERM: the job ended CANCELLED" });
    expect(state.step_states["sigkill.long"]?.meta).toMatchObject({ reason: "CANCELLED", slurm_state: "CANCELLED" });
    expect(state.step_states["sigkill.after"]?.meta).toMatchObject({ not_run: true, slurm_reason: "DependencyNeverSatisfied" });
  });

  it("SIGKILL straight to the job's processes (as the OOM killer would): no trap can run, so the merged state carries SLURM's state and reason", async () => {
    const { runId, jobs } = await runningStep("sigkill9", CHAIN("sigkill9"), "long");
    // Every process of the job (the batch shell, the wrapper, the step's command), from slurmd.
    const listed = await remote.exec(["scontrol", "listpids", jobs.j000 ?? ""]);
    expect(listed.code, listed.stderr).toBe(0);
    const pids = listed.stdout.split("\n").slice(1).map((line) => line.trim().split(/\s+/)[0] ?? "").filter((pid) => /^\d+$/.test(pid));
    expect(pids.length).toBeGreaterThan(0);
    await remote.exec(["kill", "-KILL", ...pids]);
    const { code, state, status } = await finalCollect(runId);
    expect(code).toBe(4);
    const long = state.step_states["sigkill9.long"];
    // SLURM 22.05 reports a batch shell killed by SIGKILL as FAILED (JobLaunchFailure).
    expect(status.jobs[0]?.state).toBe("FAILED");
    expect(long).toMatchObject({ success: false, failure: "STEP_FAILED" });
    expect(long?.meta).toMatchObject({ not_run: true, slurm_state: "FAILED", slurm_reason: status.jobs[0]?.reason });
    expect(long?.error).toBe(`job j000 (SLURM ${jobs.j000}) ended FAILED (${status.jobs[0]?.reason}) before this step wrote its state`);
    expect(state.step_states["sigkill9.after"]?.meta).toMatchObject({ not_run: true, slurm_reason: "DependencyNeverSatisfied" });
  });
});
