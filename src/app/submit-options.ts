/** The options and the outcome of a submission (`submitRun`), shared by its phases. */
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import type { Transport } from "../transport/index.js";
import type { RemoteStates } from "./collect.js";
import type { ConnectOptions, TransportFactory } from "./connect.js";
import type { PrepareOptions } from "./prepare.js";
import type { RunContext } from "./run-context.js";

export interface SubmitOptions extends Omit<PrepareOptions, "cluster" | "localRunsDir">, ConnectOptions {
  cluster: string;
  store?: RunStore;
  connect?: TransportFactory;
  /** Bound on the submit script (it retries transient sbatch errors for up to about a minute per job); default 30 min. */
  submitTimeoutMs?: number;
  /** Progress messages for people (stderr). */
  onProgress?: (message: string) => void;
  /** Bytes of bundle blobs sent so far, of the total to send (for a progress bar). */
  onTransfer?: (sent: number, total: number) => void;
  /** Resubmit this earlier run: only steps whose remote state is not a success of the same definition run again. */
  resume?: string;
  /** Use the step cache: restore steps that already succeeded with the same key, store what runs (default true; `--no-cache`). */
  cache?: boolean;
  /**
   * Start the SSH handshake once the plan is prepared, so that it overlaps hashing and staging the bundle (the
   * CLI does). Connecting changes nothing on the cluster: the run record is still written before anything is sent.
   */
  connectEarly?: boolean;
}

export interface SubmitOutcome<T> {
  record: RunRecord;
  plan: CompiledPlan;
  /** Channels the submission itself used (upload + submit script): constant in the number of jobs. */
  roundTrips: number;
  /** What `then` returned. */
  then: T | undefined;
}

/** What runs over the same connection after a successful submission (e.g. watch and collect). */
export type AfterSubmit<T> = (run: RunContext) => Promise<T>;

/**
 * What a submission's phase hands on: the connection (still open) and what `then` needs, nothing
 * more. `then` runs once the phase has returned, so what only sending needed (the spec with its
 * items, the files sent, the step cache's keys, the first compilation) is garbage by then: at a
 * million items that is more than a gigabyte a watch and a collect would otherwise hold.
 */
export interface Submitted {
  store: RunStore;
  record: RunRecord;
  plan: CompiledPlan;
  config: ClusterConfig;
  transport: Transport;
  roundTrips: number;
  /** Whether `then` runs (false: nothing was submitted, e.g. a resume with nothing left to run). */
  runThen: boolean;
  /** The state files among the uploaded files (every step restored from the step cache). */
  sentStates?: RemoteStates;
  /** Closes the connection and clears what marks the submission as in progress. */
  close: () => Promise<void>;
}
