/**
 * Progress a person can read, per step, group and map: task counts (from the
 * watch's snapshots), throughput and an ETA from the durations seen so far
 * (from the state files the watch's events bring), and the latest image
 * output. Pure: the caller passes the clock. Memory stays bounded whatever
 * the size of a map: counts and a few running values per row, never an
 * object per item.
 */
import type { CompiledPlan, PlanJob } from "../plan/plan.js";
import { itemsPerTaskOf } from "../plan/plan.js";
import type { StateFile } from "../plan/state-file.js";
import { aggregateState } from "../runs/job-status.js";
import type { JobStatus, PhaseCounts } from "../runs/job-status.js";
import type { RunStatus } from "./status.js";

/** Output file names a person would open as a picture (the last frame rendered). */
export const IMAGE_EXTENSION = /\.(png|jpe?g|exr|tiff?|webp|gif|bmp|tga|hdr|avif|dpx)$/i;

/** One row of the display: a step (or fused steps), a group, or a map (all chunks of its array). */
export interface RowProgress {
  key: string;
  label: string;
  /** The plan jobs of the row (several for a chunked array). */
  jobs: string[];
  counts: PhaseCounts;
  total: number;
  /** The scheduler's state for the row, by name with its reason (`PENDING (Dependency)`). */
  state: string;
  final: boolean;
  /** Tasks ended per second since the row started (measured during this watch); null before the first end. */
  ratePerS: number | null;
  /** Mean duration of one task from the state files seen so far; null before the first. */
  taskMeanS: number | null;
  /** Seconds left; 0 once final; null while unknown (no duration and no end seen yet). */
  etaS: number | null;
  /** The newest image output of the row (a path under the run directory), or null. */
  latestImage: string | null;
  /**
   * Failed items (map items, group children, tasks' last steps) by the state files seen during the watch: more
   * than the failed tasks when failures are allowed (`continue_on_item_error`) or a packed task holds several.
   */
  failedItems: number;
}

/** What a state file that arrived says, for the JSON event stream. */
export interface StateArrival {
  row: string;
  step: string;
  job: string;
  task: number | null;
  status: "ok" | "failed";
  duration_s: number;
  outputs: string[];
  attempt: number | null;
}

interface Row {
  key: string;
  label: string;
  jobs: string[];
  /** Items one task runs one after another (a packed task: its items over the items it runs at once). */
  rounds: number;
  counts: PhaseCounts;
  state: string;
  reason: string | null;
  final: boolean;
  /** When the row was first seen running or ending, and how many tasks had ended by then. */
  activeSince: number | null;
  /** When the row was first seen final: its throughput stops there. */
  finalSince: number | null;
  endedAtStart: number;
  maxRunning: number;
  sumS: number;
  samples: number;
  failedItems: number;
  image: { at: string; path: string } | null;
}

/** Which of a job's state keys measure a task: a unit (map item, group child) or a bare body's last step. */
interface Sampler {
  exact: Map<string, "sample" | "sum">;
  patterns: Array<{ re: RegExp; kind: "sample" | "sum" }>;
}

function patternOf(key: string): RegExp {
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\\\{i\\\}/g, "\\d+");
  return new RegExp(`^${escaped}$`);
}

function samplerOf(job: PlanJob): Sampler {
  const exact = new Map<string, "sample" | "sum">();
  const patterns: Sampler["patterns"] = [];
  const seen = new Set<string>();
  const add = (key: string, kind: "sample" | "sum"): void => {
    if (seen.has(key)) return;
    seen.add(key);
    if (key.includes("{i}")) patterns.push({ re: patternOf(key), kind });
    else exact.set(key, kind);
  };
  for (const body of job.bodies) {
    if (body.unitKey !== null) add(body.unitKey, "sample");
    else body.steps.forEach((s, i) => add(s.key, i === body.steps.length - 1 ? "sample" : "sum"));
  }
  return { exact, patterns };
}

function kindOf(sampler: Sampler, key: string): "sample" | "sum" | null {
  const exact = sampler.exact.get(key);
  if (exact !== undefined) return exact;
  for (const p of sampler.patterns) if (p.re.test(key)) return p.kind;
  return null;
}

/** The row a plan job belongs to: its map, or the chunks of one array, or itself. */
function rowKeyOf(job: PlanJob): string {
  if (job.shape === "map" && job.map !== undefined) return `map:${job.map.key}`;
  if (job.array !== null && job.array.chunks > 1) return `chunks:${job.name}`;
  return job.id;
}

/** A label without its chunk: `p.m [chunk 2/3: tasks 5-9]` -> `p.m`. */
function baseLabel(label: string): string {
  return label.replace(/ \[chunk \d+\/\d+: tasks \d+-\d+\]$/, "").replace(/ \[\d+ tasks?\]$/, "");
}

function stateText(state: string, reason: string | null): string {
  return reason === null || reason === "" || reason === "None" ? state : `${state} (${reason})`;
}

/** The declared output files of a state (`outputs.files`), validated: strings only. */
export function outputFiles(state: Pick<StateFile, "outputs">): string[] {
  const files = (state.outputs as { files?: unknown }).files;
  return Array.isArray(files) ? files.filter((f): f is string => typeof f === "string") : [];
}

export class ProgressTracker {
  readonly #rows = new Map<string, Row>();
  readonly #rowOfJob = new Map<string, Row>();
  /** Rows of retry controllers (their later jobs replace them rather than add to them). */
  readonly #controllers = new Set<Row>();
  readonly #jobOfSlurm = new Map<string, { job: PlanJob; row: Row; sampler: Sampler }>();
  readonly #workDir: string;
  #firstObserve = true;

  constructor(plan: CompiledPlan, slurmIds: Readonly<Record<string, string>>, runDir: string) {
    this.#workDir = `${runDir.replace(/\/+$/, "")}/${plan.layout.work}`;
    for (const job of plan.jobs) {
      const key = rowKeyOf(job);
      let row = this.#rows.get(key);
      if (row === undefined) {
        const cpus = job.resources.cpus ?? 1;
        const perTask = itemsPerTaskOf(job);
        const itemCpus = job.map?.itemCpus ?? job.groupPack?.itemCpus ?? cpus;
        const atOnce = Math.max(1, Math.floor(cpus / Math.max(1, itemCpus)));
        row = {
          key,
          label: job.id,
          jobs: [],
          rounds: Math.max(1, Math.ceil(perTask / atOnce)),
          counts: { pending: 0, running: 0, done: 0, failed: 0 },
          state: "UNKNOWN",
          reason: null,
          final: false,
          activeSince: null,
          finalSince: null,
          endedAtStart: 0,
          maxRunning: 0,
          sumS: 0,
          samples: 0,
          failedItems: 0,
          image: null,
        };
        this.#rows.set(key, row);
      }
      row.jobs.push(job.id);
      this.#rowOfJob.set(job.id, row);
      if (job.retry !== undefined) this.#controllers.add(row);
      const slurm = slurmIds[job.id];
      if (slurm !== undefined) this.#jobOfSlurm.set(slurm, { job, row, sampler: samplerOf(job) });
    }
  }

  /** A snapshot of the watch: each row's counts and state. */
  observe(status: Pick<RunStatus, "jobs">, nowMs: number): void {
    const byRow = new Map<Row, JobStatus[]>();
    // A retry controller's jobs (`j001.r2`: attempt 2 of j001's failed tasks, or the controller after it;
    // src/runs/retries.ts) count in their first attempt's row.
    const retries = new Map<Row, { attempt: number; job: JobStatus }[]>();
    for (const j of status.jobs) {
      const retry = /^(.+)\.r(\d{1,3})$/.exec(j.job);
      const row = this.#rowOfJob.get(j.job) ?? (retry === null ? undefined : this.#rowOfJob.get(retry[1] ?? ""));
      if (row === undefined) continue;
      if (retry !== null && !this.#rowOfJob.has(j.job)) {
        const list = retries.get(row) ?? [];
        list.push({ attempt: Number(retry[2]), job: j });
        retries.set(row, list);
      }
      const list = byRow.get(row) ?? [];
      list.push(j);
      byRow.set(row, list);
    }
    for (const [row, jobs] of byRow) {
      const later = retries.get(row) ?? [];
      const firstAttempt = jobs.filter((j) => !later.some((r) => r.job === j));
      const counts: PhaseCounts = { pending: 0, running: 0, done: 0, failed: 0 };
      for (const j of firstAttempt) for (const k of Object.keys(counts) as (keyof PhaseCounts)[]) counts[k] += j.counts[k];
      // Each retry reruns tasks that failed before: they leave the failed count for the retry's own.
      for (const { job: j } of later.sort((a, b) => a.attempt - b.attempt)) {
        const total = j.counts.pending + j.counts.running + j.counts.done + j.counts.failed;
        if (this.#controllers.has(row)) {
          // A controller's next controller stands for it: one task, in the latest one's state.
          counts.pending = j.counts.pending;
          counts.running = j.counts.running;
          counts.done = j.counts.done;
          counts.failed = j.counts.failed;
          continue;
        }
        counts.failed = Math.max(0, counts.failed - total);
        for (const k of Object.keys(counts) as (keyof PhaseCounts)[]) counts[k] += j.counts[k];
      }
      const first = (firstAttempt[0] ?? jobs[0]) as JobStatus;
      const total = counts.pending + counts.running + counts.done + counts.failed;
      row.label = jobs.length > 1 || (first.array?.chunks ?? 1) > 1 ? `${baseLabel(first.label)} [${total} tasks]` : first.label;
      const phase = (j: JobStatus): "pending" | "running" | "done" | "failed" => (j.counts.running > 0 ? "running" : j.final ? (j.counts.failed > 0 ? "failed" : "done") : "pending");
      // Once retried, the row is in its latest attempt's state (an earlier attempt's FAILED is being retried).
      const latest = later.length > 0 ? [(later[later.length - 1] as { job: JobStatus }).job] : jobs;
      const agg = aggregateState(latest.map((j) => ({ state: j.state, reason: j.reason, phase: phase(j), final: j.final })));
      row.state = agg.state;
      row.reason = agg.reason;
      row.final = jobs.every((j) => j.final);
      if (row.final) row.finalSince ??= nowMs;
      const ended = counts.done + counts.failed;
      if (row.activeSince === null) {
        if (this.#firstObserve) row.endedAtStart = ended;
        if (counts.running > 0 || ended > row.endedAtStart) row.activeSince = nowMs;
      }
      row.maxRunning = Math.max(row.maxRunning, counts.running);
      row.counts = counts;
    }
    this.#firstObserve = false;
  }

  /** A state file arrived: its duration and outputs count for its row. Null when it belongs to no submitted job. */
  state(key: string, state: StateFile): StateArrival | null {
    const owner = this.#ownerOf(state);
    if (owner === undefined) return null;
    const { row, sampler } = owner;
    const kind = kindOf(sampler, key);
    // A restored state did not run here: its duration says nothing about this run's pace.
    if (kind !== null && state.cached === undefined) {
      row.sumS += state.duration_s;
      if (kind === "sample") row.samples += 1;
      if (kind === "sample" && !state.success) row.failedItems += 1;
    }
    const files = this.#image(state, row);
    return {
      row: row.key,
      step: key,
      job: owner.job.id,
      task: state.slurm?.task ?? null,
      status: state.success ? "ok" : "failed",
      duration_s: state.duration_s,
      outputs: files,
      attempt: state.attempt ?? null,
    };
  }

  /**
   * The latest image of each row from every state file of the run (read at the end of a watch): the last
   * states may end a run before a feed that only polls has brought them.
   */
  imagesFrom(states: Iterable<[string, StateFile]>): void {
    for (const [, state] of states) this.#image(state, this.#ownerOf(state)?.row);
  }

  #ownerOf(state: StateFile): { job: PlanJob; row: Row; sampler: Sampler } | undefined {
    const slurm = state.slurm;
    const id = slurm?.array_job_id !== undefined && slurm.array_job_id !== "" ? slurm.array_job_id : slurm?.job_id;
    return id === undefined ? undefined : this.#jobOfSlurm.get(id);
  }

  #image(state: StateFile, row: Row | undefined): string[] {
    const files = outputFiles(state);
    if (row === undefined) return files;
    const image = [...files].reverse().find((f) => IMAGE_EXTENSION.test(f));
    if (image !== undefined && (row.image === null || state.timestamp >= row.image.at)) {
      row.image = { at: state.timestamp, path: image.startsWith("/") ? image : `${this.#workDir}/${image}` };
    }
    return files;
  }

  /** Every row, in plan order, as of `nowMs`. */
  rows(nowMs: number): RowProgress[] {
    return [...this.#rows.values()].map((row) => this.#progress(row, nowMs));
  }

  #progress(row: Row, nowMs: number): RowProgress {
    const c = row.counts;
    const total = c.pending + c.running + c.done + c.failed;
    const ended = c.done + c.failed;
    const since = ended - row.endedAtStart;
    const elapsedS = row.activeSince === null ? 0 : ((row.finalSince ?? nowMs) - row.activeSince) / 1000;
    const ratePerS = since > 0 && elapsedS > 0 ? since / elapsedS : null;
    const taskMeanS = row.samples > 0 ? (row.sumS / row.samples) * row.rounds : null;
    return {
      key: row.key,
      label: row.label,
      jobs: [...row.jobs],
      counts: { ...c },
      total,
      state: stateText(row.state, row.reason),
      final: row.final,
      ratePerS,
      taskMeanS,
      etaS: row.final ? 0 : etaSeconds({ remaining: c.pending + c.running, running: c.running, maxRunning: row.maxRunning, taskMeanS, ratePerS, rateWindowS: elapsedS }),
      latestImage: row.image?.path ?? null,
      failedItems: row.failedItems,
    };
  }
}

/**
 * Seconds until the tasks left have ended. Early on (the throughput measured over less than two task
 * durations), from the mean task duration times the tasks left over how many run at once (the most seen
 * running, at least 1); later from the throughput, which has seen how many really run at once and how long
 * tasks wait in the queue; from the throughput alone before any duration; null while neither is known.
 */
export function etaSeconds(input: { remaining: number; running: number; maxRunning: number; taskMeanS: number | null; ratePerS: number | null; rateWindowS?: number }): number | null {
  if (input.remaining <= 0) return 0;
  const rate = input.ratePerS !== null && input.ratePerS > 0 ? input.ratePerS : null;
  if (input.taskMeanS !== null && (rate === null || (input.rateWindowS ?? 0) < 2 * input.taskMeanS)) {
    return (input.remaining * input.taskMeanS) / Math.max(1, input.running, input.maxRunning);
  }
  return rate === null ? null : input.remaining / rate;
}
