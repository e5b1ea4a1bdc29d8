// A fake Transport and run fixtures for the cluster workflow's unit tests. The fake
// answers squeue/sacct/scancel from tables and getFiles from a map, so tests can
// inject what a real cluster cannot produce on demand (corrupt, huge, hostile files).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { preparePlan } from "../../src/app/prepare.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { aggregateState } from "../../src/runs/job-status.js";
import { RunStore, TaskTable } from "../../src/runs/index.js";
import type { JobStatus, RunRecord, TaskStatus } from "../../src/runs/index.js";
import { filterOptions, filteredCommand, queryName, throughFilter } from "../support/sacct-filter.js";
import type { ExecOptions, ExecResult, FetchedFile, GetFilesOptions, PutFilesOptions, ShellWord, Transport } from "../../src/transport/index.js";

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
export const LOCALCLUSTER = path.join(REPO, "cluster-configs", "localcluster.yaml");

export interface ExecCall {
  argv: string[];
  opts: ExecOptions;
}

type Handler = (argv: string[], opts: ExecOptions) => ExecResult | Promise<ExecResult>;

export const ok = (stdout = "", stderr = ""): ExecResult => ({ code: 0, signal: null, stdout, stderr });

/** squeue's `%i|%A|%F|%K|%T|%r|%E|%k` line for a plain job. */
export function squeueJob(id: string, state: string, reason = "None"): string {
  return `${id}|${id}|${id}|N/A|${state}|${reason}|(null)|hpcpipe:test`;
}

/** squeue's line for one array task; `own` is the task's own job id. */
export function squeueTask(arrayId: string, task: number, state: string, reason = "None", own = `${arrayId}${task}`): string {
  return `${arrayId}_${task}|${own}|${arrayId}|${task}|${state}|${reason}|(null)|hpcpipe:test`;
}

export class FakeTransport implements Transport {
  roundTrips = 0;
  closed = false;
  readonly execs: ExecCall[] = [];
  readonly gets: Array<{ dir: string; pattern: string; opts: GetFilesOptions }> = [];
  readonly puts: Array<{ dir: string; files: ReadonlyMap<string, string | Buffer>; opts: PutFilesOptions }> = [];
  /** squeue lines by SLURM job id (what `-j <id>` selects). */
  squeue = new Map<string, string[]>();
  /** sacct lines by job id, for ids squeue does not show. */
  sacct = new Map<string, string[]>();
  /** Fails the next sacct calls with this stderr (e.g. a database that is down). */
  sacctFailures: string[] = [];
  /** What getFiles returns, by path relative to the run directory. */
  files = new Map<string, FetchedFile>();
  /** Other commands. */
  handler: Handler = (argv) => ({ code: 127, signal: null, stdout: "", stderr: `fake: no handler for ${argv[0] ?? ""}` });

  async exec(argv: readonly ShellWord[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.roundTrips += 1;
    const words = argv.map(String);
    this.execs.push({ argv: words, opts });
    const ids = (words[words.indexOf("-j") + 1] ?? "").split(",");
    if (words[0] === "squeue") return ok(ids.flatMap((id) => this.squeue.get(id) ?? []).map((l) => `${l}\n`).join(""));
    // sacct, plain or through the cluster-side filter (run here for real over the fake answer).
    const filtered = filteredCommand(words);
    if (words[0] === "sacct" || filtered?.[0] === "sacct") {
      const failure = this.sacctFailures.shift();
      const answer = failure !== undefined ? { code: 1, stdout: "", stderr: failure } : { code: 0, stdout: ids.flatMap((id) => this.sacct.get(id) ?? []).map((l) => `${l}\n`).join(""), stderr: "" };
      return { signal: null, ...(filtered !== null ? throughFilter(answer, "awk", filterOptions(words)) : answer) };
    }
    if (words[0] === "scancel") return ok();
    // The step cache's query (src/cache/remote.ts): an empty cache, as on a new cluster.
    if (words[0] === "bash" && words[3] === "hpcpipe-cache-query") {
      // Its stdin: "F <family>" lines, each followed by that family's keys.
      const text = typeof opts.stdin === "string" ? opts.stdin : Buffer.isBuffer(opts.stdin) ? opts.stdin.toString("latin1") : "";
      const keys = text.split("\n").filter((l) => l !== "" && !l.startsWith("F ")).length;
      return ok(`store /fake/store\nend ${keys}\n`);
    }
    return this.handler(words, opts);
  }

  async putFiles(dir: string, files: ReadonlyMap<string, string | Buffer>, opts: PutFilesOptions = {}): Promise<void> {
    this.roundTrips += 1;
    this.puts.push({ dir, files, opts });
  }

  async getFiles(dir: string, pattern: string, opts: GetFilesOptions = {}): Promise<Map<string, FetchedFile>> {
    this.roundTrips += 1;
    this.gets.push({ dir, pattern, opts });
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")}$`);
    // For states/*.json every injected file except logs comes back: fault injection may put any name in the stream.
    const all = pattern.startsWith("states/");
    return new Map([...this.files].filter(([p]) => re.test(p) || (all && !p.startsWith("logs/"))));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The scheduler commands run so far (squeue, sacct, scontrol, scancel). */
  schedulerCalls(): string[] {
    return this.execs.map((e) => queryName(e.argv)).filter((c) => ["squeue", "sacct", "scontrol", "scancel"].includes(c));
  }
}

export interface TempRun {
  dir: string;
  store: RunStore;
  plan: CompiledPlan;
  record: RunRecord;
  cleanup(): void;
}

/** A cluster config like localcluster with a small MaxArraySize (for chunking). */
export function smallArrayConfig(dir: string, maxArraySize: number): string {
  const file = path.join(dir, "small.yaml");
  writeFileSync(
    file,
    [
      "name: small",
      "executor: slurm",
      "connection: { host: 127.0.0.1, port: 2222, user: hpctest, identity_file: /nonexistent/key, known_hosts: /nonexistent/known_hosts }",
      "workdir: $HOME/hpcpipe-runs",
      "partition: debug",
      `max_array_size: ${maxArraySize}`,
      "",
    ].join("\n"),
  );
  return file;
}

/**
 * A compiled plan and a "submitted" run record in a temp store, SLURM ids
 * 100, 200, 300... by plan job. Contacts nothing.
 */
export async function tempRun(spec: string, options: { cluster?: string; runId?: string; phase?: RunRecord["phase"] } = {}): Promise<TempRun> {
  const dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-app-test-"));
  const store = new RunStore(path.join(dir, "home"));
  const cluster = options.cluster ?? LOCALCLUSTER;
  const { plan, config } = preparePlan({ spec: path.resolve(REPO, spec), cluster, runId: options.runId ?? "20260101-000000-abcdef" });
  const jobs = Object.fromEntries(plan.jobs.map((j, i) => [j.id, String((i + 1) * 100)]));
  const record: RunRecord = {
    format: 1,
    run_id: plan.runId,
    pipeline: plan.pipeline,
    spec,
    cluster: config.name,
    cluster_config: path.resolve(cluster),
    remote_dir: plan.layout.runDir,
    plan_signature: plan.signature,
    created: "2026-01-01T00:00:00.000Z",
    updated: "2026-01-01T00:00:00.000Z",
    phase: options.phase ?? "submitted",
    jobs,
    error: null,
    resumes: null,
  };
  await store.writePlan(plan);
  await store.writeRecord(record);
  return { dir, store, plan, record, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A minimal valid state file for a step key. */
export function stateJson(key: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    success: true,
    timestamp: "2026-01-01T00:00:01.000Z",
    duration_s: 0.5,
    provides: [],
    outputs: {},
    error: null,
    meta: {},
    signature: "000000000000",
    failure: null,
    key,
    ...extra,
  });
}

const PHASE_STATE = { pending: "PENDING", running: "RUNNING", done: "COMPLETED", failed: "FAILED" } as const;

/** A job's status with its tasks in the given phases, in order. */
export function phasedJob(id: string, label: string, slurm: string, phases: Array<TaskStatus["phase"]>, array: boolean): JobStatus {
  const list: TaskStatus[] = phases.map((phase, i) => ({ task: i, taskId: i, slurmJobId: `${slurm}_${i}`, state: PHASE_STATE[phase], reason: null, exitCode: null, signal: null, phase, final: phase === "done" || phase === "failed" }));
  const spec = array ? { offset: 0, count: list.length, total: list.length, chunk: 0, chunks: 1, throttle: null, indices: null } : null;
  const tasks = TaskTable.build(spec, slurm, list.length, (i) => list[i] as TaskStatus);
  const counts = { pending: 0, running: 0, done: 0, failed: 0 };
  for (const t of list) counts[t.phase] += 1;
  return {
    job: id,
    label,
    slurmJobId: slurm,
    steps: [],
    array: spec === null ? null : { offset: 0, count: list.length, total: list.length, chunk: 0, chunks: 1 },
    ...aggregateState(list),
    final: list.every((t) => t.final),
    counts,
    states: tasks.tally(),
    tasks,
  };
}
