/**
 * A submission's first phase, before anything reaches the cluster: the spec,
 * its values and the cluster config are loaded and checked and the plan
 * compiled; then the run record and plan.json are written, so that a killed
 * submitter leaves a record that says how far it got.
 */
import { resolve } from "node:path";
import { ConfigError } from "../cluster/index.js";
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import { preparePlan, sourceLabel } from "./prepare.js";
import { markSubmitter } from "./reconcile.js";
import type { SubmitOptions } from "./submit-options.js";

/** The plan a submission sends: the submit options, a run id (new unless resuming) and what is already done. */
export function prepareFor(options: SubmitOptions, runId: string | undefined, done?: ReadonlySet<string>): ReturnType<typeof preparePlan> {
  const prepared = preparePlan({
    spec: options.spec,
    cluster: options.cluster,
    ...(runId ? { runId } : {}),
    ...(options.set ? { set: options.set } : {}),
    ...(options.fuse !== undefined ? { fuse: options.fuse } : {}),
    ...(options.templatesDir ? { templatesDir: options.templatesDir } : {}),
    ...(done ? { done } : {}),
  });
  for (const warning of prepared.warnings) options.onProgress?.(`warning: ${warning}`);
  return prepared;
}

/** `submit` sends to a SLURM cluster: a config of the local executor is refused, pointing at `hpcpipe run`. */
export function requireSlurm(config: ClusterConfig, options: SubmitOptions): void {
  if (config.executor !== "slurm") {
    throw new ConfigError(config.source ?? options.cluster, [
      { path: "executor", expected: `expected slurm to submit (this config runs on this machine: use \`hpcpipe run ${typeof options.spec === "string" ? options.spec : "PIPELINE"}\` or --cluster local)` },
    ]);
  }
}

/** The record of a new run, in phase "submitting" with no job yet. */
export function firstRecord(plan: CompiledPlan, config: Pick<ClusterConfig, "name" | "source">, options: Pick<SubmitOptions, "spec" | "cluster">, now: string): RunRecord {
  return {
    format: 1,
    run_id: plan.runId,
    pipeline: plan.pipeline,
    spec: sourceLabel(options.spec),
    cluster: config.name,
    cluster_config: resolve(config.source ?? options.cluster),
    remote_dir: plan.layout.runDir,
    plan_signature: plan.signature,
    created: now,
    updated: now,
    phase: "submitting",
    jobs: {},
    error: null,
    resumes: null,
    attempt: 1,
  };
}

/** Writes plan.json and the record, then marks this process as the run's submitter (another process reconciling the run waits while it is alive; see reconcile.ts). */
export async function recordBeforeContact(store: RunStore, plan: CompiledPlan, record: RunRecord): Promise<void> {
  // Both before contacting the cluster: a killed submitter leaves a record that says how far it got.
  await store.writePlan(plan);
  await store.writeRecord(record);
  await markSubmitter(store, plan.runId);
}
