// Issue 6, "Faults to survive": sbatch failing on the real test cluster. A shim sbatch
// (test/faults/sbatch-shim.ts), first in the submit script's PATH through the cluster config's
// path_prepend, fails with the real SLURM messages and otherwise execs the real /usr/bin/sbatch.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { COUNTED_STEPS, countingSpec, executions, taggedJobs, until, writeFaultConfig } from "../faults/env.js";
import { PERMANENT_MESSAGE, SbatchShim, TRANSIENT_MESSAGES } from "../faults/sbatch-shim.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface StatusJson {
  final: boolean;
  jobs: Array<{ job: string; state: string; reason: string | null }>;
}

describe.skipIf(e2eSkipped)("sbatch fails (shim sbatch in front of the real one)", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let shim: SbatchShim;
  let remote: SshTransport;
  let cluster: string;

  beforeAll(async () => {
    env = workflowEnv("faults-sbatch");
    remote = await env.remote();
    shim = await SbatchShim.install(remote);
    cluster = writeFaultConfig(env.dir, "withshim", env.facts, env.workdir, { pathPrepend: [shim.bin] });
  });
  afterAll(async () => {
    await shim?.remove();
    await env?.cleanup();
  });

  it("transiently (socket time-out, busy controller) then not: retried with a doubling backoff, and the run succeeds", async () => {
    const spec = env.spec("transient", countingSpec("transient"));
    await shim.configure({ transientFirst: 2 });
    const result = await cli("submit", spec, "--cluster", cluster, "--wait");
    expect(result.code, result.stderr).toBe(0);
    // The submit script's retries are shown.
    expect(result.stderr).toContain(`transient error (sbatch: error: Batch job submission failed: ${TRANSIENT_MESSAGES[0]}); retry 1 of 5 in 2 s`);
    expect(result.stderr).toContain(`transient error (sbatch: error: Batch job submission failed: ${TRANSIENT_MESSAGES[1]}); retry 2 of 5 in 4 s`);
    // Five sbatch calls: the first job three times (two refused), then one per job.
    const calls = await shim.calls();
    expect(calls.map((c) => c.n)).toEqual([1, 2, 3, 4, 5]);
    expect(calls[0]?.args).toBe(calls[2]?.args);
    const [first, second, third] = calls.map((c) => c.at);
    expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(1.9);
    expect((third ?? 0) - (second ?? 0)).toBeGreaterThanOrEqual(3.9);
    const runId = runIdFrom(result.stderr);
    const record = await env.record(runId);
    expect(record.phase).toBe("collected");
    const tagged = await taggedJobs(remote, runId);
    expect([...tagged.values()].map((ids) => ids.length)).toEqual([1, 1, 1]);
    expect(await executions(remote, record.remote_dir, COUNTED_STEPS)).toEqual({ a: 1, g1: 1, g2: 1, c: 1 });
  });

  it("a transient error from an sbatch that queued the job all the same: the job is found by the run's tag and never submitted twice", async () => {
    const spec = env.spec("queued", countingSpec("queued"));
    await shim.configure({ queuedThenTransientAt: 2 });
    const result = await cli("submit", spec, "--cluster", cluster, "--wait");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`transient error (sbatch: error: Batch job submission failed: ${TRANSIENT_MESSAGES[0]}); retry 1 of 5 in 2 s`);
    expect(result.stderr).toMatch(/job j001 was queued despite the error, as SLURM job \d+; not submitting it again/);
    // Three sbatch calls for three jobs: the second job's call queued it and "failed"; it was not called again.
    expect((await shim.calls()).map((c) => c.n)).toEqual([1, 2, 3]);
    const runId = runIdFrom(result.stderr);
    const record = await env.record(runId);
    expect(record.phase).toBe("collected");
    const tagged = await taggedJobs(remote, runId);
    expect([...tagged.values()].map((ids) => ids.length)).toEqual([1, 1, 1]);
    expect(Object.values(record.jobs).sort()).toEqual([...tagged.values()].flat().sort());
    expect(await executions(remote, record.remote_dir, COUNTED_STEPS)).toEqual({ a: 1, g1: 1, g2: 1, c: 1 });
  });

  it("for good half-way: the jobs already submitted are cancelled, nothing else runs, and the error names the job and the sbatch message", async () => {
    const spec = env.spec("permanent", countingSpec("permanent", { sleepA: 60 }));
    await shim.configure({ failAt: 2 });
    const result = await cli("submit", spec, "--cluster", cluster);
    expect(result.code).toBe(75);
    expect(result.stderr).toContain(PERMANENT_MESSAGE);
    expect(result.stderr).toMatch(/It cancelled the 1 job\(s\) it had submitted \(SLURM \d+\)\. The submission stopped at job j001 \(permanent\.g\.g1, permanent\.g\.g2\)/);
    const [record] = (await env.store().list()).records.filter((r) => r.pipeline === "permanent");
    expect(record?.phase).toBe("submit_failed");
    expect(Object.keys(record?.jobs ?? {})).toEqual(["j000"]);
    expect(record?.error).toMatch(/it stopped at job j001/);
    const runId = record?.run_id ?? "";
    // The one job that was submitted ends CANCELLED; the others were never submitted.
    const status = await until(
      "the cancelled job to be final",
      async () => {
        const s = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
        return s.final ? s : undefined;
      },
      60_000,
      300,
    );
    expect(status.jobs.map((j) => j.state)).toEqual(["CANCELLED", "NOT_SUBMITTED", "NOT_SUBMITTED"]);
    expect([...(await taggedJobs(remote, runId)).keys()]).toEqual(["j000"]);
    const ran = await remote.exec(["sh", "-c", 'cat -- "$1"/out/runs-* 2>/dev/null | wc -l', "sh", remotePath(record?.remote_dir ?? "")]);
    expect(ran.stdout.trim()).toBe("0");
  });
});
