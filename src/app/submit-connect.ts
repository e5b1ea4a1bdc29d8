/** The connection a submission goes over: started early (to overlap hashing the bundle) or opened once the record is written. */
import { reached } from "../core/timing.js";
import type { ClusterConfig } from "../cluster/index.js";
import type { RunStore } from "../runs/index.js";
import type { Transport } from "../transport/index.js";
import { connectOptionsOf } from "./connect.js";
import type { TransportFactory } from "./connect.js";
import type { SubmitOptions } from "./submit-options.js";

/** The connection to the cluster a submission goes to, started at once (a config that runs locally: none). */
export function connectEarly(config: ClusterConfig, options: Pick<SubmitOptions, "acceptNewHostKey">, connect: TransportFactory): Promise<Transport> | null {
  if (config.executor !== "slurm") return null;
  const pending = connect(config, connectOptionsOf(options));
  pending.catch(() => undefined); // awaited (and reported) after the record is written
  return pending;
}

/** Reading the ssh config and keys takes a few event-loop turns; lets the first packet leave before hashing. */
export async function letConnectStart(early: Promise<Transport>): Promise<void> {
  await Promise.race([reached("connect-start", 200), early.then(() => undefined, () => undefined)]);
}

/** Closes a connection started early when the submission stops before using it. */
export function dropEarly(early: Promise<Transport> | null): void {
  void early?.then((t) => t.close(), () => undefined);
}

/** The open connection; when it cannot be had, the run's record says so ("submit_failed") and the error is thrown. */
export async function connectForSubmit(store: RunStore, runId: string, config: ClusterConfig, open: () => Promise<Transport>): Promise<Transport> {
  try {
    return await open();
  } catch (error) {
    await store.updateRecord(runId, { phase: "submit_failed", error: `could not connect to ${config.name}: ${(error as Error).message}`.slice(0, 60_000) });
    throw error;
  }
}
