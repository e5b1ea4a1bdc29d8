// bench/load (issue 6, load figures) on the project's own SLURM test cluster over SSH
// (scripts/cluster/up.sh), always through the REAL CLI in child processes
// (`node dist/cli/main.js ...`, with a private HPCPIPE_HOME), each observed by a preload
// (bench/lib/count-queries.ts) that logs every remote command it sends, so scheduler queries
// (squeue, sacct, scontrol) are counted exactly, and the process's peak memory
// (process.resourceUsage().maxRSS; also /usr/bin/time -v's when it exists):
//   map         a 2,000-task map (one trivial step per item, items_per_task 1: two array chunks
//               under MaxArraySize 1001) with `submit --wait --json`: every item's state present
//               and merged, status polls and scheduler queries, the CLI's peak memory.
//   concurrent  20 runs submitted at once by 20 CLI processes (`submit --wait --json`) into the
//               SAME HPCPIPE_HOME: run ids and records distinct and consistent, each run's SLURM
//               jobs its own (comment hpcpipe:<run id> on the cluster, disjoint ids), every run
//               collected with its own result (its steps published their run id and --set tag).
//   watch       the polling budget: one long job (sleep --watch-minutes, default 10) watched by
//               `hpcpipe status RUN --watch` from the moment it runs to its end: scheduler
//               queries per minute next to the cap the poll policy implies (bench/lib/poll-budget.ts).
// Prints figures only; asserts nothing (the cluster is shared with other users: times are noisy).
// Run after a build: `npm run bench:load`, or `node dist/bench/load.js [--only map,concurrent,watch]
// [--tasks N] [--throttle N] [--runs N] [--watch-minutes M]`. About 10 + 2 + --watch-minutes minutes.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { connectCluster, schedulerOver } from "../src/app/connect.js";
import { loadClusterConfig } from "../src/cluster/index.js";
import { DEFAULT_POLL_POLICY } from "../src/slurm/index.js";
import { taggedJobs } from "../test/faults/env.js";
import { chosenSections, COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { byKind, queries, runCliChild, submittedRunId } from "./lib/cli-child.js";
import type { CliRun, RemoteCall } from "./lib/cli-child.js";
import { closeBench, openBench } from "./lib/cluster.js";
import type { Bench } from "./lib/cluster.js";
import { int, median, mib, now, sec, table } from "./lib/format.js";
import { checkInterrupt, interrupt, runBench } from "./lib/interrupt.js";
import { pollBudget, QUERIES_PER_POLL } from "./lib/poll-budget.js";
import { OWNER_PIPELINE, ownerSpec, ownerValue } from "./lib/specs.js";

const SECTIONS = ["map", "concurrent", "watch"] as const;

const USAGE = `usage: node dist/bench/load.js [options]
  --only LIST          sections, comma-separated (default all):
                       map         a map of --tasks array tasks: submit --wait, states merged, queries, peak memory
                       concurrent  --runs CLI processes submitting at once into one HPCPIPE_HOME
                       watch       queries per minute of status --watch over a job of --watch-minutes
  --tasks N            array tasks of the map (default 2000)
  --throttle N         the map's throttle (%N over its chunks), leaving CPUs to other users of the
                       shared test cluster (default 3 of its 4 CPUs; 0: none)
  --runs N             concurrent submitters (default 20)
  --watch-minutes M    how long the watched job runs (default 10)
  --up                 run scripts/cluster/up.sh first even when the cluster answers
  --no-up              never run scripts/cluster/up.sh`;

/** What the CLI prints with `submit --wait --json`: the merged CompletedState (only what is checked here). */
const stepState = z.object({
  success: z.boolean(),
  meta: z.record(z.string(), z.unknown()),
  outputs: z.record(z.string(), z.unknown()),
});
const mergedSchema = z.object({
  success: z.boolean(),
  meta: z.record(z.string(), z.unknown()),
  step_states: z.record(z.string(), stepState),
});
type Merged = z.infer<typeof mergedSchema>;

function parseMerged(run: CliRun, what: string): Merged | string {
  try {
    const parsed = mergedSchema.safeParse(JSON.parse(run.stdout));
    return parsed.success ? parsed.data : `${what}: the merged result on stdout is not a CompletedState: ${parsed.error.issues[0]?.message ?? ""}`;
  } catch {
    return `${what}: no JSON on stdout (exit ${run.code ?? run.signal}): ${lastLine(run.stderr)}`;
  }
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1)?.slice(0, 300) ?? "";
}

/** Temp files (`pipeline_*`) left in a run's local record directory: a write that did not complete. */
function leftovers(bench: Bench, runId: string): string[] {
  return readdirSync(bench.store.runDir(runId)).filter((f) => f.startsWith("pipeline_") || f.includes(".tmp"));
}

const published = (m: Merged, key: string): Record<string, unknown> => (m.step_states[key]?.outputs.published ?? {}) as Record<string, unknown>;

// ---------------------------------------------------------------- a: a 2,000-task map

function writeMapSpec(bench: Bench, tasks: number, throttle: number): string {
  writeFileSync(join(bench.dir, "load-items.txt"), `${Array.from({ length: tasks }, (_, i) => `item${String(i).padStart(5, "0")}`).join("\n")}\n`);
  const spec = join(bench.dir, "load-map.yaml");
  writeFileSync(
    spec,
    [
      "name: load_map",
      'version: "1.0"',
      "defaults:",
      "  cpus: 1",
      '  time: "2:00"',
      "steps:",
      "  - map: items",
      "    items_file: load-items.txt",
      "    as: item",
      ...(throttle > 0 ? [`    throttle: ${throttle}`] : []),
      "    steps:",
      "      - step: touch",
      "        run: printf '%s\\n' \"$item\"",
      "",
    ].join("\n"),
  );
  return spec;
}

async function mapBench(bench: Bench, tasks: number, throttle: number): Promise<void> {
  checkInterrupt();
  const spec = writeMapSpec(bench, tasks, throttle);
  process.stderr.write(`map: submit --wait of a ${int(tasks)}-task map (throttle ${throttle || "none"}) by the CLI in a child process...\n`);
  const run = await runCliChild(["submit", spec, "--cluster", bench.config, "--wait", "--json", "--on-interrupt", "cancel"], {
    home: bench.home,
    cwd: bench.dir,
    logBase: join(bench.dir, "map"),
    timeoutMs: 90 * 60_000,
  });
  const runId = submittedRunId(run.stderr);
  const merged = parseMerged(run, "map");
  const q = queries(run.calls);
  const polls = run.calls.filter((c) => c.kind === "squeue").length;
  const rows: string[][] = [["CLI", `node dist/cli/main.js submit load-map.yaml --cluster ... --wait --json: exit ${run.code ?? run.signal}, run ${runId ?? "?"}`]];
  if (runId) {
    const plan = await bench.store.readPlan(runId);
    const record = await bench.store.readRecord(runId);
    const chunks = plan.jobs.filter((j) => j.shape === "map").map((j) => `${int(j.array?.count ?? 1)}${j.array?.throttle ? ` (%${j.array.throttle})` : ""}`);
    rows.push(["SLURM jobs: array chunks of the map", `${Object.keys(record.jobs).length} job(s): ${chunks.join(" + ")} tasks`], ["record phase", record.phase]);
    const result = join(bench.store.runDir(runId), "result.json");
    rows.push(["result.json", `${(statSync(result).size / 1e6).toFixed(2)} MB; temp files left: ${leftovers(bench, runId).length}`]);
  }
  if (typeof merged === "string") rows.push(["merged result", merged]);
  else {
    const itemKey = /^load_map\.items\.\d+$/;
    const stepKey = /^load_map\.items\.\d+\.touch$/;
    const entries = Object.entries(merged.step_states);
    const items = entries.filter(([k]) => itemKey.test(k));
    const steps = entries.filter(([k]) => stepKey.test(k));
    const okItems = items.filter(([, s]) => s.success).length;
    const echoed = steps.filter(([k, s]) => s.success && typeof s.meta.item === "string" && k.startsWith(`load_map.items.${Number(String(s.meta.item).slice(4))}.`)).length;
    const notRun = entries.filter(([, s]) => s.meta.not_run === true).length;
    rows.push(
      ["item states present / succeeded", `${int(items.length)} / ${int(okItems)} of ${int(tasks)}`],
      ["step states present / succeeded with their own item", `${int(steps.length)} / ${int(echoed)}`],
      ["step states merged in all; not run", `${int(entries.length)}; ${notRun}`],
      ["merged: success, meta.run_id", `${merged.success}, ${String(merged.meta.run_id)}`],
    );
  }
  const minutes = run.s / 60;
  rows.push(
    ["wall time, submit to merged result (the child process)", sec(run.s)],
    ["status polls (one squeue each; the collect reuses the last)", int(polls)],
    ["scheduler queries", `${int(q.length)} (${byKind(q)}); ${(q.length / minutes).toFixed(1)} a minute`],
    ["every remote command", `${int(run.calls.length)} (${byKind(run.calls)})`],
    ["peak memory of the CLI (maxRSS: resourceUsage / time -v)", `${mib(run.maxRssKb)} / ${run.timeMaxRssKb === null ? "no /usr/bin/time" : mib(run.timeMaxRssKb)}`],
  );
  console.log(`\n1. A ${int(tasks)}-task map submitted, polled and collected by the CLI (one trivial step per item, items_per_task 1)`);
  table(["what", "figure"], rows, [1]);
  if (run.code !== 0) console.log(`stderr (last line): ${lastLine(run.stderr)}`);
  console.log(
    "(the watch learns of finished tasks from the state watcher's events and asks the scheduler only for what files cannot\n" +
      " say: at its start, after a failure, and otherwise at most every 60 s (README, Watching a run); HPCPIPE_WATCH=poll\n" +
      " polls instead, and section 3's polling budget is for that)",
  );
}

// ---------------------------------------------------------------- b: concurrent submitters

function writeConcurrentSpec(bench: Bench): string {
  const spec = join(bench.dir, "load-concurrent.yaml");
  writeFileSync(spec, ownerSpec());
  return spec;
}

interface ConcurrentRow {
  tag: string;
  run: CliRun;
  runId: string | null;
  problems: string[];
  jobs: string[];
}

async function concurrentBench(bench: Bench, n: number): Promise<void> {
  checkInterrupt();
  const spec = writeConcurrentSpec(bench);
  process.stderr.write(`concurrent: ${n} CLI processes submitting at once into one HPCPIPE_HOME...\n`);
  const t0 = now();
  const runs = await Promise.all(
    Array.from({ length: n }, (_, k) =>
      runCliChild(["submit", spec, "--cluster", bench.config, "--set", `tag=t${k}`, "--wait", "--json", "--on-interrupt", "cancel"], {
        home: bench.home,
        cwd: bench.dir,
        logBase: join(bench.dir, `concurrent-${k}`),
        timeoutMs: 30 * 60_000,
      }),
    ),
  );
  const wallS = now() - t0;
  checkInterrupt();

  const remote = await connectCluster(loadClusterConfig(bench.config));
  const rows: ConcurrentRow[] = [];
  try {
    for (const [k, run] of runs.entries()) {
      const tag = `t${k}`;
      const runId = submittedRunId(run.stderr);
      const problems: string[] = [];
      let jobs: string[] = [];
      if (run.code !== 0) problems.push(`exit ${run.code ?? run.signal}: ${lastLine(run.stderr)}`);
      if (runId === null) {
        rows.push({ tag, run, runId, problems: [...problems, "no run id printed"], jobs });
        continue;
      }
      const record = await bench.store.readRecord(runId);
      const plan = await bench.store.readPlan(runId);
      jobs = Object.values(record.jobs);
      if (record.phase !== "collected") problems.push(`record phase ${record.phase}`);
      if (plan.runId !== runId) problems.push(`plan.json is run ${plan.runId}`);
      if (leftovers(bench, runId).length > 0) problems.push(`temp files left: ${leftovers(bench, runId).join(", ")}`);
      // Each plan job's SLURM id is the one job on the cluster tagged hpcpipe:<run id> for it.
      const tagged = await taggedJobs(remote, runId);
      for (const [job, id] of Object.entries(record.jobs)) {
        const onCluster = tagged.get(job) ?? [];
        if (onCluster.length !== 1 || onCluster[0] !== id) problems.push(`${job}: recorded ${id}, tagged on the cluster: ${onCluster.join(",") || "none"}`);
      }
      if (tagged.size !== Object.keys(record.jobs).length) problems.push(`${tagged.size} plan jobs tagged with this run on the cluster, ${Object.keys(record.jobs).length} recorded`);
      const merged = parseMerged(run, runId);
      if (typeof merged === "string") problems.push(merged);
      else {
        if (merged.meta.run_id !== runId) problems.push(`result meta.run_id ${String(merged.meta.run_id)}`);
        if (!merged.success) problems.push("result not a success");
        const owner = published(merged, `${OWNER_PIPELINE}.whoami`).owner;
        const checked = published(merged, `${OWNER_PIPELINE}.check`).checked;
        if (owner !== ownerValue(runId, tag)) problems.push(`whoami published ${String(owner)}`);
        if (checked !== ownerValue(runId, tag)) problems.push(`check published ${String(checked)}`);
        const stored = mergedSchema.safeParse(JSON.parse(readFileSync(join(bench.store.runDir(runId), "result.json"), "utf8")));
        if (!stored.success || stored.data.meta.run_id !== runId || published(stored.data, `${OWNER_PIPELINE}.whoami`).owner !== ownerValue(runId, tag)) problems.push("result.json is not this run's");
      }
      rows.push({ tag, run, runId, problems, jobs });
    }
  } finally {
    await remote.close();
  }

  const { records, problems: storeProblems } = await bench.store.list();
  const mine = records.filter((r) => r.pipeline === OWNER_PIPELINE);
  const ids = rows.flatMap((r) => (r.runId ? [r.runId] : []));
  const allJobs = rows.flatMap((r) => r.jobs);
  console.log(`\n2. ${n} runs submitted at once by ${n} CLI processes into ONE HPCPIPE_HOME (each run: 2 jobs, whoami -> check; submit --wait --json)`);
  table(
    ["process", "run id", "exit", "wall", "SLURM jobs", "queries (polls)", "peak memory", "problems"],
    rows.map((r) => [
      r.tag,
      r.runId ?? "-",
      String(r.run.code ?? r.run.signal),
      sec(r.run.s),
      r.jobs.join(",") || "-",
      `${queries(r.run.calls).length} (${r.run.calls.filter((c) => c.kind === "squeue").length})`,
      mib(r.run.maxRssKb),
      r.problems.join("; ") || "none",
    ]),
    [1, 4, 7],
  );
  table(
    ["check", "figure"],
    [
      ["run ids printed / distinct", `${ids.length} / ${new Set(ids).size} of ${n}`],
      ["records in the HPCPIPE_HOME / unreadable", `${mine.length} / ${storeProblems.length}`],
      ["records collected", `${mine.filter((r) => r.phase === "collected").length} of ${n}`],
      ["SLURM job ids / distinct over all runs", `${allJobs.length} / ${new Set(allJobs).size}`],
      ["runs without any problem (own jobs, own result, own outputs)", `${rows.filter((r) => r.problems.length === 0).length} of ${n}`],
      [`wall time, all ${n} from the first start to the last exit`, sec(wallS)],
      ["one run's wall time: median / longest", `${sec(median(runs.map((r) => r.s)))} / ${sec(Math.max(...runs.map((r) => r.s)))}`],
      ["scheduler queries of all processes", `${int(runs.reduce((t, r) => t + queries(r.calls).length, 0))}`],
    ],
    [1],
  );
}

// ---------------------------------------------------------------- c: the polling budget

async function watchBench(bench: Bench, minutes: number): Promise<void> {
  checkInterrupt();
  const spec = join(bench.dir, "load-watch.yaml");
  const seconds = Math.round(minutes * 60);
  writeFileSync(spec, ["name: load_watch", 'version: "1.0"', "steps:", "  - step: wait", `    run: sleep ${seconds}`, `    resources: { cpus: 1, time: "${Math.ceil(minutes) + 5}:00" }`, ""].join("\n"));
  process.stderr.write(`watch: submitting one job of ${minutes} minute(s)...\n`);
  const submitted = await runCliChild(["submit", spec, "--cluster", bench.config], { home: bench.home, cwd: bench.dir, logBase: join(bench.dir, "watch-submit") });
  const runId = /submitted run (\S+):/.exec(submitted.stdout)?.[1] ?? null;
  if (submitted.code !== 0 || runId === null) throw new Error(`submit failed (exit ${submitted.code}): ${submitted.stderr}${submitted.stdout}`);
  const record = await bench.store.readRecord(runId);
  const jobId = Object.values(record.jobs)[0] ?? "";
  // Wait (with the benchmark's own queries, not counted) until the job runs: the watch then sees no change until the end.
  const remote = await connectCluster(loadClusterConfig(bench.config));
  try {
    const scheduler = schedulerOver(remote);
    for (let i = 0; ; i++) {
      const state = (await scheduler.status([jobId])).get(jobId)?.[0]?.state ?? "UNKNOWN";
      if (state === "RUNNING") break;
      if (state !== "PENDING" || i > 600 || interrupt.signal.aborted) throw new Error(`job ${jobId} of run ${runId} is ${state}, not running`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await remote.close();
  }
  process.stderr.write(`watch: hpcpipe status ${runId} --watch until the job ends (about ${minutes} minute(s))...\n`);
  const watch = await runCliChild(["status", runId, "--watch"], { home: bench.home, cwd: bench.dir, logBase: join(bench.dir, "watch"), timeoutMs: (seconds + 600) * 1000 });
  if (watch.signal !== null || watch.code === null) {
    await runCliChild(["cancel", runId], { home: bench.home, cwd: bench.dir, logBase: join(bench.dir, "watch-cancel") });
  }
  printWatch(watch, runId, jobId, minutes);
}

function printWatch(watch: CliRun, runId: string, jobId: string, minutes: number): void {
  const budget = pollBudget(DEFAULT_POLL_POLICY);
  const q = queries(watch.calls);
  const t0 = q[0]?.t ?? 0;
  const buckets = new Map<number, RemoteCall[]>();
  for (const c of q) {
    const m = Math.floor((c.t - t0) / 60);
    buckets.set(m, [...(buckets.get(m) ?? []), c]);
  }
  const last = Math.max(0, ...buckets.keys());
  const p = DEFAULT_POLL_POLICY;
  console.log(
    `\n3. Polling budget: \`hpcpipe status ${runId} --watch\` (a child process) over one job (SLURM ${jobId}) sleeping ${minutes} minute(s), ` +
      "watched from the moment it ran to its end",
  );
  console.log(
    `poll policy (src/slurm/poll.ts DEFAULT_POLL_POLICY): first interval ${p.initialMs} ms, x${p.factor} per poll without change, cap ${p.maxMs / 1000} s, jitter ±${p.jitter * 100}%\n` +
      `cap it implies (bench/lib/poll-budget.ts; test/app/poll-budget.test.ts holds a simulated watch to it): at most ${budget.firstMinute} polls in the first minute ` +
      `(and in the 60 s after a change), at most ${budget.laterMinute} in any minute once ${(budget.settleMs / 1000).toFixed(0)} s passed without a change ` +
      `(polls then ${budget.minDelayAtCapMs / 1000}-${p.maxMs / 1000} s apart); at most ${QUERIES_PER_POLL} queries a poll (squeue, + sacct/scontrol once a job left squeue)`,
  );
  const rows: string[][] = [];
  for (let m = 0; m <= last; m++) {
    const calls = buckets.get(m) ?? [];
    const polls = calls.filter((c) => c.kind === "squeue").length;
    const cap = m === 0 ? budget.firstMinute : budget.laterMinute;
    rows.push([
      `${m}`,
      String(polls),
      String(calls.filter((c) => c.kind === "sacct").length),
      String(calls.filter((c) => c.kind === "scontrol").length),
      String(calls.length),
      `${cap} polls / ${cap * QUERIES_PER_POLL} queries`,
      polls <= cap && calls.length <= cap * QUERIES_PER_POLL ? "yes" : "NO",
    ]);
  }
  table(["minute", "polls (squeue)", "sacct", "scontrol", "queries", "cap", "within"], rows);
  const later = q.filter((c) => c.t - t0 >= 60);
  console.log(
    `watch: exit ${watch.code ?? watch.signal}, ${sec(watch.s)}, ${q.length} scheduler queries (${byKind(q)}), ` +
      `${(later.length / Math.max(1e-9, (Math.max(...q.map((c) => c.t)) - t0 - 60) / 60)).toFixed(2)} a minute after the first; ` +
      `every remote command: ${byKind(watch.calls)}; peak memory ${mib(watch.maxRssKb)}`,
  );
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...COMMON_OPTIONS,
      tasks: { type: "string", default: "2000" },
      throttle: { type: "string", default: "3" },
      runs: { type: "string", default: "20" },
      "watch-minutes": { type: "string", default: "10" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const want = chosenSections(values.only, SECTIONS, USAGE);
  const tasks = wholeNumber("tasks", values.tasks, 1, USAGE);
  const throttle = wholeNumber("throttle", values.throttle, 0, USAGE);
  const runs = wholeNumber("runs", values.runs, 1, USAGE);
  const watchMinutes = Number(values["watch-minutes"]);
  if (!(watchMinutes > 0)) throw new Error(`--watch-minutes wants a number > 0 (got ${values["watch-minutes"]})\n${USAGE}`);

  const bench = openBench("load", { up: values.up, noUp: values["no-up"] });
  const t0 = now();
  try {
    if (want("map")) await mapBench(bench, tasks, throttle);
    if (want("concurrent")) await concurrentBench(bench, runs);
    if (want("watch")) await watchBench(bench, watchMinutes);
  } finally {
    await closeBench(bench);
  }
  console.log(`\ntotal benchmark time: ${sec(now() - t0)}`);
}

await runBench(main);
