import type { Resources } from "../plan/resources.js";

/** What the compiler needs to know about where the plan will run (derived from a cluster config). */
export interface CompileTarget {
  /** Cluster config name, recorded in the plan. */
  name: string;
  /** Remote (or local) work directory; may start with $HOME or $SCRATCH. */
  workdir: string;
  /** SLURM MaxArraySize: an array may have at most this many tasks (indices 0..max-1). */
  maxArraySize: number;
  /** Default `%N` for arrays without their own throttle; null for none. */
  arrayThrottle: number | null;
  /** Resource defaults from the cluster (partition, account, qos), under the pipeline's own defaults. */
  defaults: Resources;
  modules: string[];
  setup: string[];
  sbatchOptions: string[];
  /** Seconds before the time limit at which SLURM sends USR1 (`--signal=B:USR1@N`). */
  signalGraceS: number;
  /** Per-partition limits (the cluster config's `partitions`): they bound a retry's escalated time and memory. */
  partitions?: Record<string, { max_time?: string | undefined; max_mem?: string | undefined }>;
  /** False where no retry controller can run: a step with `retries` is refused, named. (Both executors retry.) */
  retriesAllowed?: boolean;
}

export const LOCAL_TARGET_DEFAULTS: Omit<CompileTarget, "workdir"> = {
  name: "local",
  maxArraySize: 1001,
  arrayThrottle: null,
  defaults: {},
  modules: [],
  setup: [],
  sbatchOptions: [],
  signalGraceS: 10,
};
