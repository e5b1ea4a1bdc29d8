// Reconciling a submission whose outcome is unknown (src/app/reconcile.ts): the parsers on real
// squeue/sacct shapes, and the decisions on a scripted transport (the end-to-end tests in
// test/e2e/faults-ssh.test.ts and faults-kill.test.ts do it on the real cluster); plus the cluster
// config's path_prepend and how the submit script is run with it.
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { findRunJobs, markSubmitter, parseTaggedSacct, parseTaggedSqueue, reconcileSubmission, submitterFile } from "../../src/app/reconcile.js";
import { submitScriptArgv } from "../../src/app/submit.js";
import { ConfigError, loadClusterConfig } from "../../src/cluster/index.js";
import { RunStateError } from "../../src/runs/index.js";
import { argvToCommand } from "../../src/transport/index.js";
import type { ExecOptions, ExecResult, FetchedFile, ShellWord, Transport } from "../../src/transport/index.js";
import { tempRun } from "../app/fakes.js";
import type { TempRun } from "../app/fakes.js";

const RUN = "20260101-000000-abcdef";

/** Answers squeue, sacct and ps from strings; records every argv. */
class ScriptedTransport implements Transport {
  roundTrips = 0;
  readonly calls: string[][] = [];
  squeue = "";
  sacct: ExecResult = { code: 0, signal: null, stdout: "", stderr: "" };
  /** ps answers, one per call (the last one repeats). */
  ps: string[] = [""];

  async exec(argv: readonly ShellWord[], _opts?: ExecOptions): Promise<ExecResult> {
    const words = argv.map(String);
    this.calls.push(words);
    this.roundTrips += 1;
    const ok = (stdout: string): ExecResult => ({ code: 0, signal: null, stdout, stderr: "" });
    if (words[0] === "squeue") return ok(this.squeue);
    if (words[0] === "sacct") return this.sacct;
    if (words[0] === "ps") return ok((this.ps.length > 1 ? this.ps.shift() : this.ps[0]) ?? "");
    return { code: 127, signal: null, stdout: "", stderr: "unexpected" };
  }
  async putFiles(): Promise<void> {}
  async getFiles(): Promise<Map<string, FetchedFile>> {
    return new Map();
  }
  async close(): Promise<void> {}
}

describe("parsing what the cluster says about a run's jobs", () => {
  it("squeue: only lines with the exact comment hpcpipe:<run id> and a hp-<plan job>- name count", () => {
    const out = [
      `982|hpcpipe:${RUN}|hp-j000-prep`,
      `983|hpcpipe:${RUN}|hp-j001-renders`,
      `983|hpcpipe:${RUN}|hp-j001-renders`,
      `990|hpcpipe:${RUN}x|hp-j002-other-run`,
      `991|hpcpipe:20260101-000000-ffffff|hp-j002-other`,
      `992|(null)|hp-j002-no-comment`,
      `993|hpcpipe:${RUN}|someone-else`,
      "N/A|weird|line",
      "",
    ].join("\n");
    expect(parseTaggedSqueue(out, RUN)).toEqual([
      { planId: "j000", slurmId: "982" },
      { planId: "j001", slurmId: "983" },
      { planId: "j001", slurmId: "983" },
    ]);
  });

  it("sacct: jobs named hp-<plan job>- whose working directory is the run's; array rows give their array job id", () => {
    const out = [
      `2291|hp-j000-prep|/home/u/hpcpipe-runs/p/${RUN}`,
      `2292_3|hp-j001-map|/home/u/hpcpipe-runs/p/${RUN}/`,
      `2292_[4-9]|hp-j001-map|/home/u/hpcpipe-runs/p/${RUN}`,
      `2300|hp-j002-c|/home/u/hpcpipe-runs/p/20260101-000000-ffffff`,
      `2301|bl_report|/home/u/hpcpipe-runs/p/${RUN}`,
    ].join("\n");
    expect(parseTaggedSacct(out, RUN)).toEqual([
      { planId: "j000", slurmId: "2291" },
      { planId: "j001", slurmId: "2292" },
      { planId: "j001", slurmId: "2292" },
    ]);
  });
});

describe("reconcileSubmission on a record left 'submitting'", () => {
  let run: TempRun;
  afterEach(() => run?.cleanup());

  async function submitting(): Promise<{ transport: ScriptedTransport; run: TempRun }> {
    run = await tempRun("examples/specs/thumbnail-shape.yaml", { phase: "submitting", runId: RUN });
    await run.store.updateRecord(RUN, { jobs: {} });
    return { transport: new ScriptedTransport(), run };
  }

  it("every plan job on the cluster: phase submitted with their ids, ONE squeue and no sacct", async () => {
    const { transport } = await submitting();
    transport.squeue = [`11|hpcpipe:${RUN}|hp-j000-a`, `12|hpcpipe:${RUN}|hp-j001-b`, `13|hpcpipe:${RUN}|hp-j002-c`].join("\n");
    const outcome = await reconcileSubmission({ store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport });
    expect(outcome).toMatchObject({ complete: true, missing: [], reconciled: true });
    expect(outcome.record).toMatchObject({ phase: "submitted", jobs: { j000: "11", j001: "12", j002: "13" }, error: null });
    expect(transport.calls.map((c) => c[0])).toEqual(["ps", "squeue"]);
  });

  it("none: phase submit_failed, after asking sacct for jobs squeue may have forgotten", async () => {
    const { transport } = await submitting();
    const outcome = await reconcileSubmission({ store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport });
    expect(outcome).toMatchObject({ complete: false, missing: ["j000", "j001", "j002"] });
    expect(outcome.record.phase).toBe("submit_failed");
    expect(outcome.record.error).toMatch(/before any job was submitted/);
    const sacct = transport.calls.find((c) => c[0] === "sacct") ?? [];
    expect(sacct.slice(0, 5)).toEqual(["sacct", "-X", "-n", "-P", "-S"]);
    expect(sacct[5]).toBe("2025-12-31");
    expect(sacct).toContain("JobID,JobName,WorkDir");
  });

  it("some (one found by sacct): phase submitted with what was found; the error names the jobs never submitted", async () => {
    const { transport } = await submitting();
    transport.squeue = `11|hpcpipe:${RUN}|hp-j000-a`;
    transport.sacct = { code: 0, signal: null, stdout: `12|hp-j001-renders|/home/hpctest/hpcpipe-runs/thumbnail_shape/${RUN}\n`, stderr: "" };
    const outcome = await reconcileSubmission({ store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport });
    expect(outcome).toMatchObject({ complete: false, missing: ["j002"] });
    expect(outcome.record.phase).toBe("submitted");
    expect(outcome.record.jobs).toEqual({ j000: "11", j001: "12" });
    expect(outcome.record.error).toMatch(/interrupted after 2 of 3 job\(s\).*never submitted: j002/);
  });

  it("a cluster without accounting: sacct's refusal is not an error", async () => {
    const { transport } = await submitting();
    transport.sacct = { code: 1, signal: null, stdout: "", stderr: "Slurm accounting storage is disabled\n" };
    const outcome = await reconcileSubmission({ store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport });
    expect(outcome.record.phase).toBe("submit_failed");
  });

  it("a plan job on the cluster twice is refused, never guessed around", async () => {
    const { transport } = await submitting();
    transport.squeue = [`11|hpcpipe:${RUN}|hp-j000-a`, `14|hpcpipe:${RUN}|hp-j000-a`].join("\n");
    const attempt = reconcileSubmission({ store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport });
    await expect(attempt).rejects.toThrow(RunStateError);
    await expect(attempt).rejects.toThrow(/plan job j000 .* is on the cluster 2 times \(SLURM 11, 14\)/);
    expect((await run.store.readRecord(RUN)).phase).toBe("submitting");
  });

  it("jobs of earlier attempts (the record's history) are not this attempt's", async () => {
    const { transport } = await submitting();
    await run.store.updateRecord(RUN, { history: [{ attempt: 1, jobs: { j000: "5" }, phase: "collected", updated: "2026-01-01T00:00:00.000Z" }], attempt: 2 });
    transport.squeue = [`5|hpcpipe:${RUN}|hp-j000-a`, `21|hpcpipe:${RUN}|hp-j000-a`].join("\n");
    const found = await findRunJobs(transport, await run.store.readRecord(RUN), run.plan);
    expect(found.jobs).toEqual({ j000: "21" });
    expect(found.problems).toEqual([]);
  });

  it("waits while the run's submit script still runs on the cluster, then reconciles", async () => {
    const { transport } = await submitting();
    const script = `4242 bash /home/hpctest/hpcpipe-runs/thumbnail_shape/${RUN}/scripts/submit.sh\n`;
    transport.ps = [script, script, "1 sshd: hpctest@notty\n"];
    const slept: number[] = [];
    const outcome = await reconcileSubmission(
      { store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport },
      { sleep: async (ms) => void slept.push(ms), pollMs: 10 },
    );
    expect(slept).toEqual([10, 10]);
    expect(outcome.reconciled).toBe(true);
    await expect(
      reconcileSubmission({ store: run.store, record: { ...(await run.store.readRecord(RUN)), phase: "submitting" }, plan: run.plan, transport: Object.assign(new ScriptedTransport(), { ps: [script] }) }, { waitMs: 0 }),
    ).rejects.toThrow(/its submit script is still running on the cluster \(pid 4242\)/);
  });

  it("refuses while another live process on this machine is submitting the run", async () => {
    const { transport } = await submitting();
    await markSubmitter(run.store, RUN);
    // The mark of this process is its own; a live other pid (the parent: the test runner) is refused.
    writeFileSync(submitterFile(run.store, RUN), JSON.stringify({ pid: process.ppid, host: hostname() }));
    await expect(reconcileSubmission({ store: run.store, record: await run.store.readRecord(RUN), plan: run.plan, transport })).rejects.toThrow(
      new RegExp(`being submitted right now by process ${process.ppid}`),
    );
    expect(transport.calls).toEqual([]);
  });
});

describe("path_prepend", () => {
  let run: TempRun;
  afterEach(() => run?.cleanup());

  function config(extra: string): string {
    const file = path.join(run.dir, "pp.yaml");
    writeFileSync(
      file,
      ["name: pp", "executor: slurm", "connection: { host: 127.0.0.1, user: u, identity_file: /k }", "workdir: $HOME/runs", extra, ""].join("\n"),
    );
    return file;
  }

  it("runs the submit script with the directories first in PATH, every value a quoted argument", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const c = loadClusterConfig(config("path_prepend: [/opt/slurm/bin, $HOME/bin]"));
    expect(c.path_prepend).toEqual(["/opt/slurm/bin", "$HOME/bin"]);
    const command = argvToCommand(submitScriptArgv(c, "$HOME/runs/p/r1"));
    expect(command).toBe(
      `bash -c 'p=; while [ "$#" -gt 1 ]; do p="$p$1:"; shift; done; PATH="$p$PATH"; export PATH; exec bash "$1"' hpcpipe-submit /opt/slurm/bin ` +
        `"\${HOME:?HOME is not set on the remote host}"/bin "\${HOME:?HOME is not set on the remote host}"/runs/p/r1/scripts/submit.sh`,
    );
    expect(argvToCommand(submitScriptArgv({ path_prepend: [] }, "/abs/run"))).toBe("bash /abs/run/scripts/submit.sh");
  });

  it("refuses relative paths, ':' and other variables", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    for (const bad of ["bin", "/a:/b", "$USER/bin", "/a/../b", "'/x y'"]) {
      expect(() => loadClusterConfig(config(`path_prepend: [${bad}]`)), bad).toThrow(ConfigError);
    }
  });
});
