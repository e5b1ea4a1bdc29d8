// bench:poll-parse — what a cluster status poll costs in-process when SLURM's answers are a
// million rows (issue 16), measured on SYNTHETIC answers (the test cluster's MaxArraySize is
// 1001, so a million-task map is 1,000 array jobs of 1,000 tasks; no real cluster answer of a
// million rows is needed to time the parsing). Each case runs in its own child process: the
// answer text is made first (not timed), then the parse or the whole poll (queryJobStatuses:
// the scheduler's queries against a fake executor, and the mapping onto a plan of 1,000 array
// jobs of 1,000 tasks) is timed, after a full garbage collection: wall, CPU
// (process.cpuUsage), the memory its result keeps (heap + array buffers after another full
// collection) and the child's peak RSS (which includes the answer texts, 30-60 MB each).
//
// The answers: a running map, per array 500 tasks COMPLETED (1 in 200 FAILED in sacct), 20
// RUNNING and 480 PENDING (throttled); squeue with -r lists every task on its own row, without
// -r the pending ones as one range row `A_[520-999%20]`; sacct lists every task that started
// and the pending ones as one range row. poll-live: squeue still holds every task; poll-mixed:
// the finished tasks have left squeue (sacct is asked for them); poll-sacct: squeue holds none;
// poll-finished: the whole map has ended and left squeue, sacct lists its 1,000,000 tasks. The
// scheduler asks sacct through the cluster-side filter (src/slurm/sacct-runs.ts): the fake answers
// it with the answer folded by the real filter script, run here before the clock starts;
// poll-finished-plain is poll-finished with the filter off (plain sacct, a million rows), and
// sacct-runs the parse of the folded finished answer alone.
//
// `--cases ssh-sacct-1m` (not in the default list; the test cluster must be up) has the cluster
// print a million-row sacct answer of the whole map finished (awk, 36 MB) and receives it
// through the project's SSH transport: the CPU of receiving it and of parsing it, apart;
// `ssh-sacct-1m-runs` the same answer sent through the filter script on the cluster.
// `ssh-poll-finished` (filter) and `ssh-poll-finished-plain` (plain sacct) time the whole first
// poll of the finished map through the cluster: the real squeue of the 1,000 array ids (none is
// there), the sacct answer printed there by awk in place of sacct, received, parsed and mapped
// onto the plan (queryJobStatuses). Add the CLI's start for a poll by `hpcpipe status`.
// `ssh-poll-busy[-plain]`: the same with the tasks' own job ids not consecutive (a busy cluster).
//
//   npm run build && node dist/bench/poll-parse.js [--cases squeue-r,squeue,sacct,sacct-runs,poll-live,poll-mixed,poll-sacct,poll-finished,poll-finished-plain,ssh-sacct-1m,ssh-sacct-1m-runs,ssh-poll-finished,ssh-poll-finished-plain,ssh-poll-busy,ssh-poll-busy-plain] [--runs 3]
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { queryJobStatuses } from "../src/app/collect.js";
import type { CompiledPlan } from "../src/plan/plan.js";
import * as slurm from "../src/slurm/index.js";
import type { CommandExecutor } from "../src/slurm/index.js";
import { REPO } from "./lib/cluster.js";
import { median, table } from "./lib/format.js";

const ARRAYS = 1000;
const TASKS = 1000;
const DONE = 500;
const RUNNING = 20;
const FIRST_ARRAY = 1_000_000;
const arrayId = (a: number): number => FIRST_ARRAY + a * (TASKS + 1);
const ownId = (a: number, t: number): number => arrayId(a) + 1 + t;
const failing = (a: number, t: number): boolean => (a * TASKS + t) % 200 === 7;

/** squeue's answer; `gone`: tasks 0..DONE-1 left squeue (finished longer than MinJobAge ago). */
function squeueText(expand: boolean, gone: boolean): string {
  const parts: string[] = [];
  for (let a = 0; a < ARRAYS; a++) {
    const A = arrayId(a);
    if (!gone) for (let t = 0; t < DONE; t++) parts.push(`${A}_${t}|${ownId(a, t)}|${A}|${t}|${failing(a, t) ? "FAILED|NonZeroExitCode" : "COMPLETED|None"}|(null)|hpcpipe:bench\n`);
    for (let t = DONE; t < DONE + RUNNING; t++) parts.push(`${A}_${t}|${ownId(a, t)}|${A}|${t}|RUNNING|None|(null)|hpcpipe:bench\n`);
    if (expand) for (let t = DONE + RUNNING; t < TASKS; t++) parts.push(`${A}_${t}|${A}|${A}|${t}|PENDING|JobArrayTaskLimit|(null)|hpcpipe:bench\n`);
    else parts.push(`${A}_[${DONE + RUNNING}-${TASKS - 1}%${RUNNING}]|${A}|${A}|${DONE + RUNNING}-${TASKS - 1}%${RUNNING}|PENDING|JobArrayTaskLimit|(null)|hpcpipe:bench\n`);
  }
  return parts.join("");
}

/** sacct's answer: every task that started on its own row, the pending ones as one range; `finished`: every task ended. */
function sacctText(finished: boolean): string {
  const parts: string[] = [];
  for (let a = 0; a < ARRAYS; a++) {
    const A = arrayId(a);
    const started = finished ? TASKS : DONE + RUNNING;
    for (let t = 0; t < started; t++) {
      const state = t >= DONE && !finished ? "RUNNING|0:0|None" : failing(a, t) ? "FAILED|3:0|NonZeroExitCode" : "COMPLETED|0:0|None";
      parts.push(`${A}_${t}|${ownId(a, t)}|${state}\n`);
    }
    if (!finished) parts.push(`${A}_[${DONE + RUNNING}-${TASKS - 1}%${RUNNING}]|${A}|PENDING|0:0|JobArrayTaskLimit\n`);
  }
  return parts.join("");
}

/** A plan of ARRAYS array jobs of TASKS tasks (one map in chunks), and their SLURM ids. */
function plan(): { plan: CompiledPlan; jobs: Record<string, string> } {
  const jobs: Record<string, string> = {};
  const planJobs = Array.from({ length: ARRAYS }, (_, a) => {
    const id = `j${String(a).padStart(3, "0")}`;
    jobs[id] = String(arrayId(a));
    return { id, shape: "map", map: { key: "p.each" }, steps: ["p.each.{i}.a"], bodies: [], dependencies: [], array: { count: TASKS, offset: a * TASKS, throttle: RUNNING, chunk: a, chunks: ARRAYS, total: ARRAYS * TASKS, indices: null } };
  });
  return { plan: { runId: "bench", jobs: planJobs } as unknown as CompiledPlan, jobs };
}

interface Figure {
  rows: number;
  /** Heap and array buffers still in use after the work, its result kept (after a full collection), MiB. */
  keptMb: number;
  wallMs: number;
  cpuMs: number;
  rssMb: number;
  check: string;
}

const CASES = ["squeue-r", "squeue", "sacct", "sacct-runs", "poll-live", "poll-mixed", "poll-sacct", "poll-finished", "poll-finished-plain", "ssh-sacct-1m", "ssh-sacct-1m-runs", "ssh-poll-finished", "ssh-poll-finished-plain", "ssh-poll-busy", "ssh-poll-busy-plain"] as const;
/** Cases run when --cases is not given (ssh-sacct-1m needs the test cluster). */
const DEFAULT_CASES: readonly Case[] = ["squeue-r", "squeue", "sacct", "sacct-runs", "poll-live", "poll-mixed", "poll-sacct", "poll-finished", "poll-finished-plain"];

/**
 * The awk program printing, on the cluster, sacct's answer for the whole map finished: every
 * task's own row (1,000,000 rows, about 36 MB), as sacctText(true) makes it. `busy`: the tasks'
 * own job ids are not consecutive (each task's is 3 above the one before, as if other users'
 * jobs took the ids between: on a busy cluster), so no two rows fold by own id.
 */
const awkSacctFinished = (busy = false): string =>
  `BEGIN { for (a = 0; a < ${ARRAYS}; a++) { A = ${FIRST_ARRAY} + a * ${TASKS + 1}; for (t = 0; t < ${TASKS}; t++) { ` +
  `if ((a * ${TASKS} + t) % 200 == 7) s = "FAILED|3:0|NonZeroExitCode"; else s = "COMPLETED|0:0|None"; ` +
  `printf "%d_%d|%d|%s\\n", A, t, ${busy ? `A + 1 + 3 * t` : "A + 1 + t"}, s } } }`;
type Case = (typeof CASES)[number];

const rowsOf = (text: string): number => {
  let n = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) n++;
  return n;
};

/** The parse hpcpipe's status query uses (the compact one when this build has it). */
function parser(name: "squeue" | "sacct"): (text: string) => { size: number } | unknown[] {
  const compact = (slurm as Record<string, unknown>)[name === "squeue" ? "parseSqueueAnswer" : "parseSacctAnswer"];
  if (typeof compact === "function") return compact as (text: string) => { size: number };
  return name === "squeue" ? slurm.parseSqueue : slurm.parseSacct;
}

/**
 * A million-row sacct answer through the project's SSH transport from the test cluster (printed
 * there by awk): the CPU of receiving it (ssh2, decoding) and, apart, of parsing it. `runs`: sent
 * through the cluster-side filter (src/slurm/sacct-runs.ts), as the scheduler asks sacct now.
 */
async function sshCase(runs: boolean): Promise<Figure> {
  const { connectCluster, transportExecutor } = await import("../src/app/connect.js");
  const { loadClusterConfig } = await import("../src/cluster/index.js");
  const transport = await connectCluster(loadClusterConfig(join(REPO, "cluster-configs", "localcluster.yaml")));
  try {
    const execute = transportExecutor(transport, true);
    await execute(["true"]);
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const printer = ["awk", awkSacctFinished()];
    const result = await execute(runs ? slurm.sacctRunsArgvOf(printer) : printer);
    const receiveMs = performance.now() - t0;
    const received = process.cpuUsage(c0);
    if (result.code !== 0) throw new Error(`awk on the cluster failed: ${result.stderr}`);
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    const answer = runs ? slurm.parseSacctRunsAnswer(result.stdout) : slurm.parseSacctAnswer(result.stdout);
    const parseMs = performance.now() - t1;
    const parsed = process.cpuUsage(c1);
    const ms = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
    const size = result.stdout.length >= 2 ** 20 ? `${(result.stdout.length / 2 ** 20).toFixed(1)} MiB` : `${(result.stdout.length / 1024).toFixed(0)} KiB`;
    return {
      rows: rowsOf(result.stdout),
      keptMb: NaN,
      wallMs: receiveMs + parseMs,
      cpuMs: ms(received) + ms(parsed),
      rssMb: process.resourceUsage().maxRSS / 1024,
      check: `${size} received in ${receiveMs.toFixed(0)} ms wall, ${ms(received).toFixed(0)} ms CPU; parsed in ${ms(parsed).toFixed(0)} ms CPU (${answer.size} segments, ${answer.records().length} tasks)`,
    };
  } finally {
    await transport.close();
  }
}

/**
 * The whole first poll of the finished million-task map through the test cluster: squeue asked
 * for real (none of the 1,000 array ids is there), sacct's answer printed by awk there (plain, or
 * through the filter when the scheduler asks so), received over SSH, parsed and mapped onto the
 * plan (queryJobStatuses): the CPU of this process for all of it (not the CLI's start).
 */
async function sshPollCase(filter: boolean, busy: boolean): Promise<Figure> {
  const { connectCluster, transportExecutor } = await import("../src/app/connect.js");
  const { loadClusterConfig } = await import("../src/cluster/index.js");
  const transport = await connectCluster(loadClusterConfig(join(REPO, "cluster-configs", "localcluster.yaml")));
  try {
    const remote = transportExecutor(transport, true);
    await remote(["true"]);
    const calls: string[] = [];
    let rows = 0;
    let bytes = 0;
    const printer = ["awk", awkSacctFinished(busy)];
    // sacct's argv (plain, or the filter's around it) with the sacct words replaced by the printer.
    const execute: CommandExecutor = async (argv) => {
      const at = argv.indexOf("sacct");
      const sent = at === -1 ? argv : [...argv.slice(0, at), ...printer];
      calls.push(at === -1 ? (argv[0] ?? "") : at === 0 ? "sacct" : "sacct(filter)");
      const result = await remote(sent);
      rows += rowsOf(result.stdout);
      bytes += result.stdout.length;
      return result;
    };
    const { plan: p, jobs } = plan();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const statuses = await queryJobStatuses(new slurm.SlurmScheduler(execute, { sacctFilter: filter }), p, jobs);
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const counts = { pending: 0, running: 0, done: 0, failed: 0 };
    for (const s of statuses) for (const k of Object.keys(counts) as Array<keyof typeof counts>) counts[k] += s.counts[k];
    return {
      rows,
      keptMb: NaN,
      wallMs,
      cpuMs: (c.user + c.system) / 1000,
      rssMb: process.resourceUsage().maxRSS / 1024,
      check: `${calls.join("+")} (${(bytes / 2 ** 20).toFixed(1)} MiB): ${JSON.stringify(counts)}`,
    };
  } finally {
    await transport.close();
  }
}

/** What the cluster-side filter prints for `text` (the real script, run here with bash and awk; `options`: its words before the command). */
function throughFilter(text: string, options: readonly string[] = []): string {
  const child = spawnSync("bash", ["-c", slurm.SACCT_RUNS_SCRIPT, slurm.SACCT_RUNS_NAME, ...options, "cat"], { input: text, encoding: "utf8", maxBuffer: 1 << 30 });
  if (child.status !== 0) throw new Error(`the sacct filter failed here: ${child.stderr}`);
  return child.stdout;
}

async function runCase(which: Case): Promise<Figure> {
  if (which === "ssh-sacct-1m" || which === "ssh-sacct-1m-runs") return sshCase(which === "ssh-sacct-1m-runs");
  if (which.startsWith("ssh-poll-")) return sshPollCase(!which.endsWith("-plain"), which.includes("-busy"));
  let text = "";
  let work: () => Promise<string>;
  /** What the work produced, kept alive until its memory is measured. */
  let kept: unknown = null;
  /** The rows of the answers the work read (counted after the clock stops). */
  let rowsRead = (): number => rowsOf(text);
  if (which === "sacct-runs") {
    // The finished map's million rows as the cluster-side filter sends them (folded here, not timed).
    text = throughFilter(sacctText(true));
    work = async () => {
      const out = slurm.parseSacctRunsAnswer(text);
      kept = out;
      return `${out.size} segments`;
    };
  } else if (which === "squeue-r" || which === "squeue" || which === "sacct") {
    text = which === "sacct" ? sacctText(false) : squeueText(which === "squeue-r", false);
    const parse = parser(which === "sacct" ? "sacct" : "squeue");
    work = async () => {
      const out = parse(text);
      kept = out;
      return Array.isArray(out) ? `${out.length} records` : `${(out as { size: number }).size} segments`;
    };
  } else {
    const { plan: p, jobs } = plan();
    const gone = which !== "poll-live";
    const finished = which === "poll-finished" || which === "poll-finished-plain";
    // Only the answers the case is asked for are made (a 37 MB text kept alive costs the collector during the timed work).
    const squeueAnswers = which === "poll-sacct" || finished ? { r: "", plain: "" } : { r: squeueText(true, gone), plain: squeueText(false, gone) };
    const plainSacct = which === "poll-finished-plain";
    // sacct's answer as the scheduler asks it: plain, or as the cluster-side filter sends it (folded here before the clock starts).
    const sacct = plainSacct ? sacctText(finished) : "";
    const sacctRuns = plainSacct ? "" : throughFilter(sacctText(finished), [slurm.SACCT_RUNS_ANY_OWN]);
    const calls: string[] = [];
    const answered: string[] = [];
    const execute: CommandExecutor = async (argv) => {
      // The poll asks the filter with --any-own-ids (it reads no task's own job id).
      const filtered = argv[0] === "bash" && argv[3] === slurm.SACCT_RUNS_NAME && argv[4] === slurm.SACCT_RUNS_ANY_OWN && argv[5] === "sacct";
      calls.push(filtered ? "sacct(filter)" : (argv[0] ?? ""));
      const stdout = argv[0] === "squeue" ? (argv.includes("-r") ? squeueAnswers.r : squeueAnswers.plain) : argv[0] === "sacct" && plainSacct ? sacct : filtered && !plainSacct ? sacctRuns : null;
      if (stdout === null) return { code: 1, stdout: "", stderr: `unexpected ${argv[0] ?? ""}` };
      answered.push(stdout);
      return { code: 0, stdout, stderr: "" };
    };
    // The rows the poll was answered (squeue with or without -r, as this build asks).
    rowsRead = () => answered.reduce((n, t) => n + rowsOf(t), 0);
    work = async () => {
      const statuses = await queryJobStatuses(new slurm.SlurmScheduler(execute, { sacctFilter: which !== "poll-finished-plain" }), p, jobs);
      kept = statuses;
      const counts = { pending: 0, running: 0, done: 0, failed: 0 };
      for (const s of statuses) for (const k of Object.keys(counts) as Array<keyof typeof counts>) counts[k] += s.counts[k];
      return `${calls.join("+")}: ${JSON.stringify(counts)}`;
    };
  }
  // The garbage of making the answer is collected before the clock starts (the child runs with --expose-gc).
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const memory = (): number => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const m0 = memory();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const check = await work();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  gc?.();
  const keptMb = (memory() - m0) / 2 ** 20;
  if (kept === null) throw new Error("the work kept nothing");
  return { rows: rowsRead(), keptMb, wallMs, cpuMs: (c.user + c.system) / 1000, rssMb: process.resourceUsage().maxRSS / 1024, check };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { cases: { type: "string" }, runs: { type: "string", default: "3" }, child: { type: "string" } } });
  if (values.child !== undefined) {
    console.log(JSON.stringify(await runCase(values.child as Case)));
    return;
  }
  const cases = (values.cases ?? DEFAULT_CASES.join(",")).split(",").map((c) => c.trim()) as Case[];
  for (const c of cases) if (!CASES.includes(c)) throw new Error(`unknown case ${c}; cases: ${CASES.join(", ")}`);
  const runs = Number(values.runs);
  const self = fileURLToPath(import.meta.url);
  const rows: string[][] = [];
  for (const c of cases) {
    const figures: Figure[] = [];
    for (let r = 0; r < runs; r++) {
      const child = spawnSync(process.execPath, ["--expose-gc", self, "--child", c], { encoding: "utf8", maxBuffer: 1 << 20 });
      if (child.status !== 0) throw new Error(`case ${c} failed: ${child.stderr.slice(-2000)}`);
      figures.push(JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "{}") as Figure);
    }
    const f = figures[0] as Figure;
    const cpu = figures.map((x) => x.cpuMs);
    rows.push([c, f.rows.toLocaleString("en-US"), `${median(cpu).toFixed(0)} ms [${Math.min(...cpu).toFixed(0)}-${Math.max(...cpu).toFixed(0)}]`, `${median(figures.map((x) => x.wallMs)).toFixed(0)} ms`, Number.isFinite(f.keptMb) ? `${median(figures.map((x) => x.keptMb)).toFixed(1)} MiB` : "-", `${median(figures.map((x) => x.rssMb)).toFixed(0)} MiB`, f.check]);
  }
  table(["case (synthetic, in-process)", "answer rows", "CPU (median [range])", "wall", "result kept", "child peak RSS", "result"], rows, [6]);
  console.log("\n(CPU and wall of the parse or poll alone; result kept: heap + array buffers its result holds, after a full GC; peak RSS includes the answer texts)");
}

await main();
