// `hpcpipe submit SPEC --wait` as a user runs it: the built CLI (`node dist/cli/main.js`) in a child
// process with its default settings but the step cache (`--no-cache`: every round runs the same spec, so
// from the second round on the cache would restore the whole run and no job would run), timed from spawn
// to exit like the hand-written client, with the
// moments it reports under HPCPIPE_TIMING=1 (src/core/timing.ts) splitting the time into process
// start, connect, submit, waiting for the jobs and noticing their end, and collect.
import { spawn } from "node:child_process";
import { timingMarks } from "../../src/core/timing.js";
import { CLI } from "./cli-child.js";
import type { Bench } from "./cluster.js";
import { median, sec, spread, table } from "./format.js";
import { checkInterrupt, syncCleanups } from "./interrupt.js";

export interface CliWorkloadRun {
  /** Spawn to exit. */
  s: number;
  ok: boolean;
  runId: string | null;
  /** Seconds from spawn to each mark (cli-loaded, connect-start, connected, submitted, end-detected, collected, exit). */
  at: Record<string, number>;
  /** Scheduler queries of the watch and how it learned (from the CLI's debug line), null when it did not say. */
  queries: number | null;
  mode: string | null;
  steps: number;
}

/** The phases of one run, in seconds: what the table shows apart. */
export function phasesOf(r: CliWorkloadRun): Record<"start" | "connect" | "submit" | "wait" | "collect" | "exit" | "firstByte", number> {
  const at = (name: string): number => r.at[name] ?? NaN;
  return {
    firstByte: at("connect-start"),
    start: at("cli-loaded"),
    connect: at("connected") - at("cli-loaded"),
    submit: at("submitted") - at("connected"),
    wait: at("end-detected") - at("submitted"),
    collect: at("collected") - at("end-detected"),
    exit: r.s - at("collected"),
  };
}

export function cliSubmitRun(bench: Bench, spec: string): Promise<CliWorkloadRun> {
  checkInterrupt();
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HPCPIPE_HOME: bench.home, HPCPIPE_TIMING: "1", HPCPIPE_DEBUG: "1" };
    delete env.HPCPIPE_WATCH;
    delete env.HPCPIPE_WATCH_INOTIFY;
    const t0 = performance.timeOrigin + performance.now();
    const child = spawn(process.execPath, [CLI, "submit", spec, "--cluster", bench.config, "--wait", "--json", "--on-interrupt", "cancel", "--no-cache"], { env, stdio: ["ignore", "pipe", "pipe"] });
    const stop = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    };
    syncCleanups.add(stop);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", reject);
    child.once("close", (code) => {
      const end = performance.timeOrigin + performance.now();
      syncCleanups.delete(stop);
      const stderr = Buffer.concat(err).toString("utf8");
      const marks = timingMarks(stderr);
      const at: Record<string, number> = {};
      for (const [name, ms] of marks) at[name] = (ms - t0) / 1000;
      const watch = /watch ended: (\d+) scheduler quer(?:y|ies), \d+ watcher line\(s\), learning by (\w+)/.exec(stderr);
      let steps = 0;
      let ok = false;
      try {
        const state = JSON.parse(Buffer.concat(out).toString("utf8")) as { success?: boolean; step_states?: Record<string, unknown> };
        ok = state.success === true && code === 0;
        steps = Object.keys(state.step_states ?? {}).length;
      } catch {
        return reject(new Error(`hpcpipe submit ${spec} failed (exit ${code}):\n${stderr.slice(-4000)}`));
      }
      resolve({ s: (end - t0) / 1000, ok, runId: /submitted run (\S+):/.exec(stderr)?.[1] ?? null, at, queries: watch ? Number(watch[1]) : null, mode: watch?.[2] ?? null, steps });
    });
  });
}

export interface CliWorkload {
  label: string;
  spec: string;
  /** The baseline's shape file (bench/submit/*.jobs), or null for a row without a baseline. */
  jobs: string | null;
  rounds: number;
  /** Goal text and check on the hpcpipe median (s) and the ratio to the baseline. */
  goal: { text: string; met: (medianS: number, ratio: number) => boolean };
}

export interface CliWorkloadRow {
  w: CliWorkload;
  hp: CliWorkloadRun[];
  bl: Array<{ s: number; ok: boolean }>;
}

/** Runs each workload's rounds interleaved with its baseline: hpcpipe, baseline, hpcpipe, baseline... */
export async function cliWorkloadRows(
  bench: Bench,
  workloads: readonly CliWorkload[],
  baseline: (jobs: string) => Promise<{ s: number; ok: boolean }>,
): Promise<CliWorkloadRow[]> {
  const rows: CliWorkloadRow[] = [];
  for (const w of workloads) {
    const row: CliWorkloadRow = { w, hp: [], bl: [] };
    for (let r = 0; r < w.rounds; r++) {
      process.stderr.write(`  ${w.label}: hpcpipe CLI, round ${r + 1}/${w.rounds}...\n`);
      row.hp.push(await cliSubmitRun(bench, w.spec));
      if (w.jobs !== null) {
        process.stderr.write(`  ${w.label}: baseline, round ${r + 1}/${w.rounds}...\n`);
        row.bl.push(await baseline(w.jobs));
      }
    }
    rows.push(row);
  }
  return rows;
}

const ms = (s: number): string => (Number.isFinite(s) ? `${Math.round(s * 1000)} ms` : "-");

/** The table of the CLI rows: totals next to the baseline, then the medians of each phase. */
export function printCliWorkloads(rows: readonly CliWorkloadRow[], section: string): void {
  console.log(
    `\n${section} Submit to merged result as a user runs it: \`node dist/cli/main.js submit SPEC --wait --no-cache\` (default settings but\n` +
      "   the step cache, which would restore every round after the first: fusion on, watching by state-file events) in a child process, timed from spawn to exit, interleaved round by round with the\n" +
      "   hand-written bash client (bench/submit/baseline.sh, also spawn to exit: one ssh, squeue every 0.5 s, merges nothing).\n" +
      "   Times: median [min-max].",
  );
  const out: string[][] = [];
  for (const { w, hp, bl } of rows) {
    const h = median(hp.map((r) => r.s));
    const b = bl.length > 0 ? median(bl.map((r) => r.s)) : NaN;
    const ratio = h / b;
    const queries = hp.map((r) => r.queries ?? NaN);
    out.push([
      w.label,
      String(hp.length),
      spread(hp.map((r) => r.s)),
      hp.every((r) => r.ok && r.steps > 0) ? `ok (${hp[0]?.steps ?? 0} states)` : "FAILED",
      `${median(queries)} (${[...new Set(hp.map((r) => r.mode ?? "?"))].join("/")})`,
      bl.length > 0 ? spread(bl.map((r) => r.s)) : "-",
      bl.length > 0 ? (bl.every((r) => r.ok) ? "ok" : "FAILED") : "-",
      Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-",
      `${w.goal.text}: ${w.goal.met(h, ratio) ? "met" : "NOT met"}`,
    ]);
  }
  table(["workload", "rounds", "hpcpipe CLI", "merged", "sched. queries", "baseline", "all COMPLETED", "CLI / baseline", "goal"], out, [0]);
  console.log(`\n${section.replace(/\.$/, "")}b Where the CLI's time goes (medians of the rounds; from the marks it prints with HPCPIPE_TIMING=1):`);
  const phases: string[][] = [];
  for (const { w, hp } of rows) {
    const p = hp.map(phasesOf);
    const m = (k: keyof ReturnType<typeof phasesOf>): string => ms(median(p.map((x) => x[k])));
    phases.push([w.label, m("start"), m("firstByte"), m("connect"), m("submit"), m("wait"), m("collect"), m("exit"), sec(median(hp.map((r) => r.s)))]);
  }
  table(["workload", "process start", "first byte", "connect", "submit", "jobs + end seen", "collect", "exit", "total"], phases, [0]);
  console.log(
    "(process start: spawn to the CLI's modules loaded; first byte: spawn to the SSH connection's first packet; connect: modules loaded to\n" +
      " authenticated; submit: upload + submit script; jobs + end seen: submitted to the end noticed (the jobs' own time on SLURM included;\n" +
      " the end is decided from the state-file events); collect: merge + result.json; exit: flushing and process exit)",
  );
}
