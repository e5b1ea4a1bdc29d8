// Shared by the fault-injection tests (test/e2e/faults-*.test.ts) and bench/faults.ts: cluster configs
// that reach the real sshd through a FaultProxy and put a SbatchShim first in the submit script's PATH,
// a counter of the jobs on the cluster tagged with a run id, and specs whose steps count their runs.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { defaultTransportFactory } from "../../src/app/connect.js";
import type { TransportFactory } from "../../src/app/connect.js";
import { parseTaggedSqueue } from "../../src/app/reconcile.js";
import { remotePath } from "../../src/transport/index.js";
import type { Transport } from "../../src/transport/index.js";
import { knownHostsForProxy } from "./proxy.js";

/** What the configs need from the test cluster's facts (test/support/cluster.ts's ClusterFacts has these). */
export interface FaultFacts {
  host: string;
  port: number;
  user: string;
  identityFile: string;
  knownHostsFile: string;
  partition: string;
  maxArraySize: number;
}

export interface FaultConfigOptions {
  /** Reach the cluster through this proxy port (default: the real sshd). */
  proxyPort?: number;
  /** Directories first in the submit script's PATH (the shim's bin). */
  pathPrepend?: string[];
  signalGraceS?: number;
}

/** Writes a cluster config for the test cluster into `dir`; returns its path. */
export function writeFaultConfig(dir: string, name: string, facts: FaultFacts, workdir: string, options: FaultConfigOptions = {}): string {
  const port = options.proxyPort ?? facts.port;
  const knownHosts = options.proxyPort === undefined ? facts.knownHostsFile : knownHostsForProxy(facts.knownHostsFile, facts.port, port, path.join(dir, `${name}.known_hosts`));
  const lines = [
    `name: ${name}`,
    "executor: slurm",
    "connection:",
    `  host: ${facts.host}`,
    `  port: ${port}`,
    `  user: ${facts.user}`,
    `  identity_file: ${facts.identityFile}`,
    `  known_hosts: ${knownHosts}`,
    "  connect_timeout_s: 10",
    `workdir: ${workdir}`,
    `partition: ${facts.partition}`,
    `max_array_size: ${facts.maxArraySize}`,
    `signal_grace_s: ${options.signalGraceS ?? 60}`,
    ...(options.pathPrepend && options.pathPrepend.length > 0 ? ["path_prepend:", ...options.pathPrepend.map((d) => `  - ${d}`)] : []),
    "",
  ];
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, lines.join("\n"));
  return file;
}

/** A TransportFactory that keeps every transport it opened (to read reconnects and round trips). */
export function recordingFactory(): { connect: TransportFactory; opened: Transport[] } {
  const opened: Transport[] = [];
  return {
    opened,
    connect: async (config, options) => {
      const transport = await defaultTransportFactory(config, options);
      opened.push(transport);
      return transport;
    },
  };
}

/** Every SLURM job on the cluster carrying the comment hpcpipe:<runId>, per plan job (ONE squeue over the user's jobs). */
export async function taggedJobs(remote: Transport, runId: string): Promise<Map<string, string[]>> {
  const out = await remote.exec(["squeue", "--me", "-h", "-t", "all", "-o", "%F|%k|%j"], { retrySafe: true });
  if (out.code !== 0) throw new Error(`squeue failed: ${out.stderr}`);
  const jobs = new Map<string, string[]>();
  for (const { planId, slurmId } of parseTaggedSqueue(out.stdout, runId)) {
    const ids = jobs.get(planId) ?? [];
    if (!ids.includes(slurmId)) ids.push(slurmId);
    jobs.set(planId, ids);
  }
  return jobs;
}

/** How many times each step ran: the lines of out/runs-<step> in the run directory (0 when absent). */
export async function executions(remote: Transport, remoteDir: string, steps: readonly string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const files = await remote.getFiles(remoteDir, "out/runs-*");
  for (const step of steps) {
    const content = files.get(`out/runs-${step}`);
    counts[step] = Buffer.isBuffer(content) ? content.toString("utf8").split("\n").filter(Boolean).length : 0;
  }
  return counts;
}

/**
 * Files under the workdir that are outside every run directory of `runDirs` (what a step, the submit
 * script or hpcpipe wrote where it should not). Run directories are `<workdir>/<pipeline>/<run id>`.
 */
export async function filesOutsideRunDirs(remote: Transport, workdir: string, runDirs: readonly string[]): Promise<string[]> {
  const out = await remote.exec(["sh", "-c", 'cd -- "$1" 2>/dev/null && find . -mindepth 1 -not -type d || true', "sh", remotePath(workdir)], { retrySafe: true });
  const inside = runDirs.map((d) => d.slice(workdir.length).replace(/^\/?/, "./"));
  return out.stdout
    .split("\n")
    .filter(Boolean)
    .filter((f) => !inside.some((d) => f === d || f.startsWith(`${d}/`)));
}

/** A chain a -> group (g1, g2) -> c: three jobs; every step counts its runs in out/runs-<step>. */
export function countingSpec(name: string, extra: { bundle?: string; sleepA?: number } = {}): string {
  const count = (step: string): string => `echo x >> "$HPCPIPE_OUT_DIR/runs-${step}"`;
  return [
    `name: ${name}`,
    ...(extra.bundle ? [`bundle: [${extra.bundle}]`] : []),
    "steps:",
    "  - step: a",
    "    fuse: false",
    // Every step counts its runs (a side effect): never restored from the step cache, nor the steps after it (its chain).
    "    cache: false",
    `    run: ${JSON.stringify(extra.sleepA ? `sleep ${extra.sleepA}; ${count("a")}` : count("a"))}`,
    "  - group: g",
    "    parallel: true",
    "    steps:",
    "      - step: g1",
    `        run: ${JSON.stringify(count("g1"))}`,
    "      - step: g2",
    `        run: ${JSON.stringify(count("g2"))}`,
    "  - step: c",
    `    run: ${JSON.stringify(count("c"))}`,
    "",
  ].join("\n");
}

export const COUNTED_STEPS = ["a", "g1", "g2", "c"] as const;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `everyMs` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
