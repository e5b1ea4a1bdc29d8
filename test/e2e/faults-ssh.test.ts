// Issue 6, "Faults to survive": the SSH connection drops at every phase of a run on the real test
// cluster. A TCP proxy (test/faults/proxy.ts) between hpcpipe and the real sshd cuts the connection
// at a chosen byte count or moment; a shim sbatch (test/faults/sbatch-shim.ts), first in the submit
// script's PATH through the cluster config's path_prepend, gives a window inside the submit script.
// Each test checks that no plan job is on the cluster twice (jobs tagged hpcpipe:<run id>), that
// every step ran exactly once, and that every state comes back.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectRun, queryJobStatuses } from "../../src/app/collect.js";
import { withRun } from "../../src/app/connect.js";
import { reconcileRun } from "../../src/app/reconcile.js";
import { submitRun, waitAndCollect } from "../../src/app/submit.js";
import { watchRun } from "../../src/app/status.js";
import { ConnectionLostError, remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { COUNTED_STEPS, countingSpec, executions, recordingFactory, taggedJobs, until, writeFaultConfig } from "../faults/env.js";
import { FaultProxy } from "../faults/proxy.js";
import { SbatchShim } from "../faults/sbatch-shim.js";
import { e2eSkipped, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const FAST = { initialMs: 300, factor: 1.5, maxMs: 2_000, jitter: 0.1 };

describe.skipIf(e2eSkipped)("the SSH connection drops (fault proxy on the real sshd)", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let proxy: FaultProxy;
  let shim: SbatchShim;
  let remote: SshTransport;
  let viaProxy: string;
  let spec: string;

  beforeAll(async () => {
    env = workflowEnv("faults-ssh");
    remote = await env.remote();
    proxy = await FaultProxy.start({ host: env.facts.host, port: env.facts.port });
    shim = await SbatchShim.install(remote);
    viaProxy = writeFaultConfig(env.dir, "viaproxy", env.facts, env.workdir, { proxyPort: proxy.port, pathPrepend: [shim.bin] });
    spec = env.spec("faulty", countingSpec("faulty"));
  });
  afterAll(async () => {
    await proxy?.close();
    await shim?.remove();
    await env?.cleanup();
  });

  /** Each plan job is on the cluster exactly once, and every step ran exactly once with a successful state. */
  async function expectExactlyOnce(runId: string, remoteDir: string, planJobs: string[]): Promise<void> {
    const tagged = await taggedJobs(remote, runId);
    expect([...tagged.keys()].sort()).toEqual([...planJobs].sort());
    for (const [job, ids] of tagged) expect(ids, `plan job ${job}`).toHaveLength(1);
    expect(await executions(remote, remoteDir, COUNTED_STEPS)).toEqual({ a: 1, g1: 1, g2: 1, c: 1 });
  }

  it("drops during the upload: the upload is sent again on a new connection, the run is submitted once and every state comes back", async () => {
    // 3 MiB of random bytes in the bundle, cut after 1 MB has gone up: the middle of the upload.
    const bundleDir = path.join(env.dir, "big");
    mkdirSync(bundleDir, { recursive: true });
    const payload = randomBytes(3 * 1024 * 1024);
    writeFileSync(path.join(bundleDir, "blob.bin"), payload);
    const big = env.spec("faulty-upload", countingSpec("faulty_upload", { bundle: "big/" }));
    await shim.configure({});
    const factory = recordingFactory();
    const cut = proxy.cutAfter("up", 1_000_000);
    const outcome = await submitRun({ spec: big, cluster: viaProxy, store: env.store(), connect: factory.connect }, (run) => waitAndCollect(run, { policy: FAST }));
    const report = await cut;
    expect(report.up).toBeGreaterThan(900_000);
    expect(factory.opened[0] && (factory.opened[0] as SshTransport).reconnects).toBe(1);
    expect(outcome.then?.collect?.state.success).toBe(true);
    expect(Object.values(outcome.then?.collect?.state.step_states ?? {}).every((s) => s.success)).toBe(true);
    expect(await shim.calls()).toHaveLength(3);
    await expectExactlyOnce(outcome.record.run_id, outcome.record.remote_dir, ["j000", "j001", "j002"]);
    // The bundle arrived whole.
    const sum = await remote.exec(["sha256sum", remotePath(`${outcome.record.remote_dir}/work/big/blob.bin`)]);
    expect(sum.stdout.split(" ")[0]).toBe(createHash("sha256").update(payload).digest("hex"));
  });

  it("drops between the upload and the submit script: the script runs once, on a new connection", async () => {
    await shim.configure({});
    const factory = recordingFactory();
    const cutsBefore = proxy.cuts;
    const outcome = await submitRun(
      {
        spec,
        cluster: viaProxy,
        store: env.store(),
        connect: factory.connect,
        onProgress: (message) => {
          if (message.startsWith("submitting ")) proxy.cut();
        },
      },
      (run) => waitAndCollect(run, { policy: FAST }),
    );
    expect(proxy.cuts).toBe(cutsBefore + 1);
    expect((factory.opened[0] as SshTransport).reconnects).toBe(1);
    expect((await env.record(outcome.record.run_id)).phase).toBe("collected");
    expect(outcome.then?.collect?.state.success).toBe(true);
    // sbatch ran three times in all: the submit script ran once.
    expect(await shim.calls()).toHaveLength(3);
    await expectExactlyOnce(outcome.record.run_id, outcome.record.remote_dir, ["j000", "j001", "j002"]);
  });

  it("drops during the submit script: the submitter reconciles from the cluster (jobs tagged with the run id), records what was submitted, and resume submits only the rest", async () => {
    // The 2nd sbatch call sleeps 3 s: the connection is cut while the script waits in it.
    await shim.configure({ delayAt: 2, delayS: 3 });
    const factory = recordingFactory();
    const store = env.store();
    const progress: string[] = [];
    const attempt = submitRun({ spec, cluster: viaProxy, store, connect: factory.connect, onProgress: (m) => progress.push(m) }).catch((e: unknown) => e);
    await until("the shim's slow sbatch call", async () => ((await shim.delaying()) ? true : undefined), 60_000, 100);
    proxy.cut();
    const error = await attempt;
    // The script went on after the drop until its next write (SIGPIPE): it submitted job 2, then died.
    expect(error).toBeInstanceOf(ConnectionLostError);
    const runId = /run (\S+):/.exec((error as Error).message)?.[1] ?? "";
    expect((error as Error).message).toMatch(/stopped after 2 of 3 job\(s\).*never submitted: j002/s);
    expect(progress.join("\n")).toMatch(/asking the cluster which jobs were submitted/);
    const record = await store.readRecord(runId);
    expect(record.phase).toBe("submitted");
    expect(Object.keys(record.jobs).sort()).toEqual(["j000", "j001"]);
    expect(record.error).toMatch(/never submitted: j002/);
    expect((await shim.calls()).map((c) => c.n)).toEqual([1, 2]);
    // status works on the partly submitted run: the missing job shows as never submitted.
    const status = await cli("status", runId, "--json");
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { jobs: Array<{ job: string; state: string }> }).jobs.find((j) => j.job === "j002")?.state).toBe("NOT_SUBMITTED");

    // Once the submitted jobs have ended, resume submits only j002.
    await withRun(runId, { store }, (run) => watchRun(run, { policy: FAST }));
    await shim.configure({});
    const resumed = await submitRun({ spec, cluster: viaProxy, store, resume: runId }, (run) => waitAndCollect(run, { policy: FAST }));
    expect(Object.keys(resumed.record.jobs)).toEqual(["j002"]);
    expect(resumed.then?.collect?.state.success).toBe(true);
    expect(await shim.calls()).toHaveLength(1);
    await expectExactlyOnce(runId, record.remote_dir, ["j000", "j001", "j002"]);
  });

  it("drops during the submit script and the cluster stays unreachable: the record stays 'submitting'; `submit --resume` reconciles from the cluster before submitting anything", async () => {
    await shim.configure({ delayAt: 3, delayS: 2 });
    const store = env.store();
    const attempt = submitRun({ spec, cluster: viaProxy, store }).catch((e: unknown) => e);
    await until("the shim's slow sbatch call", async () => ((await shim.delaying()) ? true : undefined), 60_000, 100);
    // Every reconnection is refused until the submitter gives up.
    proxy.refuseNext(1_000);
    proxy.cut();
    const error = await attempt;
    proxy.acceptAll();
    expect(error).toBeInstanceOf(ConnectionLostError);
    const [runId] = (await store.list()).records.filter((r) => r.phase === "submitting").map((r) => r.run_id);
    expect(runId).toBeDefined();
    const left = await store.readRecord(runId as string);
    expect(left.jobs).toEqual({});
    expect(left.error).toMatch(/hpcpipe:/);

    // The third sbatch went through after the drop: all three jobs are on the cluster, so nothing is resubmitted.
    await shim.configure({});
    const resumed = await cli("submit", spec, "--cluster", viaProxy, "--resume", runId as string, "--wait");
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/its submission had completed: all 3 job\(s\) found on the cluster/);
    expect(resumed.stderr).toMatch(/nothing to resubmit/);
    expect(await shim.calls()).toHaveLength(0);
    const record = await store.readRecord(runId as string);
    expect(record.phase).toBe("collected");
    await expectExactlyOnce(runId as string, record.remote_dir, ["j000", "j001", "j002"]);
  });

  it("drops during status polling: the watch reopens the connection and follows the run to the end", async () => {
    await shim.configure({});
    const slow = env.spec("faulty-slow", countingSpec("faulty_slow", { sleepA: 4 }));
    const store = env.store();
    const factory = recordingFactory();
    let polls = 0;
    const outcome = await submitRun({ spec: slow, cluster: viaProxy, store, connect: factory.connect }, (run) =>
      watchRun(run, {
        policy: FAST,
        onUpdate: () => {
          polls += 1;
          // Cut after the 2nd and the 4th poll: twice during the watch.
          if (polls === 2 || polls === 4) proxy.cut();
        },
      }),
    );
    expect(polls).toBeGreaterThan(4);
    expect((factory.opened[0] as SshTransport).reconnects).toBe(2);
    expect(outcome.then?.status.final).toBe(true);
    expect(outcome.then?.merged?.success).toBe(true);
    await expectExactlyOnce(outcome.record.run_id, outcome.record.remote_dir, ["j000", "j001", "j002"]);
  });

  it("drops during a watch by state-file events: the watch polls, reconnects, starts a new watcher and learns the end from its events", async () => {
    await shim.configure({});
    const slow = env.spec("faulty-events", countingSpec("faulty_events", { sleepA: 4 }));
    const store = env.store();
    const factory = recordingFactory();
    const debug: string[] = [];
    let cut = false;
    const outcome = await submitRun({ spec: slow, cluster: viaProxy, store, connect: factory.connect }, (run) =>
      watchRun(run, {
        events: true,
        policy: FAST,
        onDebug: (message) => {
          debug.push(message);
          // Cut once, as soon as the first watcher has done its first scan.
          if (!cut && /first scan done/.test(message)) {
            cut = true;
            proxy.cut();
          }
        },
      }),
    );
    expect(cut).toBe(true);
    expect((factory.opened[0] as SshTransport).reconnects).toBeGreaterThanOrEqual(1);
    expect(debug.some((m) => /^state watcher ended .*polling until it can be started again$/.test(m))).toBe(true);
    expect(debug.some((m) => /starting a new state watcher/.test(m))).toBe(true);
    expect(debug.filter((m) => /^state watcher started/.test(m)).length).toBeGreaterThanOrEqual(2);
    expect(outcome.then?.mode).toBe("events");
    expect(outcome.then?.status.final).toBe(true);
    expect(outcome.then?.merged?.success).toBe(true);
    await expectExactlyOnce(outcome.record.run_id, outcome.record.remote_dir, ["j000", "j001", "j002"]);
  });

  it("drops during collection (in the middle of the state files' transfer): collect reconnects and every state comes back", async () => {
    await shim.configure({});
    // A map of 24 items: 24 state files of about 1 kB, well over the 6 kB after which the transfer is cut.
    const items = Array.from({ length: 24 }, (_, i) => `i${i}`);
    const mapSpec = env.spec(
      "faulty-map",
      ["name: faulty_map", "steps:", "  - map: each", `    items: ${JSON.stringify(items)}`, "    as: item", "    steps:", "      - step: work", '        run: echo "$item"', "        requires: [item]", ""].join("\n"),
    );
    const store = env.store();
    const submitted = await submitRun({ spec: mapSpec, cluster: viaProxy, store }, (run) => watchRun(run, { policy: FAST }));
    expect(submitted.then?.status.final).toBe(true);
    const runId = submitted.record.run_id;
    const factory = recordingFactory();
    const result = await withRun(runId, { store, connect: factory.connect }, async (run) => {
      // The scheduler query comes first (small); arm the cut once the transfer starts.
      const jobs = await queryJobStatuses(run.scheduler, run.plan, run.record.jobs);
      const cut = proxy.cutAfter("down", 6_000);
      const collected = await collectRun(run, { jobs });
      return { collected, report: await cut };
    });
    expect(result.report.down).toBeGreaterThan(0);
    expect((factory.opened[0] as SshTransport).reconnects).toBe(1);
    expect(result.collected.stateFiles).toBeGreaterThanOrEqual(24);
    expect(result.collected.problems).toEqual([]);
    expect(result.collected.state.success).toBe(true);
    for (let i = 0; i < 24; i++) expect(result.collected.state.step_states?.[`faulty_map.each.${i}.work`]?.success).toBe(true);
    expect(result.collected.record.phase).toBe("collected");
  });

  it("a run left 'submitting' (submitter cut off mid-script) is reconciled by reconcileRun, the hook status/cancel/collect run through withRun", async () => {
    await shim.configure({ delayAt: 2, delayS: 2 });
    const store = env.store();
    const attempt = submitRun({ spec, cluster: viaProxy, store }).catch((e: unknown) => e);
    await until("the shim's slow sbatch call", async () => ((await shim.delaying()) ? true : undefined), 60_000, 100);
    proxy.refuseNext(1_000);
    proxy.cut();
    expect(await attempt).toBeInstanceOf(ConnectionLostError);
    proxy.acceptAll();
    const [runId] = (await store.list()).records.filter((r) => r.phase === "submitting").map((r) => r.run_id);
    expect((await store.readRecord(runId as string)).jobs).toEqual({});
    // The submit script was inside its 2nd sbatch when the connection went: jobs 1 and 2 are in, job 3 never was.
    const reconciled = await withRun(runId as string, { store }, async (run) => (await reconcileRun(run)).record);
    expect(reconciled.phase).toBe("submitted");
    expect(reconciled.jobs).toEqual(Object.fromEntries([...(await taggedJobs(remote, runId as string))].map(([job, ids]) => [job, ids[0]])));
    expect(Object.keys(reconciled.jobs).sort()).toEqual(["j000", "j001"]);
    expect(reconciled.error).toMatch(/interrupted after 2 of 3 job\(s\).*never submitted: j002/s);
    const cancelled = await cli("cancel", runId as string);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain("scancel of 2 job(s)");
  });
});
