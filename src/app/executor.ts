/**
 * One run, whatever runs it: the executor interface. A SLURM cluster over
 * SSH and this machine (a detached local supervisor) both implement it; the
 * lifecycle (status, watch, collect, logs) is written once against it in
 * status.ts, collect.ts and logs.ts, so commands never ask which kind of
 * executor a run has.
 */
import type { CompiledPlan } from "../plan/plan.js";
import type { JobStatus, RunRecord, RunStore } from "../runs/index.js";
import type { PollPolicy } from "../slurm/index.js";
import type { PullOptions, PullOutcome } from "../store/index.js";
import type { WatchEvent } from "../watch/events.js";
import type { RemoteWatcher, RemoteWatcherOptions } from "../watch/remote-watcher.js";
import type { RemoteStates } from "./collect.js";

/** Which executor runs a run. */
export type ExecutorKind = "slurm" | "local";

/** New bytes of a log from an offset (see `RunExecutor.readLogFrom`). */
export interface LogChunk {
  absent: boolean;
  /** The file shrank (rewritten): the bytes are from its start. */
  restarted: boolean;
  data: Buffer;
}

export interface CancelOutcome {
  /** The job ids that were cancelled (array job ids cancel every task); empty when nothing was left to cancel. */
  cancelled: string[];
  record: RunRecord;
  /** One line for people: what was cancelled, and how. */
  message: string;
}

/** An open run on its executor: the primitives the lifecycle is built from. */
export interface RunExecutor {
  readonly kind: ExecutorKind;
  readonly store: RunStore;
  /** The run's record as last read or written. */
  record: RunRecord;
  /** The plan; on a cluster, with the retries its controllers submitted added as jobs once known (src/runs/retries.ts). */
  plan: CompiledPlan;
  /** How often a watch asks (a local run is cheap to ask). */
  readonly pollPolicy?: PollPolicy;
  /** Where every job and task of the run stands: ONE query. `known` is the previous answer (tasks it saw end are not asked again). */
  query(known: readonly JobStatus[] | null): Promise<JobStatus[]>;
  /** Every state file of the run, validated. */
  readStates(): Promise<RemoteStates>;
  /** The state files as a source the merge reads one file at a time (executors whose files are on this machine). */
  streamStates?(): RemoteStates | Promise<RemoteStates>;
  /** Stops every job of the run; the record becomes "cancelled". */
  cancel(): Promise<CancelOutcome>;
  /** A file of the run directory (a log), whole; null when it does not exist yet. At most `maxBytes`. */
  readFile(path: string, maxBytes: number): Promise<Buffer | null>;
  /** New bytes of a file of the run directory from `offset`, at most `maxBytes`. */
  readFileFrom(path: string, offset: number, maxBytes: number): Promise<LogChunk>;
  /**
   * Starts a watcher that streams an event for each new state file of the run (the SLURM executor: over the
   * open SSH connection); absent when the executor has none, and then a watch polls.
   */
  watchStates?(handlers: { onEvent: (event: WatchEvent) => void; onBad: (preview: string) => void }, options?: RemoteWatcherOptions): RemoteWatcher;
  /**
   * Whether a watch decides the run's end from the watcher's events (default: yes when there is a watcher).
   * No for a local run, whose supervisor's job table is the truth and cheap to read: its watcher only feeds
   * the progress display (durations, outputs).
   */
  readonly eventEnds?: boolean;
  /** Copies outputs (paths under the run's work/ directory) into `options.to`: ONE transfer, hash-skipped, size-capped (`hpcpipe pull`). */
  pull(paths: readonly string[], options: PullOptions): Promise<PullOutcome>;
}
