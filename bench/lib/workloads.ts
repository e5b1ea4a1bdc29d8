// Submit to merged result on the test cluster, next to a hand-written bash client
// (bench/submit/baseline.sh), shared by bench/submit.ts and bench/batch.ts: a transport that times
// its calls, a timed submission, one hpcpipe run (`submit --wait` in-process: submitRun +
// waitAndCollect, counting status polls and scheduler queries), one baseline run, and the table.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { cancelRun } from "../../src/app/cancel.js";
import { defaultTransportFactory } from "../../src/app/connect.js";
import type { RunContext, TransportFactory } from "../../src/app/connect.js";
import { submitRun, waitAndCollect } from "../../src/app/submit.js";
import type { WaitOutcome } from "../../src/app/submit.js";
import type { CompletedState } from "../../src/core/completed-state.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import type { RunRecord } from "../../src/runs/index.js";
import { RemotePath } from "../../src/transport/index.js";
import type { ExecOptions, ExecResult, FetchedFile, GetFilesOptions, PutFilesOptions, ShellWord, Transport } from "../../src/transport/index.js";
import { REPO } from "./cluster.js";
import type { Bench } from "./cluster.js";
import { median, now, sec, spread, table, int } from "./format.js";
import { checkInterrupt, interrupt, Interrupted, liveJobs, syncCleanups } from "./interrupt.js";

/** The workloads' specs and shape files. */
export const SPECS = join(REPO, "bench", "submit");
const BASELINE = join(SPECS, "baseline.sh");

// ---------------------------------------------------------------- a transport that times its calls

interface Op {
  kind: "exec" | "put" | "get";
  what: string;
  s: number;
  /** For an instrumented submit script: how long it ran on the cluster. */
  remoteS?: number;
  /** For an upload: the bytes of the files (before tar). */
  bytes?: number;
}

/** Runs the command it is given ("$@": hpcpipe's own argv for the submit script) and reports its run time on the cluster on stderr. */
const TIMED_SUBMIT = 't0=$(date +%s%N); "$@"; rc=$?; printf \'hpcpipe-bench-remote-ns %s\\n\' "$(($(date +%s%N) - t0))" >&2; exit "$rc"';

/** The submit script's exec: its last word is `<run dir>/scripts/submit.sh` (see submitScriptArgv). */
function isSubmitScript(argv: readonly ShellWord[]): boolean {
  const script = argv[argv.length - 1];
  return script instanceof RemotePath && script.path.endsWith("/scripts/submit.sh");
}

/**
 * Delegates to the real transport, timing every call; `roundTrips` is the real
 * transport's counter. With `instrumentSubmit`, the submit script runs under a
 * `bash -c` that measures it on the cluster (same channel, same round trip), so
 * the network's share of its time is the wall time minus that.
 */
export class TimedTransport implements Transport {
  readonly ops: Op[] = [];
  constructor(
    private readonly inner: Transport,
    private readonly instrumentSubmit = false,
  ) {}
  get roundTrips(): number {
    return this.inner.roundTrips;
  }
  private async timed<T>(kind: Op["kind"], what: string, fn: () => Promise<T>): Promise<T> {
    const t0 = now();
    try {
      return await fn();
    } finally {
      this.ops.push({ kind, what, s: now() - t0 });
    }
  }
  async exec(argv: readonly ShellWord[], opts?: ExecOptions): Promise<ExecResult> {
    const first = argv[0];
    if (!this.instrumentSubmit || !isSubmitScript(argv)) return this.timed("exec", typeof first === "string" ? first : "(path)", () => this.inner.exec(argv, opts));
    const result = await this.timed("exec", "submit.sh", () => this.inner.exec(["bash", "-c", TIMED_SUBMIT, "hpcpipe-bench", ...argv], opts));
    const ns = /^hpcpipe-bench-remote-ns (\d+)$/m.exec(result.stderr)?.[1];
    const op = this.ops[this.ops.length - 1];
    if (op && ns !== undefined) op.remoteS = Number(ns) / 1e9;
    return { ...result, stderr: result.stderr.replace(/^hpcpipe-bench-remote-ns \d+\n?/m, "") };
  }
  async putFiles(remoteDir: string, files: ReadonlyMap<string, string | Buffer>, opts?: PutFilesOptions): Promise<void> {
    await this.timed("put", `${files.size} files`, () => this.inner.putFiles(remoteDir, files, opts));
    const op = this.ops[this.ops.length - 1];
    if (op) op.bytes = [...files.values()].reduce((n, f) => n + (typeof f === "string" ? Buffer.byteLength(f) : f.length), 0);
  }
  getFiles(remoteDir: string, pattern: string, opts?: GetFilesOptions): Promise<Map<string, FetchedFile>> {
    return this.timed("get", pattern, () => this.inner.getFiles(remoteDir, pattern, opts));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface SubmitTiming {
  jobs: number;
  tasks: number;
  /** Spec load + compile + local record, before connecting. */
  prepareS: number;
  connectS: number;
  uploadS: number;
  /** Files and bytes uploaded (before tar). */
  uploadFiles: number;
  uploadBytes: number;
  scriptS: number;
  /** The submit script's run time on the cluster (instrumented runs only; else NaN). */
  scriptRemoteS: number;
  /** Round trips of the submission itself (upload + submit script), from transport.roundTrips. */
  roundTrips: number;
  /** From the call to the jobs being recorded. */
  totalS: number;
}

/**
 * `submitRun` with a timed, counting transport; `then` runs over the same
 * connection once the jobs are in (its SLURM ids are tracked for Ctrl-C).
 */
export async function timedSubmit<T>(
  bench: Bench,
  spec: string,
  config: string,
  fuse: boolean,
  then: (run: RunContext) => Promise<T>,
  instrument = false,
  set: Record<string, string> = {},
): Promise<{ timing: SubmitTiming; result: T; record: RunRecord; plan: CompiledPlan }> {
  let connectStart = NaN;
  let connectEnd = NaN;
  let submitted = NaN;
  let timed: TimedTransport | null = null;
  const connect: TransportFactory = async (c, o) => {
    connectStart = now();
    const inner = await defaultTransportFactory(c, o);
    connectEnd = now();
    timed = new TimedTransport(inner, instrument);
    return timed;
  };
  const t0 = now();
  const outcome = await submitRun({ spec, cluster: config, set, fuse, store: bench.store, connect }, async (run) => {
    submitted = now();
    const ids = Object.values(run.record.jobs);
    for (const id of ids) liveJobs.add(id);
    try {
      if (interrupt.signal.aborted) {
        await cancelRun(run);
        throw new Interrupted(`interrupted: cancelled run ${run.record.run_id}`);
      }
      return await then(run);
    } finally {
      for (const id of ids) liveJobs.delete(id);
    }
  });
  const ops = (timed as TimedTransport | null)?.ops ?? [];
  const plan = outcome.plan;
  return {
    timing: {
      jobs: plan.jobs.length,
      tasks: plan.jobs.reduce((n, j) => n + (j.array?.count ?? 1), 0),
      prepareS: connectStart - t0,
      connectS: connectEnd - connectStart,
      uploadS: ops.find((o) => o.kind === "put")?.s ?? NaN,
      uploadFiles: Number(ops.find((o) => o.kind === "put")?.what.split(" ")[0] ?? NaN),
      uploadBytes: ops.find((o) => o.kind === "put")?.bytes ?? NaN,
      scriptS: ops.find((o) => o.kind === "exec")?.s ?? NaN,
      scriptRemoteS: ops.find((o) => o.kind === "exec")?.remoteS ?? NaN,
      roundTrips: outcome.roundTrips,
      totalS: submitted - t0,
    },
    result: outcome.then as T,
    record: outcome.record,
    plan,
  };
}


// ---------------------------------------------------------------- 4: submit to merged result, next to the baseline

export interface Workload {
  id: "w1" | "w2" | "w3";
  label: string;
  spec: string;
  jobs: string;
  /** Ratio goal (hpcpipe / baseline), shown next to the figure. */
  goal: { max: number; text: string } | null;
  /** A row without its own baseline run (it reuses the one of the row before). */
  reuseBaseline?: boolean;
  /** Rounds unless --rounds says otherwise: more for the short, noisy ones. */
  rounds: number;
}

export interface HpcpipeRun {
  runId: string;
  s: number;
  /** From the call to the jobs being recorded (compile, connect, upload, submit script). */
  submitS: number;
  jobs: number;
  tasks: number;
  ok: boolean;
  steps: number;
  polls: number;
  queries: number;
  /** The merged result (null when interrupted). */
  state: CompletedState | null;
  plan: CompiledPlan;
}

export interface BaselineRun {
  s: number;
  jobs: number;
  tasks: number;
  ok: boolean;
  submitS: number;
  polls: number;
  summary: string;
}

/** W2: 200 items, each validate -> report; unpacked, and packed (compared with the unpacked row's baseline runs). */
export function w2Workloads(packed: boolean): Workload[] {
  const jobs = join(SPECS, "w2.jobs");
  const w2: Workload[] = [{ id: "w2", label: "W2 200 items: validate -> report", spec: join(SPECS, "w2.yaml"), jobs, goal: null, rounds: 1 }];
  if (packed) {
    w2.push({ id: "w2", label: "W2 packed (items_per_task: 50)", spec: join(SPECS, "w2-packed.yaml"), jobs, goal: { max: 0.1, text: ">= 10x faster" }, reuseBaseline: true, rounds: 1 });
  }
  return w2;
}

/** Runs the workloads in order, each next to its baseline (a row with reuseBaseline takes the row before's). */
export async function workloadRows(bench: Bench, workloads: readonly Workload[]): Promise<WorkloadRow[]> {
  const rows: WorkloadRow[] = [];
  for (const w of workloads) {
    const previous = rows[rows.length - 1];
    rows.push(await workloadRow(bench, w, w.reuseBaseline && previous ? previous.bl : null));
  }
  return rows;
}

/** `submit --wait` in-process (fusion on): submit, watch, collect; counts status polls and scheduler queries from submission to merged result. */
export async function hpcpipeRun(bench: Bench, spec: string, set: Record<string, string> = {}): Promise<HpcpipeRun> {
  checkInterrupt();
  const t0 = now();
  const waitFor = async (run: RunContext): Promise<{ waited: WaitOutcome; queries: number }> => {
    const q0 = run.scheduler.queries;
    const waited = await waitAndCollect(run, { signal: interrupt.signal });
    if (waited.collect === null) {
      await cancelRun(run);
      throw new Interrupted(`interrupted: cancelled run ${run.record.run_id}`);
    }
    return { waited, queries: run.scheduler.queries - q0 };
  };
  const { timing, result, record, plan } = await timedSubmit(bench, spec, bench.config, true, waitFor, false, set);
  const s = now() - t0;
  const state = result.waited.collect?.state ?? null;
  return {
    runId: record.run_id,
    s,
    submitS: timing.totalS,
    jobs: timing.jobs,
    tasks: timing.tasks,
    ok: state?.success === true,
    steps: Object.keys(state?.step_states ?? {}).length,
    polls: result.waited.watch.polls,
    queries: result.queries,
    state,
    plan,
  };
}

export function baselineRun(bench: Bench, jobsFile: string): Promise<BaselineRun> {
  checkInterrupt();
  const f = bench.facts;
  const args = [BASELINE, "--host", f.host, "--port", String(f.port), "--user", f.user, "--identity", f.identityFile, "--known-hosts", f.knownHostsFile, "--partition", f.partition, jobsFile];
  return new Promise((resolvePromise, reject) => {
    const t0 = now();
    // Its own process group, so a Ctrl-C reaches it only through the abort (it then cancels its jobs itself).
    const child = spawn("bash", args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    const stop = (): void => {
      if (child.exitCode === null && child.pid !== undefined) child.kill("SIGTERM");
    };
    interrupt.signal.addEventListener("abort", stop, { once: true });
    syncCleanups.add(stop);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      interrupt.signal.removeEventListener("abort", stop);
      syncCleanups.delete(stop);
      if (interrupt.signal.aborted) return reject(new Interrupted("interrupted: stopped the baseline (it cancels its jobs)"));
      const s = now() - t0;
      const submitted = /submitted (\d+) job\(s\) in ([\d.]+) s/.exec(out);
      const ended = /all ended in [\d.]+ s after (\d+) polls/.exec(out);
      const states = /states: (.*)/.exec(out)?.[1] ?? "";
      if (!submitted || !ended) return reject(new Error(`baseline.sh ${jobsFile} failed (exit ${code}):\n${out}${err}`));
      const tasks = [...states.matchAll(/=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      resolvePromise({ s, jobs: Number(submitted[1]), tasks, ok: code === 0, submitS: Number(submitted[2]), polls: Number(ended[1]), summary: states });
    });
  });
}

export interface WorkloadRow {
  w: Workload;
  hp: HpcpipeRun[];
  bl: BaselineRun[];
}

async function workloadRow(bench: Bench, w: Workload, baseline: BaselineRun[] | null): Promise<WorkloadRow> {
  const hp: HpcpipeRun[] = [];
  const bl: BaselineRun[] = baseline ?? [];
  const rounds = bench.rounds ?? w.rounds;
  for (let r = 0; r < rounds; r++) {
    process.stderr.write(`  ${w.label}: hpcpipe, round ${r + 1}/${rounds}...\n`);
    hp.push(await hpcpipeRun(bench, w.spec));
    if (baseline === null) {
      process.stderr.write(`  ${w.label}: baseline, round ${r + 1}/${rounds}...\n`);
      bl.push(await baselineRun(bench, w.jobs));
    }
  }
  return { w, hp, bl };
}

/** Prints the workloads' table under the heading numbered `section`. */
export function printWorkloads(rows: WorkloadRow[], section: string): void {
  console.log(
    `\n${section} Submit to merged result: hpcpipe IN-PROCESS (\`submit --wait\` via submitRun + waitAndCollect, fusion on, polling: no process start) next to a hand-written bash client\n` +
      "   (bench/submit/baseline.sh: every job up front, one job per step, arrays for groups/maps, afterok + --kill-on-invalid-dep=yes,\n" +
      "   one ssh connection, squeue every 0.5 s until all ended; it merges nothing). Times: median [min-max] of the rounds.",
  );
  const out: string[][] = [];
  for (const { w, hp, bl } of rows) {
    const h = median(hp.map((r) => r.s));
    const b = median(bl.map((r) => r.s));
    const ratio = h / b;
    const hp0 = hp[0];
    const bl0 = bl[0];
    const goal = w.goal ? `${w.goal.text}: ${ratio <= w.goal.max ? "met" : "NOT met"}` : "-";
    out.push([
      w.label,
      String(hp.length),
      hp0 ? `${hp0.jobs}/${int(hp0.tasks)}` : "-",
      spread(hp.map((r) => r.s)),
      sec(median(hp.map((r) => r.submitS))),
      hp0 ? `${hp0.polls}/${hp0.queries}` : "-",
      hp.every((r) => r.ok && r.steps > 0) ? `ok (${int(hp0?.steps ?? 0)} states)` : "FAILED",
      bl0 ? `${bl0.jobs}/${int(bl0.tasks)}` : "-",
      spread(bl.map((r) => r.s)),
      bl.every((r) => r.ok) ? "ok" : "FAILED",
      `${ratio.toFixed(2)}x${ratio < 1 ? ` (${(1 / ratio).toFixed(1)}x faster)` : ""}`,
      goal,
    ]);
  }
  table(
    ["workload", "rounds", "hpcpipe jobs/tasks", "hpcpipe", "  submitted after", "polls/queries", "merged", "baseline jobs/tasks", "baseline", "all COMPLETED", "hpcpipe / baseline", "goal"],
    out,
    [6, 9, 11],
  );
  if (rows.some((r) => r.w.reuseBaseline)) console.log("(the packed row is compared with the same W2 baseline runs)");
  console.log("(polls/queries: the first round's status polls and scheduler queries until every job ended; the merge reuses the last poll)");
}
