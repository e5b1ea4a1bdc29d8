/**
 * Where a submitted run stands: ONE scheduler query per poll for all its
 * jobs, mapped onto the plan's jobs and tasks; once every job has ended,
 * the state files on the cluster are the truth for the steps. `watchRun`
 * polls with the PollInterval policy until every job is final.
 */
import type { StateProblem } from "../collect/index.js";
import type { CompletedState } from "../core/completed-state.js";
import type { StateFile } from "../plan/state-file.js";
import { exitCodeFrom } from "../core/exit-code.js";
import { itemLinesOf } from "../core/item-lines.js";
import type { ItemLinesSummary } from "../core/item-lines.js";
import { carryFinalStates, mapJobStatuses, totalCounts } from "../runs/index.js";
import type { JobStatus, PhaseCounts, RunRecord } from "../runs/index.js";
import { AccountingUnavailableError, PollInterval, SchedulerError } from "../slurm/index.js";
import type { PollPolicy } from "../slurm/index.js";
import { mergeRun, requireJobIds, statesForMerge } from "./collect.js";
import type { RemoteStates } from "./collect.js";
import type { RunContext } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { markTiming } from "../core/timing.js";
import { executorOf } from "./slurm-executor.js";
import { startStateFeed } from "./state-feed.js";
import { watchByEvents } from "./watch-events.js";
import type { CadencePolicy } from "../watch/cadence.js";
import type { RemoteWatcherOptions } from "../watch/remote-watcher.js";

/** One step's outcome as the status shows it (from the merged state files). */
export interface StepResult {
  success: boolean;
  failure: string | null;
  error: string | null;
  not_run: boolean;
  slurm_state: string | null;
  slurm_reason: string | null;
  /**
   * A map whose items are in the result's lines file (more than HPCPIPE_ITEMS_INLINE_MAX): its counts,
   * failed and slowest items. Its failed items (the first 1,000) are also in `steps`; the rest are not.
   */
  item_lines?: ItemLinesSummary;
}

/** A status snapshot: machine-readable (`status --json`) and what the views render. */
export interface RunStatus {
  run_id: string;
  pipeline: string;
  cluster: string;
  phase: RunRecord["phase"];
  remote_dir: string;
  /** The record's error (a failed submission). */
  error: string | null;
  polled_at: string;
  /** Every job has ended (or was never submitted). */
  final: boolean;
  counts: PhaseCounts;
  jobs: JobStatus[];
  /** Once final: the merged result's steps, from the state files. */
  steps: Record<string, StepResult> | null;
  result: { success: boolean; failure: string | null; error: string | null; exit_code: number } | null;
  state_problems: StateProblem[];
}

export function stepResults(state: CompletedState): Record<string, StepResult> {
  const out: Record<string, StepResult> = {};
  for (const [key, s] of Object.entries(state.step_states ?? {})) {
    out[key] = {
      success: s.success,
      failure: s.failure ?? null,
      error: s.error ?? null,
      not_run: s.meta.not_run === true,
      slurm_state: typeof s.meta.slurm_state === "string" ? s.meta.slurm_state : null,
      slurm_reason: typeof s.meta.slurm_reason === "string" ? s.meta.slurm_reason : null,
    };
    const lines = itemLinesOf(s);
    if (lines !== null) (out[key] as StepResult).item_lines = lines;
  }
  return out;
}

export function snapshot(record: RunRecord, jobs: JobStatus[], polledAt: string): RunStatus {
  return {
    run_id: record.run_id,
    pipeline: record.pipeline,
    cluster: record.cluster,
    phase: record.phase,
    remote_dir: record.remote_dir,
    error: record.error,
    polled_at: polledAt,
    final: jobs.every((j) => j.final),
    counts: totalCounts(jobs),
    jobs,
    steps: null,
    result: null,
    state_problems: [],
  };
}

/** The steps' results and the run's outcome from a merged state. */
export function resultsOf(merged: CompletedState, remote: RemoteStates): Pick<RunStatus, "steps" | "result" | "state_problems"> {
  return {
    steps: stepResults(merged),
    result: { success: merged.success, failure: merged.failure ?? null, error: merged.error ?? null, exit_code: exitCodeFrom(merged) },
    state_problems: remote.problems,
  };
}

/** Adds the steps' results from the state files (ONE getFiles) to a final snapshot; also returns the merged state. */
async function withResults(run: RunExecutor, status: RunStatus): Promise<{ status: RunStatus; merged: CompletedState | null; remote: RemoteStates | null }> {
  if (!status.final || Object.keys(run.record.jobs).length === 0) return { status, merged: null, remote: null };
  const remote = await statesForMerge(run);
  // Large maps' items go to a lines file in the run's store directory: `collect` after a watch places it beside result.json.
  const merged = mergeRun(run.plan, remote, status.jobs, status.polled_at, await run.store.resultDir(run.record.run_id));
  return { status: { ...status, ...resultsOf(merged, remote) }, merged, remote };
}

/** One poll: ONE scheduler query; when every job is final, ONE getFiles for the state files. */
export async function getRunStatus(
  context: RunContext | RunExecutor,
  options: { results?: boolean; now?: () => string } = {},
): Promise<{ status: RunStatus; merged: CompletedState | null; remote: RemoteStates | null }> {
  const run = executorOf(context);
  requireJobIds(run.record);
  const jobs = await run.query(null);
  const status = snapshot(run.record, jobs, (options.now ?? isoNow)());
  return options.results === false ? { status, merged: null, remote: null } : withResults(run, status);
}

/** What changes between polls: each task's state and reason. */
export function statusKey(jobs: readonly JobStatus[]): string {
  return jobs.map((j) => `${j.job}:${j.tasks.fingerprint()}`).join(";");
}

export interface WatchOptions {
  policy?: PollPolicy;
  random?: () => number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => string;
  /** Stops the watch (Ctrl-C): it returns the last snapshot with `aborted`. */
  signal?: AbortSignal;
  /** Every poll's snapshot; `changed` is false when no task's state or reason moved. */
  onUpdate?: (status: RunStatus, changed: boolean) => void;
  /** A poll that failed in a way the next poll may not (accounting down, a busy controller). */
  onRetry?: (error: Error) => void;
  /**
   * Learn from state-file events streamed by a watcher on the cluster (src/app/watch-events.ts) instead of
   * polling the scheduler, when the executor has one. Default false here; the CLI and the API turn it on
   * unless HPCPIPE_WATCH=poll.
   */
  events?: boolean;
  /** The watcher's settings (tick, inotify). */
  watcher?: RemoteWatcherOptions;
  /** When an event watch asks the scheduler (src/watch/cadence.ts). */
  cadence?: Partial<CadencePolicy>;
  /** Milliseconds, for the event watch's scheduler cadence (default Date.now). */
  clock?: () => number;
  /** Details for people debugging a watch (a bad event line, the watcher's mode). */
  onDebug?: (message: string) => void;
  /**
   * A valid state file the event watch received (for the progress display: durations, outputs): every one
   * after a watcher's first scan, and those of the first watcher's first scan (the run so far); never the
   * same file twice from a later watcher's first scan.
   */
  onState?: (key: string, state: StateFile) => void;
}

export interface WatchOutcome {
  status: RunStatus;
  /** The merged result, when the watch ended with every job final. */
  merged: CompletedState | null;
  /** The state files it was merged from. */
  remote: RemoteStates | null;
  aborted: boolean;
  /** Scheduler queries (each one squeue, plus sacct when squeue has forgotten tasks). */
  polls: number;
  /** The same count (kept apart from `polls` for readers of the event watch). */
  queries: number;
  /** Lines received from the state watcher. */
  events: number;
  /** How the watch ended up learning about the run. */
  mode: "events" | "polling";
}

/** Errors after which the next poll may well succeed. */
export function retryable(error: unknown): error is Error {
  return error instanceof AccountingUnavailableError || (error instanceof SchedulerError && error.transient);
}

/**
 * Polls until every job is final: fast at first, backing off to the cap
 * while nothing changes, back to fast after a change, with jitter. Each poll
 * is ONE scheduler query; a dropped connection is reopened by the transport
 * (status queries are retry-safe). Accounting being briefly down is retried
 * at the next poll.
 */
export async function watchRun(context: RunContext | RunExecutor, options: WatchOptions = {}): Promise<WatchOutcome> {
  const run = executorOf(context);
  requireJobIds(run.record);
  if (options.events === true && run.watchStates !== undefined && run.eventEnds !== false && Object.keys(run.record.jobs).length > 0) return watchByEvents(run, options);
  // The watcher only feeds the display here (a local run's end comes from its job table).
  const feed = options.events === true && options.onState !== undefined ? startStateFeed(run, options.onState, options.onDebug ?? (() => undefined), options.watcher) : null;
  try {
    return await watchByPolling(run, options);
  } finally {
    await feed?.close();
  }
}

async function watchByPolling(run: RunExecutor, options: WatchOptions): Promise<WatchOutcome> {
  const interval = new PollInterval(options.policy ?? run.pollPolicy, options.random);
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? isoNow;
  let previous: JobStatus[] | null = null;
  let lastKey: string | null = null;
  let last: RunStatus | null = null;
  let polls = 0;
  for (;;) {
    if (options.signal?.aborted) {
      // Stopped before any poll answered: every task as yet unknown.
      const status = last ?? snapshot(run.record, mapJobStatuses(run.plan, run.record.jobs, new Map()), now());
      return { status, merged: null, remote: null, aborted: true, polls, queries: polls, events: 0, mode: "polling" };
    }
    let jobs: JobStatus[];
    try {
      polls += 1;
      jobs = carryFinalStates(previous, await run.query(previous));
    } catch (error) {
      if (!retryable(error)) throw error;
      options.onRetry?.(error);
      await sleep(interval.next(false), options.signal);
      continue;
    }
    previous = jobs;
    const key = statusKey(jobs);
    const changed = key !== lastKey;
    lastKey = key;
    const status = snapshot(run.record, jobs, now());
    if (status.final) {
      markTiming("end-detected");
      const done = await withResults(run, status);
      options.onUpdate?.(done.status, changed);
      return { ...done, aborted: false, polls, queries: polls, events: 0, mode: "polling" };
    }
    last = status;
    options.onUpdate?.(status, changed);
    if (options.signal?.aborted) return { status, merged: null, remote: null, aborted: true, polls, queries: polls, events: 0, mode: "polling" };
    await sleep(interval.next(changed), options.signal);
  }
}

export function isoNow(): string {
  return new Date().toISOString();
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
