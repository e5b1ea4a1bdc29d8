// The project's SLURM test cluster (scripts/cluster/up.sh) for the cluster benchmarks: its facts,
// whether it answers, a cluster config for it, and a benchmark's scratch space (a local directory
// with a private HPCPIPE_HOME, a remote workdir), removed at the end.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { connectCluster } from "../../src/app/connect.js";
import { loadClusterConfig } from "../../src/cluster/index.js";
import { RunStore } from "../../src/runs/index.js";
import { remotePath } from "../../src/transport/index.js";
import { writeFaultConfig } from "../../test/faults/env.js";
import { cleanUpNow, setInterruptFacts, syncCleanups } from "./interrupt.js";

/** dist/bench when built. */
export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = resolve(BENCH_DIR, "..", "..");
const UP = join(REPO, "scripts", "cluster", "up.sh");

const factsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int(),
  user: z.string().min(1),
  identityFile: z.string().min(1),
  knownHostsFile: z.string().min(1),
  slurmVersion: z.string(),
  accounting: z.boolean(),
  maxArraySize: z.number().int(),
  cpus: z.number().int(),
  partition: z.string().min(1),
});
export type Facts = z.infer<typeof factsSchema>;

export function readFacts(): Facts {
  const dir = process.env.HPCPIPE_TESTCLUSTER_DIR ?? "/var/lib/hpcpipe-testcluster";
  const file = join(dir, "connection.json");
  const parsed = factsSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) throw new Error(`${file}: not the test cluster's facts: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

/** True when the test cluster's facts exist and its sshd and slurmctld answer (ssh + squeue) within a few seconds. */
function clusterAnswers(): boolean {
  let facts: Facts;
  try {
    facts = readFacts();
  } catch {
    return false;
  }
  const probe = spawnSync(
    "ssh",
    ["-p", String(facts.port), "-i", facts.identityFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", `UserKnownHostsFile=${facts.knownHostsFile}`, `${facts.user}@${facts.host}`, "squeue", "--me", "-h", "-o", "%i"],
    { stdio: "ignore", timeout: 15_000 },
  );
  return probe.status === 0;
}

export interface Bench {
  facts: Facts;
  /** Local scratch directory (configs, specs, the HPCPIPE_HOME), removed at the end. */
  dir: string;
  /** The HPCPIPE_HOME of the benchmark's runs. */
  home: string;
  store: RunStore;
  /** Remote workdir of every hpcpipe run of this benchmark ($HOME-relative), removed at the end. */
  workdir: string;
  /** Cluster config for the direct path. */
  config: string;
  /** --rounds: the rounds of every workload; null for each workload's default. */
  rounds: number | null;
}

/**
 * Writes a cluster config for the test cluster into the benchmark's directory; with `proxyPort`,
 * through a proxy on that port of the same host (its known_hosts re-keyed for the port).
 */
export function writeConfig(bench: Pick<Bench, "facts" | "dir" | "workdir">, name: string, proxyPort?: number): string {
  return writeFaultConfig(bench.dir, name, bench.facts, bench.workdir, proxyPort === undefined ? {} : { proxyPort });
}

export interface OpenOptions {
  /** Run scripts/cluster/up.sh even when the cluster answers. */
  up?: boolean;
  /** Never run scripts/cluster/up.sh. */
  noUp?: boolean;
  rounds?: number | null;
}

/**
 * Makes sure the test cluster answers (running scripts/cluster/up.sh when it does not, unless
 * `noUp`), then sets up the benchmark's scratch space and prints a header line naming the cluster.
 */
export function openBench(name: string, options: OpenOptions = {}): Bench {
  if (!options.noUp && (options.up || !clusterAnswers())) {
    // up.sh verifies with a probe job, which waits behind whatever else the cluster runs.
    process.stderr.write("starting (or verifying) the test cluster: scripts/cluster/up.sh\n");
    const up = spawnSync("bash", [UP, "--quiet"], { stdio: ["ignore", "inherit", "inherit"], timeout: 10 * 60_000 });
    if (up.status !== 0) throw new Error(`scripts/cluster/up.sh failed (exit ${up.status}); the benchmark needs the test cluster`);
  }
  const facts = readFacts();
  setInterruptFacts(facts);
  const dir = mkdtempSync(join(tmpdir(), `hpcpipe-bench-${name}-`));
  syncCleanups.add(() => rmSync(dir, { recursive: true, force: true }));
  const workdir = `$HOME/hpcpipe-bench-${name}-${randomBytes(4).toString("hex")}`;
  const home = join(dir, "home");
  const partial = { facts, dir, workdir };
  console.log(
    `bench/${name} on the test cluster: ${facts.user}@${facts.host}:${facts.port}, SLURM ${facts.slurmVersion}, ${facts.cpus} CPUs advertised, ` +
      `accounting ${facts.accounting ? "on" : "off"}, ${new Date().toISOString()}\n` +
      "(other users' jobs on the cluster make the times noisy; run it again on a quiet cluster for figures to quote)",
  );
  return { ...partial, home, store: new RunStore(home), config: writeConfig(partial, "benchcluster"), rounds: options.rounds ?? null };
}

/** Removes the benchmark's remote workdir, cancels what it left running and removes its local scratch space. */
export async function closeBench(bench: Bench): Promise<void> {
  try {
    const transport = await connectCluster(loadClusterConfig(bench.config));
    try {
      await transport.exec(["rm", "-rf", "--", remotePath(bench.workdir)]);
    } finally {
      await transport.close();
    }
  } catch (error) {
    console.error(`could not remove ${bench.workdir} on the test cluster: ${(error as Error).message}`);
  }
  cleanUpNow();
}
