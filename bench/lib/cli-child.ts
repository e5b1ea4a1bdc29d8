// The real CLI (`node dist/cli/main.js`) in a child process, observed by the count-queries preload:
// every remote command it sent (with the time), its peak memory, its output and exit status.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { BENCH_DIR, REPO } from "./cluster.js";
import { now } from "./format.js";
import { syncCleanups } from "./interrupt.js";

/** The CLI the children run: this build's, or HPCPIPE_BENCH_CLI (another build's dist/cli/main.js, for a before/after). */
export const CLI = process.env.HPCPIPE_BENCH_CLI ?? join(REPO, "dist", "cli", "main.js");
const PRELOAD = pathToFileURL(join(BENCH_DIR, "lib", "count-queries.js")).href;
const TIME = "/usr/bin/time";

const logLine = z.union([
  z.object({ t: z.number(), kind: z.string() }).strict(),
  z.object({ exit: z.literal(true), maxRssKb: z.number().int().nonnegative() }).strict(),
]);

export interface RemoteCall {
  /** Seconds since the epoch. */
  t: number;
  kind: string;
}

export const SCHEDULER_QUERIES: readonly string[] = ["squeue", "sacct", "scontrol"];

export interface CliRun {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time of the child, seconds. */
  s: number;
  /** Every remote command it sent, in order. */
  calls: RemoteCall[];
  /** Peak resident memory (kB) from process.resourceUsage() at exit; NaN when the process did not exit normally. */
  maxRssKb: number;
  /** The same from /usr/bin/time -v (the whole process as the kernel saw it), when /usr/bin/time exists. */
  timeMaxRssKb: number | null;
}

/** Scheduler queries among the calls (squeue, sacct, scontrol). */
export function queries(calls: readonly RemoteCall[]): RemoteCall[] {
  return calls.filter((c) => SCHEDULER_QUERIES.includes(c.kind));
}

/** How many calls of each kind, as "squeue 12, sacct 3". */
export function byKind(calls: readonly RemoteCall[]): string {
  const counts = new Map<string, number>();
  for (const c of calls) counts.set(c.kind, (counts.get(c.kind) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
}

function readLog(file: string): { calls: RemoteCall[]; maxRssKb: number } {
  const calls: RemoteCall[] = [];
  let maxRssKb = NaN;
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const parsed = logLine.safeParse(JSON.parse(line));
    if (!parsed.success) throw new Error(`${file}:${i + 1}: not a line of the count-queries preload: ${line.slice(0, 200)}`);
    if ("exit" in parsed.data) maxRssKb = parsed.data.maxRssKb;
    else calls.push(parsed.data);
  }
  return { calls, maxRssKb };
}

function timeMaxRss(file: string): number | null {
  if (!existsSync(file)) return null;
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(file, "utf8"));
  return m ? Number(m[1]) : null;
}

export interface CliOptions {
  /** HPCPIPE_HOME of the child. */
  home: string;
  cwd: string;
  /** Where the preload's log and /usr/bin/time's report go (`<logBase>.calls`, `<logBase>.time`). */
  logBase: string;
  /** Kills the child (SIGTERM) after this long. */
  timeoutMs?: number;
  /** More environment for the child. */
  env?: Record<string, string>;
}

/** Runs `hpcpipe ARGS...` (the build in dist/) as a child process, under /usr/bin/time -v when it exists. */
export function runCliChild(args: string[], options: CliOptions): Promise<CliRun> {
  const log = `${options.logBase}.calls`;
  const timeFile = `${options.logBase}.time`;
  rmSync(log, { force: true });
  rmSync(timeFile, { force: true });
  const node = [process.execPath, "--import", PRELOAD, CLI, ...args];
  const argv = existsSync(TIME) ? [TIME, "-v", "-o", timeFile, ...node] : node;
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: options.cwd,
      env: { ...process.env, ...options.env, HPCPIPE_HOME: options.home, HPCPIPE_BENCH_LOG: log },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Stopped with the benchmark; `submit` on a non-terminal leaves its jobs running (the benchmark cancels them).
    const stop = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    };
    syncCleanups.add(stop);
    const timer = options.timeoutMs === undefined ? null : setTimeout(stop, options.timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      syncCleanups.delete(stop);
      try {
        const { calls, maxRssKb } = readLog(log);
        resolve({
          args,
          code,
          signal,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          s: now() - t0,
          calls,
          maxRssKb,
          timeMaxRssKb: timeMaxRss(timeFile),
        });
      } catch (error) {
        reject(error as Error);
      }
    });
  });
}

/** The run id `submit` printed on stderr ("submitted run <id>: ..."), or null. */
export function submittedRunId(stderr: string): string | null {
  return /submitted run (\S+):/.exec(stderr)?.[1] ?? null;
}
