/**
 * The `--json` event stream of a watch (`status --watch --json`, `submit
 * --wait --json`, `run --json`): one JSON object per line, each with a
 * `type`. Declared with zod so that the schema is the documentation (README
 * "Progress a person can read") and tests parse every line with it.
 */
import { z } from "zod";
import type { RowProgress, StateArrival } from "./progress.js";
import type { RunStatus } from "./status.js";
import type { JobStatus } from "../runs/job-status.js";

const counts = z.object({ pending: z.number().int().nonnegative(), running: z.number().int().nonnegative(), done: z.number().int().nonnegative(), failed: z.number().int().nonnegative() }).strict();
const at = z.string().datetime({ offset: true });

/** The watch begins: the run and its rows (steps, groups, maps). */
export const startEventSchema = z
  .object({
    type: z.literal("start"),
    at,
    run_id: z.string(),
    pipeline: z.string(),
    cluster: z.string(),
    rows: z.array(z.object({ key: z.string(), label: z.string(), jobs: z.array(z.string()) }).strict()),
  })
  .strict();

/** A state file arrived: a step (or a map item, a group child) of a submitted job ended. */
export const stateEventSchema = z
  .object({
    type: z.literal("state"),
    at,
    row: z.string(),
    step: z.string(),
    job: z.string(),
    task: z.number().int().nonnegative().nullable(),
    status: z.enum(["ok", "failed"]),
    duration_s: z.number().nonnegative(),
    outputs: z.array(z.string()),
    attempt: z.number().int().positive().nullable(),
  })
  .strict();

/** The scheduler's state of a plan job changed (or the files ended it). */
export const jobEventSchema = z
  .object({
    type: z.literal("job"),
    at,
    job: z.string(),
    label: z.string(),
    slurm_job_id: z.string().nullable(),
    state: z.string(),
    reason: z.string().nullable(),
    final: z.boolean(),
    counts,
  })
  .strict();

/** Where every row stands (at most once a second, and at the end). */
export const progressEventSchema = z
  .object({
    type: z.literal("progress"),
    at,
    rows: z.array(
      z
        .object({
          key: z.string(),
          label: z.string(),
          counts,
          total: z.number().int().nonnegative(),
          state: z.string(),
          final: z.boolean(),
          rate_per_s: z.number().nonnegative().nullable(),
          task_mean_s: z.number().nonnegative().nullable(),
          eta_s: z.number().nonnegative().nullable(),
          latest_image: z.string().nullable(),
          /** Failed items by the state files seen (can exceed counts.failed: allowed failures, packed tasks). */
          failed_items: z.number().int().nonnegative(),
        })
        .strict(),
    ),
  })
  .strict();

/** A line for people while watching (a poll that failed and is retried). */
export const messageEventSchema = z.object({ type: z.literal("message"), at, text: z.string() }).strict();

/** The watch ended: every job has ended (with the merged result's summary), or the watch was stopped. */
export const endEventSchema = z
  .object({
    type: z.literal("end"),
    at,
    run_id: z.string(),
    aborted: z.boolean(),
    final: z.boolean(),
    counts,
    result: z.object({ success: z.boolean(), failure: z.string().nullable(), error: z.string().nullable(), exit_code: z.number().int() }).strict().nullable(),
    /** The first failed steps (at most 20), by key. */
    failed_steps: z.array(z.string()),
    failed_steps_total: z.number().int().nonnegative(),
  })
  .strict();

export const watchEventSchema = z.discriminatedUnion("type", [startEventSchema, stateEventSchema, jobEventSchema, progressEventSchema, messageEventSchema, endEventSchema]);
export type WatchStreamEvent = z.infer<typeof watchEventSchema>;

const FAILED_STEPS_SHOWN = 20;

export function startEvent(status: Pick<RunStatus, "run_id" | "pipeline" | "cluster">, rows: ReadonlyArray<{ key: string; label: string; jobs: readonly string[] }>, atIso: string): WatchStreamEvent {
  return { type: "start", at: atIso, run_id: status.run_id, pipeline: status.pipeline, cluster: status.cluster, rows: rows.map((r) => ({ key: r.key, label: r.label, jobs: [...r.jobs] })) };
}

export function stateEvent(arrival: StateArrival, atIso: string): WatchStreamEvent {
  return { type: "state", at: atIso, ...arrival, outputs: [...arrival.outputs] };
}

export function jobEvent(j: JobStatus, atIso: string): WatchStreamEvent {
  return { type: "job", at: atIso, job: j.job, label: j.label, slurm_job_id: j.slurmJobId, state: j.state, reason: j.reason, final: j.final, counts: { ...j.counts } };
}

export function progressEvent(rows: readonly RowProgress[], atIso: string): WatchStreamEvent {
  return {
    type: "progress",
    at: atIso,
    rows: rows.map((r) => ({
      key: r.key,
      label: r.label,
      counts: { ...r.counts },
      total: r.total,
      state: r.state,
      final: r.final,
      rate_per_s: r.ratePerS,
      task_mean_s: r.taskMeanS,
      eta_s: r.etaS === null ? null : Math.round(r.etaS * 10) / 10,
      latest_image: r.latestImage,
      failed_items: r.failedItems,
    })),
  };
}

export function endEvent(status: RunStatus, aborted: boolean, atIso: string): WatchStreamEvent {
  const failed: string[] = [];
  let total = 0;
  for (const [key, s] of Object.entries(status.steps ?? {})) {
    if (s.success) continue;
    total += 1;
    if (failed.length < FAILED_STEPS_SHOWN) failed.push(key);
  }
  return { type: "end", at: atIso, run_id: status.run_id, aborted, final: status.final, counts: { ...status.counts }, result: status.result, failed_steps: failed, failed_steps_total: total };
}
