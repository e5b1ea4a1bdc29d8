// The job states hpcpipe distinguishes, and the translation from every spelling
// SLURM uses for them (squeue long names and short codes, sacct, scontrol).

/** Every state a SLURM job or array task can be reported in. */
export const JOB_STATES = [
  "PENDING",
  "RUNNING",
  "COMPLETING",
  "COMPLETED",
  "FAILED",
  "TIMEOUT",
  "OUT_OF_MEMORY",
  "CANCELLED",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "REQUEUED",
  "SUSPENDED",
  "REVOKED",
  "LOST",
  "NOT_SUBMITTED",
  "UNKNOWN",
] as const;

/**
 * What a job is doing, as SLURM reports it (Parsl-style: one name per state).
 *
 * - `PENDING`: waiting for resources, a dependency, a throttle or a hold; the
 *   record's `reason` says which (e.g. `DependencyNeverSatisfied`, which never ends).
 * - `RUNNING`: allocated and running.
 * - `COMPLETING`: finished or killed, processes still being cleaned up (up to
 *   KillWait); the final state is not known yet.
 * - `COMPLETED`: exited 0 on every node. Final.
 * - `FAILED`: exited non-zero (ExitCode `3:0`) or failed to launch. Final.
 * - `TIMEOUT`: killed at its time limit (ExitCode `0:9` here). Final.
 * - `OUT_OF_MEMORY`: killed for exceeding its memory (cgroup OOM). Final.
 * - `CANCELLED`: scancel'd (`cancelledBy` holds the uid when sacct says
 *   `CANCELLED by 1001`) or killed by `--kill-on-invalid-dep=yes`
 *   (reason `DependencyNeverSatisfied`). Final.
 * - `NODE_FAIL`: a node it ran on failed. Final.
 * - `PREEMPTED`: preempted by a higher-priority job and not requeued. Final.
 * - `BOOT_FAIL`: its nodes failed to boot. Final.
 * - `DEADLINE`: could not finish before `--deadline` and was removed. Final.
 * - `REQUEUED`: put back in the queue (by an admin, preemption or node
 *   failure); it will run again. Not final.
 * - `SUSPENDED`: stopped by an admin (`scontrol suspend`) or gang scheduling;
 *   resumes later. Not final.
 * - `REVOKED`: a federation sibling started the job elsewhere. Final.
 * - `LOST` (hpcpipe's own): no source (squeue, sacct, scontrol) knows the
 *   job any more, and SLURM's MinJobAge has passed since it was submitted:
 *   slurmctld has purged it and accounting never had it. Final; its steps
 *   without a state file fail with that reason.
 * - `NOT_SUBMITTED` (hpcpipe's own): the submission stopped before this job. Final.
 * - `UNKNOWN`: a spelling hpcpipe does not know (the record keeps the raw
 *   text), or a job no source knows yet within MinJobAge. Not final: it is
 *   asked again.
 */
export type JobState = (typeof JOB_STATES)[number];

const FINAL_STATES: ReadonlySet<JobState> = new Set<JobState>([
  "COMPLETED",
  "FAILED",
  "TIMEOUT",
  "OUT_OF_MEMORY",
  "CANCELLED",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "REVOKED",
  "LOST",
  "NOT_SUBMITTED",
]);

/** True for the states a job never leaves. */
export function isFinal(state: JobState): boolean {
  return FINAL_STATES.has(state);
}

/** Whether a state as printed (`CANCELLED by 1001`, `COMPLETED+`, `CD`, an unknown word) is final: unknown spellings are not. */
export function isFinalText(text: string): boolean {
  return isFinal(translateState(text).state);
}

/**
 * A job no source knows: LOST (final) once MinJobAge has passed since it was
 * submitted, else UNKNOWN (asked again).
 */
export function unknownJobState(submittedIso: string | null, now: number, minJobAgeS: number): { state: JobState; reason: string | null; final: boolean } {
  const submitted = submittedIso === null ? Number.NaN : Date.parse(submittedIso);
  if (!Number.isNaN(submitted) && now - submitted >= minJobAgeS * 1000) {
    return { state: "LOST", reason: `no scheduler source knows the job ${minJobAgeS} s (MinJobAge) after its submission`, final: true };
  }
  return { state: "UNKNOWN", reason: null, final: false };
}

/** True only for COMPLETED: the one final state that is a success. */
export function isSuccess(state: JobState): boolean {
  return state === "COMPLETED";
}

/** squeue's long names (`%T`, scontrol `JobState=`, sacct `State`) that are not one of ours verbatim. */
const LONG_NAME_ALIASES: Readonly<Record<string, JobState>> = {
  // Allocated, nodes still booting or prolog running: not started yet.
  CONFIGURING: "PENDING",
  // Held after a reservation was deleted.
  RESV_DEL_HOLD: "PENDING",
  // Requeue variants.
  REQUEUE_FED: "REQUEUED",
  REQUEUE_HOLD: "REQUEUED",
  SPECIAL_EXIT: "REQUEUED",
  // Running, changing size or being signalled.
  RESIZING: "RUNNING",
  SIGNALING: "RUNNING",
  // Burst-buffer stage-out after the job ended.
  STAGE_OUT: "COMPLETING",
  STOPPED: "SUSPENDED",
  // Older spellings.
  CANCELED: "CANCELLED",
  NODE_FAILURE: "NODE_FAIL",
};

/** squeue's compact codes (`%t`). */
const SHORT_CODES: Readonly<Record<string, JobState>> = {
  PD: "PENDING",
  R: "RUNNING",
  CG: "COMPLETING",
  CD: "COMPLETED",
  F: "FAILED",
  TO: "TIMEOUT",
  OOM: "OUT_OF_MEMORY",
  CA: "CANCELLED",
  NF: "NODE_FAIL",
  PR: "PREEMPTED",
  BF: "BOOT_FAIL",
  DL: "DEADLINE",
  RQ: "REQUEUED",
  S: "SUSPENDED",
  RV: "REVOKED",
  CF: "PENDING",
  RD: "PENDING",
  RF: "REQUEUED",
  RH: "REQUEUED",
  SE: "REQUEUED",
  RS: "RUNNING",
  SI: "RUNNING",
  SO: "COMPLETING",
  ST: "SUSPENDED",
};

const OUR_NAMES: ReadonlySet<string> = new Set(JOB_STATES.filter((state) => state !== "UNKNOWN"));

export interface TranslatedState {
  state: JobState;
  /** The text SLURM printed, trimmed (kept so UNKNOWN never loses information). */
  raw: string;
  /** Who cancelled the job, from sacct's `CANCELLED by <uid>`. */
  cancelledBy?: string;
}

/**
 * Translates any SLURM spelling of a state: squeue long names and short codes,
 * sacct names (`CANCELLED by 1001`, truncated `CANCELLED+`) and scontrol's JobState.
 * Never throws: unknown text becomes UNKNOWN with `raw` kept.
 */
export function translateState(text: string): TranslatedState {
  const raw = text.trim();
  const cancelled = /^CANCELL?ED(?:\+)?\s+by\s+(\S+)$/i.exec(raw);
  if (cancelled?.[1] !== undefined) return { state: "CANCELLED", raw, cancelledBy: cancelled[1] };

  const word = raw.replace(/\+$/, "").toUpperCase();
  if (OUR_NAMES.has(word)) return { state: word as JobState, raw };
  const alias = LONG_NAME_ALIASES[word] ?? SHORT_CODES[word];
  if (alias !== undefined) return { state: alias, raw };
  return { state: "UNKNOWN", raw };
}
