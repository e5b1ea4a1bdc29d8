// Access to the project's single-host SLURM test cluster (scripts/cluster/up.sh)
// for end-to-end tests: read its connection facts, start it when needed.
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

export const ClusterFactsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  user: z.string().regex(/^[a-z_][a-z0-9_-]*$/),
  identityFile: z.string().startsWith("/"),
  knownHostsFile: z.string().startsWith("/"),
  hostKeyFingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/=]+$/),
  slurmVersion: z.string().min(1),
  accounting: z.boolean(),
  maxArraySize: z.number().int().positive(),
  cpus: z.number().int().positive(),
  partition: z.string().min(1),
  workdir: z.string().startsWith("/"),
});

export type ClusterFacts = z.infer<typeof ClusterFactsSchema>;

// Lets tests read the facts with vitest's `inject("cluster")` (provided by global-setup.ts).
declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterFacts;
  }
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export const UP_SCRIPT = path.join(repoRoot, "scripts", "cluster", "up.sh");

export function clusterStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HPCPIPE_TESTCLUSTER_DIR ?? "/var/lib/hpcpipe-testcluster";
}

export function connectionFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(clusterStateDir(env), "connection.json");
}

/** The facts up.sh wrote, or null when there are none (never started, or stopped by down.sh). */
export function readClusterFacts(file: string = connectionFile()): ClusterFacts | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new Error(`${file} is not valid JSON`, { cause });
  }
  const parsed = ClusterFactsSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`${file} does not hold valid cluster facts: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

export interface EnsureClusterOptions {
  port?: number;
  user?: string;
  maxArraySize?: number;
  accounting?: boolean;
  cpus?: number;
  /** Bound on the whole up.sh run; a cold start installs packages (default 15 min). */
  timeoutMs?: number;
  /** Copy up.sh's progress to this process's stderr while it runs. */
  echo?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** up.sh failed, timed out or wrote no facts; `output` is everything it printed. */
export class ClusterStartError extends Error {
  constructor(
    message: string,
    readonly output: string,
    readonly exitCode: number | null,
    options?: { cause?: unknown },
  ) {
    super(output.trim() ? `${message}\n--- up.sh output ---\n${output.trimEnd()}` : message, options);
    this.name = "ClusterStartError";
  }
}

/** ssh argv (before the remote command) for logging in as the test user with strict host key checking. */
export function sshArgs(facts: ClusterFacts, knownHostsFile: string = facts.knownHostsFile): string[] {
  return [
    "-F", "/dev/null",
    "-i", facts.identityFile,
    "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${knownHostsFile}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    "-p", String(facts.port),
    `${facts.user}@${facts.host}`,
  ];
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** True when the cluster answers as the facts say: ssh login, slurmctld up, accounting reachable. */
export async function clusterAnswers(facts: ClusterFacts, timeoutMs = 20_000): Promise<boolean> {
  const ping = await run("ssh", [...sshArgs(facts), "scontrol", "ping"], timeoutMs);
  if (ping.code !== 0 || !ping.stdout.includes("is UP")) return false;
  if (!facts.accounting) return true;
  // sacct fails when slurmdbd or its MariaDB is down; up.sh restarts them.
  const sacct = await run("ssh", [...sshArgs(facts), "sacct", "-X", "-n", "-j", "1"], timeoutMs);
  return sacct.code === 0;
}

function upScriptArgs(options: EnsureClusterOptions): string[] {
  const args: string[] = [];
  if (options.port !== undefined) args.push("--port", String(options.port));
  if (options.user !== undefined) args.push("--user", options.user);
  if (options.maxArraySize !== undefined) args.push("--max-array-size", String(options.maxArraySize));
  if (options.accounting !== undefined) args.push("--accounting", options.accounting ? "on" : "off");
  if (options.cpus !== undefined) args.push("--cpus", String(options.cpus));
  return args;
}

function definedOnly(options: EnsureClusterOptions): EnsureClusterOptions {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as EnsureClusterOptions;
}

/** What the end-to-end tests expect unless a test asks otherwise (up.sh's defaults). */
export const DEFAULT_CLUSTER_SHAPE = { maxArraySize: 1001, accounting: true, cpus: 4 } as const;

function factsMatch(facts: ClusterFacts, options: EnsureClusterOptions): boolean {
  return (
    (options.port === undefined || options.port === facts.port) &&
    (options.user === undefined || options.user === facts.user) &&
    (options.maxArraySize === undefined || options.maxArraySize === facts.maxArraySize) &&
    (options.accounting === undefined || options.accounting === facts.accounting) &&
    (options.cpus === undefined || options.cpus === facts.cpus)
  );
}

// Runs up.sh with a hard time bound, collecting its interleaved output for error messages.
function runUpScript(args: string[], options: EnsureClusterOptions): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  const timeoutMs = options.timeoutMs ?? 15 * 60_000;
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout also ends apt-get/ssh children; the daemons it starts
    // run in their own sessions (setsid) and are not touched.
    const child = spawn("bash", [UP_SCRIPT, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: options.env ?? process.env,
      detached: true,
    });
    let output = "";
    let timedOut = false;
    let settled = false;
    const finish = (code: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    };
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const collect = (chunk: Buffer): void => {
      output += chunk.toString("utf8");
      if (options.echo) process.stderr.write(chunk);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup("SIGTERM");
      setTimeout(() => {
        killGroup("SIGKILL");
        // Do not wait for pipes a stray grandchild may still hold.
        setTimeout(() => finish(null), 1_000).unref();
      }, 5_000).unref();
    }, timeoutMs);
    child.on("error", (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new ClusterStartError(`could not run ${UP_SCRIPT}`, output, null, { cause: error }));
    });
    child.on("close", (code) => finish(code));
  });
}

/**
 * Returns the facts of a running test cluster with the requested options, running
 * scripts/cluster/up.sh first when there are no facts, they differ, or the cluster does not answer.
 * Throws ClusterStartError (with up.sh's output) when it cannot be started.
 */
export async function ensureCluster(options: EnsureClusterOptions = {}): Promise<ClusterFacts> {
  const env = options.env ?? process.env;
  let current: ClusterFacts | null = null;
  try {
    current = readClusterFacts(connectionFile(env));
  } catch {
    current = null; // unreadable facts: up.sh rewrites them
  }
  if (current && factsMatch(current, options) && (await clusterAnswers(current))) return current;

  // Options not asked for keep the running cluster's values (up.sh would reset them to its defaults).
  const wanted: EnsureClusterOptions = current
    ? {
        port: current.port,
        user: current.user,
        maxArraySize: current.maxArraySize,
        accounting: current.accounting,
        cpus: current.cpus,
        ...definedOnly(options),
      }
    : options;
  const result = await runUpScript(upScriptArgs(wanted), options);
  if (result.timedOut) {
    throw new ClusterStartError(`${UP_SCRIPT} did not finish within ${options.timeoutMs ?? 15 * 60_000} ms`, result.output, result.code);
  }
  if (result.code !== 0) {
    throw new ClusterStartError(`${UP_SCRIPT} failed with exit code ${String(result.code)}`, result.output, result.code);
  }
  const facts = readClusterFacts(connectionFile(env));
  if (!facts) throw new ClusterStartError(`${UP_SCRIPT} succeeded but wrote no ${connectionFile(env)}`, result.output, result.code);
  return facts;
}

/** The client-side places the cluster's user must not be able to read: this checkout and the temp directory. */
export function clientPaths(): { checkout: string; tmp: string } {
  return { checkout: repoRoot, tmp: os.tmpdir() };
}

/**
 * Which of `paths` the cluster's user can read, asked over a real login AS that user
 * (ssh, like every job): a directory counts when the user may enter and list it, a file
 * when the user may read it. A real cluster shares no filesystem with the client, so on
 * this single-host cluster the checkout and the temp directory should be private
 * (mode 700, as .ci/run arranges); then no test can pass by accident because a job read
 * a file of the client.
 */
export async function readableByClusterUser(facts: ClusterFacts, paths: string[]): Promise<string[]> {
  const script = 'for p in "$@"; do if [ -d "$p" ]; then [ -x "$p" ] && [ -r "$p" ] && printf "%s\\n" "$p"; elif [ -r "$p" ]; then printf "%s\\n" "$p"; fi; done; true';
  const quoted = [script, "check", ...paths].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const result = await run("ssh", [...sshArgs(facts), `bash -c ${quoted}`], 20_000);
  if (result.code !== 0) throw new Error(`could not ask the cluster's user (${facts.user}) what it can read: exit ${result.code}: ${result.stderr.trim()}`);
  return result.stdout.split("\n").filter((line) => line !== "");
}
