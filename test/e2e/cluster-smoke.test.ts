// Smoke test of the local SLURM test cluster (scripts/cluster/up.sh) through the
// system ssh client, as the tool itself will use it: jobs run as the test user,
// states and exit codes come back as SLURM reports them, and sshd's host key is verified.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readClusterFacts, sshArgs, type ClusterFacts } from "../support/cluster.js";

const skipped = process.env.HPCPIPE_E2E === "skip" || process.env.HPCPIPE_E2E === "0";

const FINAL_STATES = new Set([
  "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
  "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
]);

// Remote words pass through the remote login shell: allow only words that need no quoting there.
const PLAIN_WORD = /^[A-Za-z0-9_.,:=%/+@-]+$/;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runFile(file: string, args: string[], stdin = ""): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 20_000, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(stdin);
  });
}

function ssh(facts: ClusterFacts, remote: string[], options: { stdin?: string; knownHostsFile?: string } = {}): Promise<Result> {
  for (const word of remote) {
    if (!PLAIN_WORD.test(word)) throw new Error(`remote word needs shell quoting, refusing: ${JSON.stringify(word)}`);
  }
  return runFile("ssh", [...sshArgs(facts, options.knownHostsFile), ...remote], options.stdin);
}

async function sshOk(facts: ClusterFacts, remote: string[], stdin?: string): Promise<string> {
  const result = await ssh(facts, remote, { stdin });
  if (result.code !== 0) {
    throw new Error(`ssh ${remote.join(" ")} exited ${String(result.code)}: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function submit(facts: ClusterFacts, script: string, extra: string[] = []): Promise<string> {
  const out = await sshOk(facts, ["sbatch", "--parsable", `--partition=${facts.partition}`, ...extra], script);
  const id = out.trim().split(";")[0] ?? "";
  expect(id).toMatch(/^\d+$/);
  return id;
}

// One squeue call per poll, as the tool must do; squeue keeps finished jobs for MinJobAge.
async function waitForFinalState(facts: ClusterFacts, jobId: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let state = "";
  while (Date.now() < deadline) {
    state = (await sshOk(facts, ["squeue", "-h", "-t", "all", "-j", jobId, "-o", "%T"])).trim();
    if (FINAL_STATES.has(state)) return state;
    await sleep(300);
  }
  throw new Error(`job ${jobId} not final after ${timeoutMs} ms (last state: ${state || "none"})`);
}

// State and ExitCode as accounting records them (sacct lags squeue), or from scontrol when accounting is off.
async function finalRecord(facts: ClusterFacts, jobId: string): Promise<{ state: string; exitCode: string }> {
  if (!facts.accounting) {
    const line = await sshOk(facts, ["scontrol", "show", "job", "-o", jobId]);
    return {
      state: /\bJobState=(\S+)/.exec(line)?.[1] ?? "",
      exitCode: /\bExitCode=(\S+)/.exec(line)?.[1] ?? "",
    };
  }
  const deadline = Date.now() + 20_000;
  let last = "";
  while (Date.now() < deadline) {
    last = (await sshOk(facts, ["sacct", "-X", "-n", "-P", "-j", jobId, "-o", "State,ExitCode"])).trim();
    const [state = "", exitCode = ""] = last.split("|");
    if (FINAL_STATES.has(state.split(" ")[0] ?? "")) return { state, exitCode };
    await sleep(300);
  }
  throw new Error(`sacct did not record job ${jobId} as final within 20 s (last: ${last || "nothing"})`);
}

describe.skipIf(skipped)("local SLURM test cluster (scripts/cluster/up.sh)", { timeout: 60_000 }, () => {
  let facts: ClusterFacts;
  let scratch: string;
  const outputs: string[] = [];

  beforeAll(() => {
    const provided: ClusterFacts | undefined = inject("cluster");
    const found = provided ?? readClusterFacts();
    if (!found) {
      throw new Error(
        "no cluster facts: run `bash scripts/cluster/up.sh` as root, or wire test/support/global-setup.ts " +
          "as vitest's globalSetup (set HPCPIPE_E2E=0 to skip end-to-end tests on purpose)",
      );
    }
    facts = found;
    scratch = mkdtempSync(path.join(tmpdir(), "hpcpipe-smoke-"));
  });

  afterAll(async () => {
    if (facts && outputs.length > 0) await ssh(facts, ["rm", "-f", ...outputs]);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("runs a job submitted over ssh as the test user to COMPLETED with exit code 0:0", async () => {
    const output = `${facts.workdir}/smoke-%j.out`;
    const jobId = await submit(facts, "#!/bin/bash\nid -un\n", ["--job-name=hpcpipe-smoke-ok", `--output=${output}`]);
    const outFile = output.replace("%j", jobId);
    outputs.push(outFile);

    expect(await waitForFinalState(facts, jobId)).toBe("COMPLETED");
    expect(await finalRecord(facts, jobId)).toEqual({ state: "COMPLETED", exitCode: "0:0" });
    expect((await sshOk(facts, ["cat", outFile])).trim()).toBe(facts.user);
  });

  it("reports a job that exits 3 as FAILED with ExitCode 3:0", async () => {
    const jobId = await submit(facts, "#!/bin/bash\nexit 3\n", ["--job-name=hpcpipe-smoke-fail", "--output=/dev/null"]);

    expect(await waitForFinalState(facts, jobId)).toBe("FAILED");
    expect(await finalRecord(facts, jobId)).toEqual({ state: "FAILED", exitCode: "3:0" });
  });

  it("refuses to connect when the host key is not in known_hosts", async () => {
    const emptyKnownHosts = path.join(scratch, "known_hosts");
    writeFileSync(emptyKnownHosts, "");

    const result = await ssh(facts, ["true"], { knownHostsFile: emptyKnownHosts });

    expect(result.code).toBe(255);
    expect(result.stderr).toContain("Host key verification failed");
  });

  it("serves the host key whose fingerprint the facts record", async () => {
    const scan = await runFile("ssh-keyscan", ["-t", "ed25519", "-p", String(facts.port), facts.host]);
    expect(scan.code).toBe(0);
    const fingerprint = await runFile("ssh-keygen", ["-l", "-E", "sha256", "-f", "-"], scan.stdout);

    expect(fingerprint.stdout.split(" ")[1]).toBe(facts.hostKeyFingerprint);
  });
});
