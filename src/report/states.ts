/**
 * Reading a merged result's states for the report: how a node ended, its
 * SLURM ids, why it did not run. Values come from `meta` (written by the job
 * wrapper or the collector) and are checked, never trusted.
 */
import type { CompletedStateJson } from "../core/completed-state.js";

/** How a node of the pipeline tree ended. */
export type Outcome = "ok" | "failed" | "skipped" | "not_run";

/** One state of the merged result. */
export type State = CompletedStateJson;

export function str(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

export function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The wrapper's SLURM facts of a state (`meta.slurm`), checked. */
export function slurmOf(state: State | undefined): { jobId: string; arrayJobId: string | null; arrayTaskId: string | null } | null {
  const slurm = record(state?.meta.slurm);
  const jobId = str(slurm?.job_id);
  if (jobId === null) return null;
  return { jobId, arrayJobId: str(slurm?.array_job_id), arrayTaskId: str(slurm?.array_task_id) };
}

/** `24610_1` for an array task, else the job id; for a step that never ran, the id the collector recorded. */
export function slurmIdOf(state: State | undefined): string | null {
  const s = slurmOf(state);
  if (s !== null) return s.arrayJobId !== null && s.arrayTaskId !== null ? `${s.arrayJobId}_${s.arrayTaskId}` : s.jobId;
  const recorded = str(state?.meta.slurm_job_id);
  const task = num(state?.meta.task);
  if (recorded === null) return null;
  return task !== null ? `${recorded} (task ${task})` : recorded;
}

export function isNotRun(state: State | undefined): boolean {
  return state?.meta.not_run === true;
}

export function attemptOf(state: State | undefined): number | null {
  return num(state?.meta.attempt);
}

export function outcomeOf(state: State | undefined, attempt: number): Outcome {
  if (state === undefined || isNotRun(state)) return "not_run";
  if (!state.success) return "failed";
  const from = attemptOf(state);
  return from !== null && from < attempt ? "skipped" : "ok";
}

export function reasonOf(state: State | undefined): string | null {
  if (state === undefined) return "no result: it was not started";
  const slurmState = str(state.meta.slurm_state);
  const slurmReason = str(state.meta.slurm_reason);
  if (slurmState !== null) return slurmReason !== null ? `${slurmState} (${slurmReason})` : slurmState;
  return str(state.meta.reason);
}

export function emptyCounts(): Record<Outcome, number> {
  return { ok: 0, failed: 0, skipped: 0, not_run: 0 };
}
