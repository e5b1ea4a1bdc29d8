/**
 * The programmatic API: submit a pipeline (a spec file or one built in
 * code) to a cluster or to this machine, follow it through typed progress
 * events, await its merged CompletedState, cancel it. The same lifecycle as
 * the CLI (which is built on the same functions).
 */
import { readFile } from "node:fs/promises";
import { CompletedState } from "../core/completed-state.js";
import { exitCodeFrom } from "../core/exit-code.js";
import { mapItemStates } from "../core/map-items.js";
import { withItemsBeside } from "../core/result-file.js";
import type { MapItemState } from "../core/map-items.js";
import { RunStore } from "../runs/index.js";
import type { JobStatus, RunRecord } from "../runs/index.js";
import { collectRun } from "./collect.js";
import { connectOptionsOf } from "./connect.js";
import type { ConnectOptions, PassphrasePrompt } from "./connect.js";
import type { CollectOutcome } from "./collect.js";
import type { CancelOutcome, ExecutorKind, RunExecutor } from "./executor.js";
import { openRun, submitPipeline } from "./lifecycle.js";
import type { PipelineSource } from "./prepare.js";
import { getRunStatus, watchRun } from "./status.js";
import { eventsAllowed } from "./watch-events.js";
import type { RunStatus } from "./status.js";

/** What `submit` needs. */
export interface SubmitRequest {
  /** The path of a YAML spec, or `{ pipeline, context, bundle, baseDir }` built in code. */
  pipeline: PipelineSource;
  /** A cluster config name (`./cluster-configs/<name>.yaml` or hpcpipe's own) or path; `local` runs on this machine (the default). */
  cluster?: string;
  /** Context values set over the pipeline's (like `--set key=value`). */
  set?: Record<string, string>;
  /** Resubmit this run: only steps that did not succeed with the same definition run again. */
  resume?: string;
  /** Fuse consecutive steps with equal resources into one job (default true). */
  fuse?: boolean;
  /** A directory of your own templates (sbatch.hbs, submit.hbs, partials/). */
  templatesDir?: string;
  /** Record an unknown host key instead of refusing it (check its fingerprint first). */
  acceptNewHostKey?: boolean;
  /** Asked for an encrypted identity file's passphrase when HPCPIPE_SSH_PASSPHRASE is not set (default: no prompt, such a key is refused). */
  passphrasePrompt?: PassphrasePrompt;
  /** Where run records go (default $HPCPIPE_HOME, else ~/.hpcpipe). */
  home?: string;
  /** Local runs: most CPUs in use at once, and where run directories go. */
  cpus?: number;
  runsDir?: string;
  /** Messages for people while submitting (uploading, submitting N jobs). */
  onMessage?: (message: string) => void;
}

/** What happens to a run, in order; `type` tells them apart. */
export type ProgressEvent =
  | { type: "submitted"; runId: string; executor: ExecutorKind; jobs: Record<string, string> }
  /** A job (a plan job: one step, fused steps, or an array) changed state. */
  | { type: "job"; runId: string; job: string; label: string; state: string; reason: string | null; final: boolean; counts: JobStatus["counts"] }
  /** One task of an array job changed state (`task` is the item or child index). */
  | { type: "task"; runId: string; job: string; task: number; state: string; reason: string | null; final: boolean }
  /** A poll failed in a way the next may not (accounting briefly down); the watch goes on. */
  | { type: "retry"; runId: string; error: Error }
  /** Every job has ended: the merged result. */
  | { type: "finished"; runId: string; result: CompletedState; exitCode: number };

export interface WatchOptions {
  /** Stops watching (the run goes on); `watch` then resolves with `aborted`. */
  signal?: AbortSignal;
  onEvent?: (event: ProgressEvent) => void;
  /** Learn from state-file events streamed from the cluster (default: yes, unless HPCPIPE_WATCH=poll); false polls the scheduler. */
  events?: boolean;
}

/** A submitted run: ask, follow, collect or cancel it, from this process or a later one (`openRun`). */
export class Run {
  constructor(
    readonly runId: string,
    private readonly store: RunStore,
    private readonly options: ConnectOptions = {},
  ) {}

  private with<T>(action: (run: RunExecutor) => Promise<T>): Promise<T> {
    return openRun(this.runId, { store: this.store, ...connectOptionsOf(this.options) }, action);
  }

  /** The run's record as this machine keeps it. */
  record(): Promise<RunRecord> {
    return this.store.readRecord(this.runId);
  }

  /** Where the run stands now (with the steps' results once every job has ended). */
  async status(): Promise<RunStatus> {
    return (await this.with((run) => getRunStatus(run))).status;
  }

  /** Follows the run until every job has ended, reporting progress; resolves with the last status. */
  async watch(options: WatchOptions = {}): Promise<{ status: RunStatus; aborted: boolean }> {
    const emit = options.onEvent ?? (() => undefined);
    const seen = new Map<string, string>();
    const outcome = await this.with((run) =>
      watchRun(run, {
        events: options.events ?? eventsAllowed(),
        ...(options.signal ? { signal: options.signal } : {}),
        onRetry: (error) => emit({ type: "retry", runId: this.runId, error }),
        onUpdate: (status) => {
          for (const e of changedEvents(this.runId, status.jobs, seen)) emit(e);
        },
      }),
    );
    if (!outcome.aborted && outcome.merged !== null) emit({ type: "finished", runId: this.runId, result: outcome.merged, exitCode: exitCodeFrom(outcome.merged) });
    return { status: outcome.status, aborted: outcome.aborted };
  }

  /** Every progress event until the run has ended (or `signal` stops the watch), as an async iterable. */
  async *events(options: { signal?: AbortSignal } = {}): AsyncGenerator<ProgressEvent, void, undefined> {
    const queue: ProgressEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    let failure: unknown = null;
    const watching = this.watch({
      ...(options.signal ? { signal: options.signal } : {}),
      onEvent: (e) => {
        queue.push(e);
        wake?.();
      },
    }).then(
      () => undefined,
      (err: unknown) => {
        failure = err;
      },
    ).finally(() => {
      done = true;
      wake?.();
    });
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (done) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    await watching;
    if (failure !== null) throw failure;
  }

  /**
   * Every item of the map `mapKey` (a full step key such as `thumbs.each`) in
   * index order, from the run's collected result (collected now when it was
   * not): its index, item, own state and steps' states, whatever the map's size.
   */
  async *items(mapKey: string): AsyncGenerator<MapItemState, void, undefined> {
    const record = await this.record();
    let state: CompletedState | null = null;
    if (record.phase === "collected") {
      const path = this.store.resultPath(this.runId);
      const text = await readFile(path, "utf8").catch(() => null);
      if (text !== null) state = withItemsBeside(CompletedState.fromJSON(JSON.parse(text)), path);
    }
    state ??= (await this.collect()).state;
    yield* mapItemStates(state, mapKey);
  }

  /** Waits for every job to end, then collects: the merged CompletedState (also written to the run's result.json). */
  async result(options: WatchOptions = {}): Promise<CompletedState> {
    const watched = await this.watch(options);
    if (watched.aborted) throw new Error(`run ${this.runId}: stopped watching before the run ended`);
    return (await this.collect()).state;
  }

  /** Collects what the run has now (partial while jobs still run: see `final`). */
  collect(): Promise<CollectOutcome> {
    return this.with((run) => collectRun(run));
  }

  /** Cancels every job of the run. */
  cancel(): Promise<CancelOutcome> {
    return this.with((run) => run.cancel());
  }
}

/** The events a new status brings: each job and each array task whose state or reason moved since the last. */
export function changedEvents(runId: string, jobs: readonly JobStatus[], seen: Map<string, string>): ProgressEvent[] {
  const out: ProgressEvent[] = [];
  for (const j of jobs) {
    const key = `${j.state}/${j.reason ?? ""}/${j.counts.pending}/${j.counts.running}/${j.counts.done}/${j.counts.failed}`;
    if (seen.get(j.job) !== key) {
      seen.set(j.job, key);
      out.push({ type: "job", runId, job: j.job, label: j.label, state: j.state, reason: j.reason, final: j.final, counts: { ...j.counts } });
    }
    if (j.array === null) continue;
    for (const t of j.tasks) {
      const id = `${j.job}#${t.task}`;
      const tkey = `${t.state}/${t.reason ?? ""}`;
      if (seen.get(id) === tkey) continue;
      seen.set(id, tkey);
      out.push({ type: "task", runId, job: j.job, task: t.task, state: t.state, reason: t.reason, final: t.final });
    }
  }
  return out;
}

function storeOf(home: string | undefined): RunStore {
  return home === undefined ? new RunStore() : new RunStore(home);
}

/**
 * Submits a pipeline and returns its Run once every job is in (a local run
 * goes on in the background under its own supervisor process).
 */
export async function submit(request: SubmitRequest, options: { onEvent?: (event: ProgressEvent) => void } = {}): Promise<Run> {
  const store = storeOf(request.home);
  const outcome = await submitPipeline({
    spec: request.pipeline,
    cluster: request.cluster ?? "local",
    store,
    ...(request.set ? { set: request.set } : {}),
    ...(request.resume !== undefined ? { resume: request.resume } : {}),
    ...(request.fuse !== undefined ? { fuse: request.fuse } : {}),
    ...(request.templatesDir ? { templatesDir: request.templatesDir } : {}),
    ...connectOptionsOf(request),
    ...(request.onMessage ? { onProgress: request.onMessage } : {}),
    local: { ...(request.cpus !== undefined ? { cpus: request.cpus } : {}), ...(request.runsDir !== undefined ? { runsDir: request.runsDir } : {}) },
  });
  const record = outcome.record;
  options.onEvent?.({ type: "submitted", runId: record.run_id, executor: record.executor ?? "slurm", jobs: { ...record.jobs } });
  return new Run(record.run_id, store, connectOptionsOf(request));
}

/** A run submitted earlier (by the CLI or the API), by its id. */
export async function getRun(runId: string, options: { home?: string } & ConnectOptions = {}): Promise<Run> {
  const store = storeOf(options.home);
  await store.readRecord(runId);
  return new Run(runId, store, connectOptionsOf(options));
}
