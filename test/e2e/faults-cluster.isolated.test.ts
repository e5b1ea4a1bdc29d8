// Issue 6, "Faults to survive": the shared test cluster itself misbehaves. slurmctld is stopped and
// started again (by its recorded pid, then scripts/cluster/up.sh) while a run is being watched; and
// the cluster runs without accounting (up.sh --accounting off). Both restart SLURM daemons, so this
// file is isolated: run it on its own, never alongside other end-to-end files. The cluster is put
// back as it was in afterAll.
import { readFileSync, realpathSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schedulerOver } from "../../src/app/connect.js";
import { submitRun } from "../../src/app/submit.js";
import { watchRun } from "../../src/app/status.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { clusterStateDir, ensureCluster } from "../support/cluster.js";
import { COUNTED_STEPS, countingSpec, executions, taggedJobs, until } from "../faults/env.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const FAST = { initialMs: 300, factor: 1.5, maxMs: 2_000, jitter: 0.1 };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops slurmctld (SIGTERM, as an admin's restart does) by the pid up.sh recorded, and waits until it is gone. */
async function stopSlurmctld(): Promise<number> {
  const [pidText = "", exe = ""] = readFileSync(`${clusterStateDir()}/pids/slurmctld`, "utf8").trim().split(/\s+/);
  const pid = Number(pidText);
  expect(realpathSync(`/proc/${pid}/exe`)).toBe(exe);
  process.kill(pid, "SIGTERM");
  await until("slurmctld to exit", async () => (alive(pid) ? undefined : true), 60_000, 100);
  return pid;
}

describe.skipIf(e2eSkipped).sequential("the cluster misbehaves (isolated: restarts SLURM daemons)", { timeout: 240_000 }, () => {
  let env: WorkflowEnv;
  let remote: SshTransport;
  let cluster: string;
  let accountingBefore = true;

  beforeAll(async () => {
    env = workflowEnv("faults-cluster");
    accountingBefore = env.facts.accounting;
    remote = await env.remote();
    cluster = env.config("testcluster");
  }, 180_000);
  afterAll(async () => {
    // Whatever happened: slurmctld up and accounting as it was.
    await ensureCluster({ accounting: accountingBefore });
    await env?.cleanup();
  }, 180_000);

  it("slurmctld is restarted while a run is watched: the polls that fail are retried, the watch rides over it and the run completes", async () => {
    const spec = env.spec("restart", countingSpec("restart", { sleepA: 8 }));
    const store = env.store();
    const retries: string[] = [];
    let restart: Promise<void> | null = null;
    let stoppedPid = 0;
    const outcome = await submitRun({ spec, cluster, store }, (run) =>
      watchRun(run, {
        policy: FAST,
        onUpdate: (status) => {
          if (restart === null && status.jobs[0]?.state === "RUNNING") {
            restart = (async () => {
              stoppedPid = await stopSlurmctld();
              // SLURM's clients wait about 18 s for a controller before giving up: stay down until a poll has failed.
              await until("a poll to fail", async () => (retries.length > 0 ? true : undefined), 90_000, 200);
              await ensureCluster({});
            })();
          }
        },
        onRetry: (error) => retries.push(error.message),
      }),
    );
    expect(restart).not.toBeNull();
    await restart;
    expect(stoppedPid).toBeGreaterThan(0);
    expect(retries.length).toBeGreaterThan(0);
    for (const message of retries) expect(message).toMatch(/Unable to contact slurm controller|Socket timed out|Zero Bytes|Communication connection failure/);
    expect(outcome.then?.status.final).toBe(true);
    expect(outcome.then?.merged?.success).toBe(true);
    const runId = outcome.record.run_id;
    const tagged = await taggedJobs(remote, runId);
    expect([...tagged.values()].map((ids) => ids.length)).toEqual([1, 1, 1]);
    expect(await executions(remote, outcome.record.remote_dir, COUNTED_STEPS)).toEqual({ a: 1, g1: 1, g2: 1, c: 1 });
  });

  describe("accounting disabled (up.sh --accounting off)", () => {
    beforeAll(async () => {
      const facts = await ensureCluster({ accounting: false });
      expect(facts.accounting).toBe(false);
    }, 180_000);

    it("a run completes; status falls back to scontrol for jobs squeue does not show, and the steps' results come from the state files", async () => {
      const spec = env.spec("noacct", countingSpec("noacct"));
      const submitted = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
      expect(submitted.code, submitted.stderr).toBe(0);
      const runId = runIdFrom(submitted.stderr);
      const status = JSON.parse((await cli("status", runId, "--json")).stdout) as { final: boolean; steps: Record<string, { success: boolean }> | null };
      expect(status.final).toBe(true);
      expect(Object.values(status.steps ?? {}).length).toBeGreaterThan(0);
      expect(Object.values(status.steps ?? {}).every((s) => s.success)).toBe(true);

      // One id squeue knows and one it does not: sacct says accounting is disabled, scontrol answers instead.
      const record = await env.record(runId);
      const known = record.jobs.j000 ?? "";
      const scheduler = schedulerOver(remote);
      const answer = await scheduler.status([known, "999999990"]);
      expect(scheduler.accountingDisabled).toBe(true);
      expect(scheduler.queries).toBe(3);
      expect(answer.get(known)?.[0]?.state).toBe("COMPLETED");
      expect(answer.get("999999990")?.[0]?.state).toBe("UNKNOWN");
      // And from then on, sacct is not asked again.
      await scheduler.status([known, "999999991"]);
      expect(scheduler.queries).toBe(5);
      expect(await executions(remote, record.remote_dir, COUNTED_STEPS)).toEqual({ a: 1, g1: 1, g2: 1, c: 1 });
    });
  });
});
