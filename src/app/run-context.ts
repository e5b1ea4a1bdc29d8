/** The shared context of the use cases that act on one submitted cluster run (kept apart so that connect and reconcile do not import each other). */
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import type { SlurmScheduler } from "../slurm/index.js";
import type { Transport } from "../transport/index.js";
import type { RemoteStates } from "./collect.js";

/** Everything a command needs to act on one submitted run: its record, plan, cluster and one connection. */
export interface RunContext {
  store: RunStore;
  record: RunRecord;
  plan: CompiledPlan;
  config: ClusterConfig;
  transport: Transport;
  scheduler: SlurmScheduler;
  /**
   * The state files this process itself uploaded to a run that submitted no job (every step restored from
   * the step cache): nothing else can write to its states/, so a collect reads these instead of the cluster.
   */
  sentStates?: RemoteStates;
}
