// bench:scale, part 2 (issue 16): one REAL run of a large packed map on the project's SLURM test
// cluster (scripts/cluster/up.sh), through the CLI in child processes with their default settings:
//   submit --wait   compile, upload, submit, watch to the end, collect and merge (one child)
//   collect         the same collect again, alone (transfer of every state file, then the merge)
//   status          the finished run's status
//   report          the HTML report (--offline)
//   resume          `submit --resume RUN --wait`: the failed items (about 0.4 %) run again
// Each is timed from start to exit (wall, user + system CPU and peak RSS from /usr/bin/time -v).
// It also counts the files the run left on the cluster (states/, logs/, ctx/) and, from sacct, the
// tasks' time on the node per item (the wrapper's cost plus two trivial `bash -c` commands).
// The map is bench/lib/scale-spec.ts's: packed (--per-task, default 100), 2 trivial steps per item.
// Prints figures only. The default 100,000 items take about 10-15 minutes on the test cluster;
// 1,000,000 items (about an hour) is the run to make by hand once:
//   node dist/bench/scale-cluster.js [--items 100000] [--per-task 100] [--no-up] [--keep-remote]
// --trace-memory prints, for each child, its memory at each phase (HPCPIPE_MEMORY_TRACE=1, after a
// full collection: what is held, not garbage); --submit-only submits without --wait and cancels the run
// (the memory of compiling, asking the step cache and sending, in minutes at a million items).
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectCluster } from "../src/app/connect.js";
import { loadClusterConfig } from "../src/cluster/index.js";
import { remotePath } from "../src/transport/index.js";
import type { ShellWord } from "../src/transport/index.js";
import { COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { byKind, runCliChild, submittedRunId } from "./lib/cli-child.js";
import type { CliRun } from "./lib/cli-child.js";
import { closeBench, openBench } from "./lib/cluster.js";
import type { Bench } from "./lib/cluster.js";
import { int, mib, now, sec, table } from "./lib/format.js";
import { checkInterrupt, runBench } from "./lib/interrupt.js";
import { fails, writeScaleSpec } from "./lib/scale-spec.js";

const USAGE = `usage: node dist/bench/scale-cluster.js [--items N] [--per-task N] [--no-up] [--up] [--keep-remote]
  --items N        items of the map (default 100000)
  --per-task N     items per array task (default 100)
  --keep-remote    leave the run directory on the cluster (its path is printed)
  --trace-memory   print each child's memory at each phase (a full collection first)
  --submit-only    submit without --wait, then cancel the run (the submission's own cost)`;

/** User + system CPU seconds of a child, from /usr/bin/time -v's report; NaN without it. */
function cpuOf(logBase: string): number {
  try {
    const text = readFileSync(`${logBase}.time`, "utf8");
    const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
    return num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/);
  } catch {
    return NaN;
  }
}

interface Timed {
  run: CliRun;
  cpuS: number;
}

/** Set by --trace-memory: each child prints its memory at each phase, shown after it ends. */
let traceMemory = false;

async function timed(bench: Bench, name: string, args: string[], timeoutMin: number): Promise<Timed> {
  checkInterrupt();
  const logBase = join(bench.dir, name);
  process.stderr.write(`scale-cluster: hpcpipe ${args.join(" ")}\n`);
  const env: Record<string, string> = traceMemory ? { HPCPIPE_MEMORY_TRACE: "1", NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --expose-gc`.trim() } : {};
  const run = await runCliChild(args, { home: bench.home, cwd: bench.dir, logBase, timeoutMs: timeoutMin * 60_000, env });
  if (run.code !== 0 && run.code !== 4) process.stderr.write(`  exit ${run.code ?? run.signal}: ${run.stderr.trim().split("\n").slice(-3).join(" / ").slice(0, 800)}\n`);
  if (traceMemory) for (const line of run.stderr.split("\n").filter((l) => l.startsWith("hpcpipe-memory "))) console.log(`  ${name}: ${line.slice(15)}`);
  return { run, cpuS: cpuOf(logBase) };
}

function cell(t: Timed): string {
  const rss = t.run.timeMaxRssKb ?? t.run.maxRssKb;
  const how = t.run.code === 0 || t.run.code === 4 ? "" : ` (exit ${t.run.code ?? t.run.signal})`;
  return `${sec(t.run.s)}, ${t.cpuS.toFixed(1)} s CPU, ${mib(rss)}${how}`;
}

/** Runs one shell command line on the cluster (every value in it is ours, quoted) and returns its stdout. */
async function onCluster(bench: Bench, script: string, ...args: ShellWord[]): Promise<string> {
  const transport = await connectCluster(loadClusterConfig(bench.config));
  try {
    const r = await transport.exec(["bash", "-c", script, "hpcpipe-bench", ...args]);
    return r.stdout;
  } finally {
    await transport.close();
  }
}

/** Files under states/, logs/ and ctx/ of the run directory on the cluster. */
async function fileCounts(bench: Bench, runDir: string): Promise<string> {
  const out = await onCluster(bench, 'cd -- "$1" && for d in states logs ctx; do printf "%s %s\\n" "$d" "$(find "$d" -type f 2>/dev/null | wc -l)"; done', remotePath(runDir));
  return out.trim().split("\n").join(", ");
}

/** From sacct: the array tasks' summed elapsed time (each task has one CPU) per item, and the span first start to last end. */
async function nodeTime(bench: Bench, jobIds: readonly string[], items: number): Promise<string> {
  const out = await onCluster(bench, 'sacct -X -n -P -j "$1" -o ElapsedRaw,Start,End 2>/dev/null', jobIds.join(","));
  let sum = 0;
  let first = Infinity;
  let last = 0;
  let tasks = 0;
  for (const line of out.split("\n")) {
    const [elapsed, start, end] = line.split("|");
    if (elapsed === undefined || !/^\d+$/.test(elapsed)) continue;
    tasks++;
    sum += Number(elapsed);
    const s = Date.parse(start ?? "");
    const e = Date.parse(end ?? "");
    if (Number.isFinite(s)) first = Math.min(first, s);
    if (Number.isFinite(e)) last = Math.max(last, e);
  }
  if (tasks === 0) return "sacct shows no task (accounting off?)";
  return `${int(tasks)} tasks: ${(sum / items * 1000).toFixed(1)} ms of task time per item (sacct, whole seconds); first start to last end ${sec((last - first) / 1000)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ...COMMON_OPTIONS, items: { type: "string", default: "100000" }, "per-task": { type: "string", default: "100" }, "keep-remote": { type: "boolean", default: false }, "trace-memory": { type: "boolean", default: false }, "submit-only": { type: "boolean", default: false } } });
  traceMemory = values["trace-memory"];
  if (values.help) return console.log(USAGE);
  const items = wholeNumber("items", values.items, 1, USAGE);
  const perTask = wholeNumber("per-task", values["per-task"], 1, USAGE);
  const bench = openBench("scale-cluster", { up: values.up, noUp: values["no-up"] });
  const t0 = now();
  try {
    const spec = writeScaleSpec(bench.dir, items, perTask);
    const failing = Array.from({ length: items }, (_, i) => i).filter(fails).length;
    console.log(`a map of ${int(items)} items, ${int(perTask)} per task (${int(Math.ceil(items / perTask))} array tasks), 2 trivial steps per item; ${int(failing)} items fail step b`);
    const rows: string[][] = [];
    if (values["submit-only"]) {
      const sent = await timed(bench, "submit", ["submit", spec, "--cluster", bench.config], 60);
      // Without --wait, the run id is on stdout.
      const sentId = submittedRunId(sent.run.stdout);
      if (sentId === null) throw new Error(`no run id in the submit's stdout: ${sent.run.stdout.slice(-2000)}`);
      const cancelled = await timed(bench, "cancel", ["cancel", sentId], 10);
      table(["path", `${int(items)} items on the test cluster`], [["submit (compile, the step cache, upload, submit)", cell(sent)], ["  its remote commands", `${int(sent.run.calls.length)} (${byKind(sent.run.calls)})`], ["cancel", cell(cancelled)]], [1]);
      return;
    }
    const submit = await timed(bench, "submit", ["submit", spec, "--cluster", bench.config, "--wait", "--on-interrupt", "cancel"], 180);
    const runId = submittedRunId(submit.run.stderr);
    rows.push(["submit --wait (compile, submit, watch, collect, merge)", cell(submit)]);
    rows.push(["  its remote commands", `${int(submit.run.calls.length)} (${byKind(submit.run.calls)})`]);
    if (runId === null) throw new Error(`no run id in the submit's stderr: ${submit.run.stderr.slice(-2000)}`);
    const record = await bench.store.readRecord(runId);
    const local = bench.store.runDir(runId);
    const size = (name: string): string => {
      try {
        return `${(statSync(join(local, name)).size / 1e6).toFixed(1)} MB`;
      } catch {
        return "none";
      }
    };
    rows.push(["  result.json / result.items.jsonl", `${size("result.json")} / ${size("result.items.jsonl")}`]);
    rows.push(["files left on the cluster", await fileCounts(bench, record.remote_dir)]);
    rows.push(["time on the node", await nodeTime(bench, Object.values(record.jobs), items)]);
    rows.push(["collect (again)", cell(await timed(bench, "collect", ["collect", runId], 60))]);
    rows.push(["status (finished)", cell(await timed(bench, "status", ["status", runId], 60))]);
    rows.push(["report --offline", cell(await timed(bench, "report", ["report", runId, "--offline", "--out", join(bench.dir, "report.html")], 60))]);
    const resume = await timed(bench, "resume", ["submit", spec, "--cluster", bench.config, "--resume", runId, "--wait", "--on-interrupt", "cancel"], 120);
    rows.push([`submit --resume --wait (the ${int(failing)} failed items again)`, cell(resume)]);
    console.log("");
    table(["path", `${int(items)} items on the test cluster`], rows, [1]);
    console.log("(wall time, user + system CPU, peak RSS of the CLI child process; /usr/bin/time -v)");
    if (values["keep-remote"]) {
      console.log(`the run directory stays on the cluster: ${record.remote_dir}`);
      // closeBench removes bench.workdir: point it at nothing.
      bench.workdir = "$HOME/.hpcpipe-bench-scale-cluster-kept";
    }
  } finally {
    await closeBench(bench);
  }
  console.log(`\ntotal benchmark time: ${sec(now() - t0)}`);
}

await runBench(main);
