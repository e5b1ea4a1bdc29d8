// The cluster workflow on the project's own SLURM test cluster over SSH
// (scripts/cluster/up.sh): remote round trips of a 10-job and a 1,000-job
// submission, scheduler queries per status poll, the time to collect 2,000
// state files, and the wall time from submit to merged result of three
// workloads next to a hand-written bash client (bench/submit/baseline.sh:
// one job per step, arrays, afterok, one ssh, squeue every 0.5 s); then the
// submission figures again with added delay on the SSH path. Prints figures
// and ratios only; never asserts on them (the cluster is shared: times are noisy).
// Run after a build: `node dist/bench/submit.js [--only submit,collect,w1,w2,w3,delay]`.
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cancelRun } from "../src/app/cancel.js";
import { collectRun, mergeRun, queryJobStatuses, readRemoteStates } from "../src/app/collect.js";
import { connectCluster, defaultTransportFactory, schedulerOver, withRun } from "../src/app/connect.js";
import type { RunContext, TransportFactory } from "../src/app/connect.js";
import { preparePlan } from "../src/app/prepare.js";
import { getRunStatus } from "../src/app/status.js";
import { submissionFiles } from "../src/app/submit.js";
import { loadClusterConfig } from "../src/cluster/index.js";
import type { CompiledPlan, PlanNode } from "../src/plan/plan.js";
import type { StateFile } from "../src/plan/state-file.js";
import type { RunRecord } from "../src/runs/index.js";
import { remotePath } from "../src/transport/index.js";
import { chosenSections, COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { BENCH_DIR, closeBench, openBench, writeConfig } from "./lib/cluster.js";
import type { Bench } from "./lib/cluster.js";
import { int, median, msec, now, sec, signed, table } from "./lib/format.js";
import { checkInterrupt, liveJobs, runBench, syncCleanups } from "./lib/interrupt.js";
import { baselineRun, printWorkloads, SPECS, timedSubmit, w2Workloads, workloadRows } from "./lib/workloads.js";
import type { SubmitTiming } from "./lib/workloads.js";
import { cliWorkloadRows, printCliWorkloads } from "./lib/cli-workload.js";
import type { CliWorkload } from "./lib/cli-workload.js";
import { addNetem, removeStaleNetem } from "./submit/netem.js";

const PROXY = join(BENCH_DIR, "submit", "delay-proxy.js");

const SECTIONS = ["submit", "collect", "w1", "w2", "w3", "delay"] as const;

const USAGE = `usage: node dist/bench/submit.js [options]
  --only LIST        sections to run, comma-separated (default all):
                     submit  round trips of a 10- and a 1,000-job submission, scheduler queries per poll
                     collect time to collect 2,000 state files
                     w1,w3   submit to merged result: the CLI (child process, default settings, --no-cache) next to bench/submit/baseline.sh
                     w2      the same for W2, hpcpipe in-process
                     delay   the submission figures with added delay on the SSH path
  --rounds N         rounds of every workload (median shown; default W1 15, W2 1, W3 5)
  --delay-ms MS      added delay each way on the SSH path (default 50)
  --delay-mode M     auto (tc netem, else a labelled userspace delay proxy), netem, proxy (default auto)
  --no-packed        leave out the W2 row with task packing
  --up               run scripts/cluster/up.sh first even when the cluster answers (default: only when it does not)
  --no-up            never run scripts/cluster/up.sh`;

// ---------------------------------------------------------------- 1 + 2: round trips and queries per poll

/** A pipeline of `n` sequential trivial steps, each its own job (`fuse: false`): n jobs in an afterok chain. */
function writeChainSpec(bench: Bench, n: number): string {
  const lines = [`name: submit_${n}`, 'version: "1.0"', "fuse: false", "defaults:", "  cpus: 1", '  time: "2:00"', "steps:"];
  for (let i = 0; i < n; i++) lines.push(`  - step: s${String(i).padStart(4, "0")}`, '    run: "true"');
  const file = join(bench.dir, `submit-${n}.yaml`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

interface PollFigures {
  polls: number;
  queries: number;
  roundTrips: number;
  s: number;
  states: string;
}

interface SubmissionRow {
  n: number;
  timing: SubmitTiming;
  poll: PollFigures | null;
  cancelS: number;
}

const POLLS = 3;

/** Submits an n-job plan, polls its status POLLS times (counting scheduler queries and round trips), cancels it. */
async function submission(bench: Bench, n: number, config: string, poll: boolean): Promise<SubmissionRow> {
  checkInterrupt();
  const spec = writeChainSpec(bench, n);
  let cancelS = NaN;
  const { timing, result } = await timedSubmit(bench, spec, config, false, async (run): Promise<PollFigures | null> => {
    let figures: PollFigures | null = null;
    try {
      if (poll) {
        const q0 = run.scheduler.queries;
        const r0 = run.transport.roundTrips;
        const times: number[] = [];
        let states = "";
        for (let i = 0; i < POLLS; i++) {
          const t0 = now();
          const { status } = await getRunStatus(run, { results: false });
          times.push(now() - t0);
          const c = status.counts;
          // Failed tasks say which job and why (a trivial job should not fail).
          const failed = status.jobs.flatMap((j) => j.tasks.where((k) => k.phase === "failed").map((t) => `${j.job} ${t.state}${t.reason ? `/${t.reason}` : ""}`));
          const why = failed.length > 0 ? ` (${failed.slice(0, 3).join(", ")}${failed.length > 3 ? ", ..." : ""})` : "";
          states = `pending ${c.pending}, running ${c.running}, done ${c.done}, failed ${c.failed}${why}`;
        }
        figures = { polls: POLLS, queries: run.scheduler.queries - q0, roundTrips: run.transport.roundTrips - r0, s: median(times), states };
      }
    } finally {
      const t0 = now();
      await cancelRun(run);
      cancelS = now() - t0;
    }
    return figures;
  }, true);
  return { n, timing, poll: result, cancelS };
}

function printSubmissions(rows: SubmissionRow[]): void {
  console.log("\n1. Submission: remote round trips (plans with fuse: false, one job per step in an afterok chain; cancelled right after)");
  table(
    ["plan", "jobs", "round trips", "compile + record", "connect", "bundle", "upload (1 trip)", "submit script (1 trip)", "  of which sbatch on the cluster", "submitted after", "cancel (1 scancel)"],
    rows.map((r) => [
      `${int(r.n)} steps`,
      int(r.timing.jobs),
      String(r.timing.roundTrips),
      sec(r.timing.prepareS),
      sec(r.timing.connectS),
      `${int(r.timing.uploadFiles)} files, ${(r.timing.uploadBytes / 1e6).toFixed(2)} MB`,
      sec(r.timing.uploadS),
      sec(r.timing.scriptS),
      sec(r.timing.scriptRemoteS),
      sec(r.timing.totalS),
      sec(r.cancelS),
    ]),
  );
  const trips = rows.map((r) => r.timing.roundTrips);
  const equal = trips.every((t) => t === trips[0]);
  console.log(`goal: equal round trips for 10 and 1,000 jobs -> ${trips.join(" vs ")} (${equal ? "met" : "NOT met"})`);
  console.log("(the submit script's time grows with the jobs: that is sbatch on the cluster, measured there; not round trips)");

  console.log(`\n2. Status: scheduler queries per poll (${POLLS} polls of each run while its jobs were pending/running; getRunStatus, as \`hpcpipe status\`)`);
  table(
    ["run", "polls", "scheduler queries", "queries per poll", "round trips per poll", "time per poll (median)", "last poll saw"],
    rows.flatMap((r) =>
      r.poll === null
        ? []
        : [[`${int(r.n)} jobs`, String(r.poll.polls), String(r.poll.queries), (r.poll.queries / r.poll.polls).toFixed(1), (r.poll.roundTrips / r.poll.polls).toFixed(1), msec(r.poll.s), r.poll.states]],
    ),
    [6],
  );
  const perPoll = rows.flatMap((r) => (r.poll ? [r.poll.queries / r.poll.polls] : []));
  console.log(`goal: one squeue per poll for the whole run -> ${perPoll.map((q) => q.toFixed(1)).join(" and ")} (${perPoll.every((q) => q === 1) ? "met" : "NOT met"})`);
}

// ---------------------------------------------------------------- 3: collect 2,000 state files

const COLLECT_ITEMS = 1000; // x 2 state files per item (the item's and its step's) = 2,000

function findMap(node: PlanNode): PlanNode | null {
  if (node.kind === "map") return node;
  for (const c of node.children) {
    const found = findMap(c);
    if (found) return found;
  }
  return null;
}

/** Valid state files for every item of the plan's map, as a wrapper on the cluster writes them. */
function syntheticStates(plan: CompiledPlan, slurmId: string): Map<string, string> {
  const map = findMap(plan.tree);
  const step = map?.children[0];
  if (!map || !step || map.items === undefined) throw new Error("the collect plan has no map");
  const items = plan.items[map.key] ?? [];
  const files = new Map<string, string>();
  const t = new Date().toISOString();
  for (let i = 0; i < map.items; i++) {
    const slurm = { job_id: String(Number(slurmId) + i), array_job_id: slurmId, array_task_id: String(i), task: i };
    const item = items[i] ?? String(i);
    const itemKey = `${map.key}.${i}`;
    const stepKey = step.key.replace("{i}", String(i));
    const itemState: StateFile = {
      success: true, timestamp: t, duration_s: 0.05, provides: [], outputs: {}, error: null, meta: { item },
      signature: "", failure: null, key: itemKey, slurm, host: "bench", exit_code: null, attempt: 1,
    };
    const stepState: StateFile = {
      success: true, timestamp: t, duration_s: 0.02, provides: [], outputs: { published: {}, files: [] }, error: null,
      meta: { exit_code: 0, reason: null, item }, signature: step.signature, failure: null, key: stepKey, slurm, host: "bench", exit_code: 0, attempt: 1,
    };
    files.set(`states/${itemKey}.json`, JSON.stringify(itemState));
    files.set(`states/${stepKey}.json`, JSON.stringify(stepState));
  }
  return files;
}

interface CollectFigures {
  files: number;
  bytes: number;
  uploadS: number;
  getS: number;
  mergeS: number;
  collectS: number;
  freshS: number;
  connectS: number;
  ok: boolean;
  steps: number;
  problems: number;
  rounds: number;
}

async function collectBench(bench: Bench): Promise<CollectFigures> {
  const items = Array.from({ length: COLLECT_ITEMS }, (_, i) => `m${String(i).padStart(4, "0")}.glb`);
  const spec = join(bench.dir, "collect.yaml");
  writeFileSync(
    spec,
    ["name: collect2k", 'version: "1.0"', "steps:", "  - map: items", `    items: [${items.join(", ")}]`, "    as: model", "    steps:", "      - step: check", '        run: test -n "$model"', ""].join("\n"),
  );
  const runId = `bench-collect-${randomBytes(3).toString("hex")}`;
  const { plan, config } = preparePlan({ spec, cluster: bench.config, runId });
  const transport = await connectCluster(config);
  try {
    // A real, finished SLURM job stands for the map's array, so collect's one squeue has a real answer.
    const sb = await transport.exec(["sbatch", "--parsable", `--partition=${bench.facts.partition}`, "--time=1:00", "--output=/dev/null", "--job-name=bench_collect", "--wrap=true"]);
    const slurmId = sb.stdout.trim().split(";")[0] ?? "";
    if (sb.code !== 0 || !/^\d+$/.test(slurmId)) throw new Error(`sbatch failed: ${sb.stderr}`);
    liveJobs.add(slurmId);
    const scheduler = schedulerOver(transport);
    for (let i = 0; ; i++) {
      const st = (await scheduler.status([slurmId])).get(slurmId)?.[0]?.state ?? "UNKNOWN";
      if (st === "COMPLETED") break;
      if (i > 120) throw new Error(`job ${slurmId} did not complete (${st})`);
      await new Promise((r) => setTimeout(r, 250));
    }
    liveJobs.delete(slurmId);

    const files = syntheticStates(plan, slurmId);
    const bytes = [...files.values()].reduce((n, f) => n + Buffer.byteLength(f), 0);
    let t0 = now();
    await transport.putFiles(plan.layout.runDir, files);
    const uploadS = now() - t0;

    const record: RunRecord = {
      format: 1, run_id: runId, pipeline: plan.pipeline, spec, cluster: config.name, cluster_config: bench.config,
      remote_dir: plan.layout.runDir, plan_signature: plan.signature, created: new Date().toISOString(), updated: new Date().toISOString(),
      phase: "submitted", jobs: { [plan.jobs[0]?.id ?? "j000"]: slurmId }, error: null, resumes: null,
    };
    await bench.store.writePlan(plan);
    await bench.store.writeRecord(record);

    const gets: number[] = [];
    const merges: number[] = [];
    const collects: number[] = [];
    const fresh: number[] = [];
    const connects: number[] = [];
    let ok = false;
    let steps = 0;
    let problems = 0;
    const rounds = 3;
    const run: RunContext = { store: bench.store, record, plan, config, transport, scheduler };
    for (let r = 0; r < rounds; r++) {
      // The parts: one getFiles (every states/*.json, validated), then the merge.
      t0 = now();
      const remote = await readRemoteStates(transport, plan.layout.runDir);
      gets.push(now() - t0);
      const jobs = await queryJobStatuses(scheduler, plan, record.jobs);
      t0 = now();
      mergeRun(plan, remote, jobs);
      merges.push(now() - t0);
      // `collect` over an open connection: one squeue + one getFiles + merge + result.json.
      t0 = now();
      const out = await collectRun(run);
      collects.push(now() - t0);
      ok = out.state.success && out.final;
      steps = Object.keys(out.state.step_states ?? {}).length;
      problems = out.problems.length;
      // `hpcpipe collect RUN` from a new shell: read the record, connect, collect, close.
      let c0 = NaN;
      let c1 = NaN;
      const connect: TransportFactory = async (c, o) => {
        c0 = now();
        const tr = await defaultTransportFactory(c, o);
        c1 = now();
        return tr;
      };
      t0 = now();
      await withRun(runId, { store: bench.store, connect }, (fresh) => collectRun(fresh));
      fresh.push(now() - t0);
      connects.push(c1 - c0);
    }
    return {
      files: files.size, bytes, uploadS, getS: median(gets), mergeS: median(merges), collectS: median(collects), freshS: median(fresh),
      connectS: median(connects), ok, steps, problems, rounds,
    };
  } finally {
    await transport.close();
  }
}

const COLLECT_GOAL_S = 1;

function printCollect(c: CollectFigures): void {
  console.log(
    `\n3. Collect: ${int(c.files)} state files (${(c.bytes / 1e6).toFixed(1)} MB; a synthetic run: a map of ${int(COLLECT_ITEMS)} items, ` +
      `the item's and its step's state file each, uploaded straight into states/ in ${sec(c.uploadS)}; median of ${c.rounds})`,
  );
  table(
    ["what", "time"],
    [
      ["getFiles: every states/*.json in one round trip, each validated with zod", sec(c.getS)],
      ["merge into one CompletedState", sec(c.mergeS)],
      ["collect over an open connection (squeue + getFiles + merge + result.json)", sec(c.collectS)],
      ["`hpcpipe collect RUN` equivalent (read record, connect, collect, close)", sec(c.freshS)],
      ["  of which connecting", sec(c.connectS)],
    ],
  );
  console.log(`merged: ${c.ok ? "success" : "NOT a success"}, ${int(c.steps)} step states, ${c.problems} unusable file(s)`);
  console.log(`goal: under ${COLLECT_GOAL_S} s -> ${sec(c.collectS)} (${c.collectS < COLLECT_GOAL_S ? "met" : "NOT met"}, ${(COLLECT_GOAL_S / c.collectS).toFixed(1)}x headroom)`);
}


// ---------------------------------------------------------------- 5: with added delay on the SSH path

interface DelayPath {
  kind: "netem" | "proxy";
  describe: string;
  config: string;
  stop: () => void;
}

async function startProxy(bench: Bench, delayMs: number): Promise<DelayPath> {
  const child: ChildProcess = fork(PROXY, [bench.facts.host, String(bench.facts.port), String(delayMs)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const stop = (): void => {
    if (child.exitCode === null && child.pid !== undefined) child.kill("SIGTERM");
  };
  syncCleanups.add(stop);
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error("the delay proxy did not start")), 10_000);
    child.once("message", (m: { port?: number }) => {
      clearTimeout(timer);
      if (typeof m.port === "number") resolvePort(m.port);
      else reject(new Error("the delay proxy sent no port"));
    });
    child.once("exit", (code) => reject(new Error(`the delay proxy exited (${code})`)));
  });
  const config = writeConfig(bench, "delayed", port);
  return {
    kind: "proxy",
    describe: `userspace delay proxy (bench/submit/delay-proxy.ts) on 127.0.0.1:${port} -> ${bench.facts.host}:${bench.facts.port}, holding every chunk ${delayMs} ms each way`,
    config,
    stop: () => {
      stop();
      syncCleanups.delete(stop);
    },
  };
}

/** The median time of `n` trivial commands (one round trip each) and of connecting, over a config's path. */
async function pathLatency(config: string, n = 5): Promise<{ connectS: number; execS: number }> {
  const t0 = now();
  const transport = await connectCluster(loadClusterConfig(config));
  const connectS = now() - t0;
  try {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = now();
      await transport.exec(["true"]);
      times.push(now() - t);
    }
    return { connectS, execS: median(times) };
  } finally {
    await transport.close();
  }
}

interface DelayFigures {
  path: DelayPath | null;
  netemProblem: string | null;
  delayMs: number;
  direct: { connectS: number; execS: number };
  delayed: { connectS: number; execS: number } | null;
  rows: Array<{ n: number; direct: SubmitTiming; delayed: SubmitTiming; directUploads: number[]; delayedUploads: number[] }>;
}

/** Extra uploads of each plan's bundle (no jobs: just the transfer and the remote tar), to steady the upload figure. */
const EXTRA_UPLOADS = 2;

async function uploadSamples(bench: Bench, config: string, sizes: readonly number[], k: number): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  const transport = await connectCluster(loadClusterConfig(config));
  const scratch = `${bench.workdir}/upload-samples-${randomBytes(3).toString("hex")}`;
  try {
    for (const n of sizes) {
      checkInterrupt();
      const { plan } = preparePlan({ spec: writeChainSpec(bench, n), cluster: config, fuse: false, runId: `bench-upload-${n}` });
      const { files, executable } = submissionFiles(plan, new Map());
      const times: number[] = [];
      for (let i = 0; i < k; i++) {
        const t0 = now();
        await transport.putFiles(`${scratch}/${n}-${i}`, files, { executable });
        times.push(now() - t0);
      }
      out.set(n, times);
    }
    await transport.exec(["rm", "-rf", "--", remotePath(scratch)]);
    return out;
  } finally {
    await transport.close();
  }
}

async function delayBench(bench: Bench, delayMs: number, mode: "auto" | "netem" | "proxy", direct: Map<number, SubmitTiming>): Promise<DelayFigures> {
  const sizes = [10, 1000];
  const figures: DelayFigures = { path: null, netemProblem: null, delayMs, direct: await pathLatency(bench.config), delayed: null, rows: [] };
  // Direct figures first (the submissions reused from section 1 when it ran; each 1,000-job run
  // leaves 1,000 job records in slurmctld for MinJobAge, so the benchmark makes no more than it must).
  for (const n of sizes) if (!direct.has(n)) direct.set(n, (await submission(bench, n, bench.config, false)).timing);
  const directUploads = await uploadSamples(bench, bench.config, sizes, EXTRA_UPLOADS);

  if (mode !== "proxy") {
    const netem = addNetem(bench.facts.port, delayMs);
    if (netem.ok) {
      syncCleanups.add(netem.remove);
      figures.path = {
        kind: "netem",
        describe: `${netem.describe} (the test sshd's port: other users of the test cluster are delayed too meanwhile)`,
        config: bench.config,
        stop: () => {
          const problem = netem.remove();
          syncCleanups.delete(netem.remove);
          if (problem) console.log(problem);
        },
      };
    } else {
      figures.netemProblem = netem.reason;
      if (mode === "netem") return figures;
    }
  }
  figures.path ??= await startProxy(bench, delayMs);
  try {
    figures.delayed = await pathLatency(figures.path.config);
    const delayedUploads = await uploadSamples(bench, figures.path.config, sizes, EXTRA_UPLOADS);
    for (const n of sizes) {
      const delayed = (await submission(bench, n, figures.path.config, false)).timing;
      const d = direct.get(n) as SubmitTiming;
      figures.rows.push({ n, direct: d, delayed, directUploads: [d.uploadS, ...(directUploads.get(n) ?? [])], delayedUploads: [delayed.uploadS, ...(delayedUploads.get(n) ?? [])] });
    }
  } finally {
    figures.path.stop();
  }
  return figures;
}

function printDelay(d: DelayFigures): void {
  console.log(`\n5. Submission with ${d.delayMs} ms added each way on the SSH path (round trip +${2 * d.delayMs} ms)`);
  if (d.netemProblem !== null) console.log(`tc netem: NOT AVAILABLE here: ${d.netemProblem}`);
  if (d.path === null) {
    console.log("no delayed figures (--delay-mode netem and netem is not available)");
    return;
  }
  console.log(`delay by: ${d.path.describe}${d.path.kind === "proxy" ? "\n          (a stand-in, NOT tc netem: it delays what ssh writes, not TCP packets)" : ""}`);
  const perTrip = d.delayed ? d.delayed.execS - d.direct.execS : NaN;
  console.log(
    `one trivial command (one exec channel, one of hpcpipe's round trips): ${msec(d.direct.execS)} direct, ${d.delayed ? msec(d.delayed.execS) : "-"} delayed (+${msec(perTrip)}); ` +
      `connect + auth: ${sec(d.direct.connectS)} direct, ${d.delayed ? sec(d.delayed.connectS) : "-"} delayed`,
  );
  /**
   * What the network costs a submission: the upload (the best of the samples: the cluster's other load only
   * ever adds to it) plus the submit script's wall time less its run time on the cluster.
   */
  const best = (values: readonly number[]): number => Math.min(...values);
  const network = (t: SubmitTiming, uploads: number[]): number => best(uploads) + t.scriptS - t.scriptRemoteS;
  const rows: string[][] = [];
  for (const r of d.rows) {
    for (const [path, t, uploads] of [["direct", r.direct, r.directUploads], [`+${d.delayMs} ms`, r.delayed, r.delayedUploads]] as const) {
      const added = path === "direct" ? NaN : network(t, uploads) - network(r.direct, r.directUploads);
      rows.push([
        `${int(r.n)} jobs`,
        path,
        String(t.roundTrips),
        sec(t.connectS),
        `${sec(best(uploads))} [${Math.min(...uploads).toFixed(2)}-${Math.max(...uploads).toFixed(2)}]`,
        sec(t.scriptS),
        sec(t.scriptRemoteS),
        sec(network(t, uploads)),
        path === "direct" ? "" : signed(added),
        path === "direct" ? "" : `${sec(t.roundTrips * perTrip)}`,
      ]);
    }
  }
  table(
    ["plan", "path", "round trips", "connect", `upload (best of ${1 + EXTRA_UPLOADS}) [range]`, "submit script", "  on the cluster", "network (upload + script - on cluster)", "added by the delay", "round trips x one exec's added time"],
    rows,
    [1],
  );
  const added = d.rows.map((r) => network(r.delayed, r.delayedUploads) - network(r.direct, r.directUploads));
  if (added.length === 2) {
    const [a10 = NaN, a1000 = NaN] = added;
    const big = d.rows[1]?.delayed;
    console.log(
      `the delay adds ${signed(a10)} to submitting 10 jobs and ${signed(a1000)} to 1,000 jobs (${(a1000 / a10).toFixed(1)}x for 100x the jobs; ` +
        `round trips ${d.rows.map((r) => r.delayed.roundTrips).join(" and ")}; the 1,000-job upload also carries ${big ? (big.uploadBytes / 1e6).toFixed(1) : "?"} MB through the SSH window)\n` +
        `a client paying one round trip per sbatch would add about ${sec(1000 * perTrip)} to 1,000 jobs`,
    );
  }
  console.log("(connecting adds its handshakes once per command, whatever the number of jobs)");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...COMMON_OPTIONS,
      rounds: { type: "string" },
      "delay-ms": { type: "string", default: "50" },
      "delay-mode": { type: "string", default: "auto" },
      "no-packed": { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const want = chosenSections(values.only, SECTIONS, USAGE);
  const rounds = values.rounds === undefined ? null : wholeNumber("rounds", values.rounds, 1, USAGE);
  const delayMs = Number(values["delay-ms"]);
  const delayMode = values["delay-mode"];
  if (!Number.isFinite(delayMs) || delayMs <= 0) throw new Error("--delay-ms wants a positive number");
  if (delayMode !== "auto" && delayMode !== "netem" && delayMode !== "proxy") throw new Error("--delay-mode wants auto, netem or proxy");

  // A netem qdisc an interrupted run left behind goes first, before any figure.
  const stale = removeStaleNetem();
  if (stale) console.log(stale);
  const bench = openBench("submit", { up: values.up, noUp: values["no-up"], rounds });
  const t0 = now();
  try {
    const directTimings = new Map<number, SubmitTiming>();
    if (want("submit")) {
      process.stderr.write("submission: 10 and 1,000 jobs...\n");
      const rows: SubmissionRow[] = [];
      for (const n of [10, 1000]) {
        const row = await submission(bench, n, bench.config, true);
        directTimings.set(n, row.timing);
        rows.push(row);
      }
      printSubmissions(rows);
    }
    if (want("collect")) {
      process.stderr.write("collect: 2,000 state files...\n");
      printCollect(await collectBench(bench));
    }
    const cliWorkloads: CliWorkload[] = [];
    if (want("w1")) {
      cliWorkloads.push({ label: "W1 prep -> 4 parallel -> metadata", spec: join(SPECS, "w1.yaml"), jobs: join(SPECS, "w1.jobs"), rounds: rounds ?? 15, goal: { text: "<= 1.1x", met: (_s, r) => r <= 1.1 } });
    }
    if (want("w3")) {
      cliWorkloads.push({ label: "W3 chain of 20 trivial steps (fused)", spec: join(SPECS, "w3.yaml"), jobs: join(SPECS, "w3.jobs"), rounds: rounds ?? 5, goal: { text: "< 1.5 s", met: (s) => s < 1.5 } });
    }
    if (cliWorkloads.length > 0) {
      process.stderr.write("workloads through the CLI:\n");
      printCliWorkloads(await cliWorkloadRows(bench, cliWorkloads, (jobs) => baselineRun(bench, jobs)), "4.");
    }
    if (want("w2")) {
      process.stderr.write("W2 (in-process):\n");
      printWorkloads(await workloadRows(bench, w2Workloads(!values["no-packed"])), "5.");
    }
    if (want("delay")) {
      process.stderr.write(`delay: ${delayMs} ms each way...\n`);
      printDelay(await delayBench(bench, delayMs, delayMode, directTimings));
    }
  } finally {
    await closeBench(bench);
  }
  console.log(`\ntotal benchmark time: ${sec(now() - t0)}`);
}

await runBench(main);
