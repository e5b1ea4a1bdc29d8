/**
 * Retries on the cluster: a step's retry policy (the spec's `retries`,
 * `retry_on`, `on_timeout`, `on_oom`), what a retry controller job is told
 * (`RetryControl`, on the controller's plan job), and the records a
 * controller writes into the run directory (`retries/<job>.<attempt>.json`
 * for each retry it submitted, `retries/<job>.end.json` when the chain ends),
 * read back by status, watch, collect and cancel. See templates/retry.sh.
 */
import { z } from "zod";

/** The failures named by SLURM's final state that `retry_on` may list beside exit codes. */
export const RETRY_REASONS = ["NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "PREEMPTED"] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

/** Most retries a step may ask for. */
export const MAX_RETRIES = 10;
/** Largest escalation factor (`x16`). */
export const MAX_ESCALATION = 16;

export interface RetryPolicy {
  /** Further attempts after the first (0-10); for a map, per item. */
  retries: number;
  /** What is retried: exit codes 1-255 and reason names; null: every failure (a cancel never is). */
  on: Array<number | RetryReason> | null;
  /** Factor on the time limit after an attempt hit it (`on_timeout: { time: x2 }`), or null. */
  timeFactor: number | null;
  /** Factor on the memory after an attempt ran out of it (`on_oom: { mem: x1.5 }`), or null. */
  memFactor: number | null;
}

/** `"x2"`, `"x1.5"`: a factor above 1 and at most MAX_ESCALATION; null when the text is not one. */
export function parseFactor(text: string): number | null {
  const m = /^x(\d{1,2}(?:\.\d{1,3})?)$/.exec(text);
  if (m === null) return null;
  const f = Number(m[1]);
  return f > 1 && f <= MAX_ESCALATION ? f : null;
}

/** What a retry controller job is given (the plan job of a controller carries it as `retry`). */
export interface RetryControl {
  /** The plan job it retries. */
  of: string;
  retries: number;
  /** Comma-separated exit codes and reason names, or "ALL". */
  on: string;
  /** Escalation factors in thousandths (2000 = x2); 0 for none. */
  timeFactorPermille: number;
  memFactorPermille: number;
  /** The job's own time limit (s) and memory (MB); 0 when it sets none (no escalation then). */
  timeS: number;
  memMb: number;
  /** The partition's limits (s, MB); 0 when the cluster config gives none. */
  maxTimeS: number;
  maxMemMb: number;
  /** The partition the job runs in ("" for the cluster's default): its nodes bound `--exclude`. */
  partition: string;
  /** Items (map items, a packed group's children) per array task; 1 when not packed. */
  itemsPerTask: number;
  /** The controlled job's script, relative to the run directory, and its SLURM job name. */
  script: string;
  name: string;
  /** The controlled job's array: 1 when it is one; its `%N` throttle (0 for none). */
  isArray: 0 | 1;
  throttle: number;
  /** The first attempt's task ids -> logical tasks: the chunk offset, or the remapped list ("" when not remapped). */
  offset: number;
  taskMap: string;
}

/** `retry_on` as the controller reads it. */
export function retryOnArgument(on: RetryPolicy["on"]): string {
  return on === null ? "ALL" : on.map(String).join(",");
}

const slurmIdSchema = z.string().regex(/^\d{1,20}$/);
const nodeSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/);

/** One retry a controller submitted: `retries/<job>.<attempt>.json`. */
export const retryAttemptSchema = z
  .object({
    job: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
    attempt: z.number().int().min(2).max(1000),
    /** The controller that submitted it, the retry array (or job) and the controller that follows it. */
    by: slurmIdSchema,
    retry_job_id: slurmIdSchema,
    controller_job_id: slurmIdSchema,
    /** Logical tasks the retry runs: task id i runs tasks[i]. */
    tasks: z.array(z.number().int().nonnegative()).min(1).max(1_000_000),
    /** Why each task was retried, by logical task ("exit 3", "TIMEOUT", "NODE_FAIL"...). */
    reasons: z.record(z.string().regex(/^\d+$/), z.string().max(64)),
    time_s: z.number().int().nonnegative(),
    mem_mb: z.number().int().nonnegative(),
    exclude: z.array(nodeSchema).max(10_000),
  })
  .strict();
export type RetryAttempt = z.infer<typeof retryAttemptSchema>;

/** The end of a retry chain: `retries/<job>.end.json`. */
export const retryEndSchema = z
  .object({
    job: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
    /** Attempts made (the first included). */
    attempts: z.number().int().min(1).max(1000),
    ok: z.boolean(),
    /** The controller that ended the chain. */
    by: slurmIdSchema,
    /** Tasks that failed for good, with why ("exit 2 (not in retry_on)", "exit 3 (retries used up)"). */
    failed: z.record(z.string().regex(/^\d+$/), z.string().max(128)),
  })
  .strict();
export type RetryEnd = z.infer<typeof retryEndSchema>;

/** Every retry record of a run, by plan job. */
export interface RetryRecords {
  attempts: Map<string, RetryAttempt[]>;
  ends: Map<string, RetryEnd>;
  /** The SLURM ids of the run's own jobs (the first attempts), when the reader knows them. */
  firstJobIds?: Readonly<Record<string, string>>;
  /** Record files that could not be used (name and why); they are reported, never trusted. */
  problems: Array<{ file: string; error: string }>;
}

export const RETRY_RECORD_MAX_BYTES = 16 * 1024 * 1024;
const RECORD_NAME = /^(j\d{3,})\.(\d{1,4}|end)\.json$/;

/** Validates the record files read from `retries/` (name -> text). */
export function parseRetryRecords(files: ReadonlyMap<string, string>): RetryRecords {
  const out: RetryRecords = { attempts: new Map(), ends: new Map(), problems: [] };
  for (const [file, text] of files) {
    const m = RECORD_NAME.exec(file);
    if (m === null) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      out.problems.push({ file, error: "not valid JSON" });
      continue;
    }
    if (m[2] === "end") {
      const r = retryEndSchema.safeParse(json);
      if (!r.success || r.data.job !== m[1]) out.problems.push({ file, error: r.success ? "its job field does not match its name" : r.error.issues[0]?.message ?? "invalid" });
      else out.ends.set(r.data.job, r.data);
      continue;
    }
    const r = retryAttemptSchema.safeParse(json);
    if (!r.success || r.data.job !== m[1] || r.data.attempt !== Number(m[2])) {
      out.problems.push({ file, error: r.success ? "its job or attempt field does not match its name" : r.error.issues[0]?.message ?? "invalid" });
      continue;
    }
    const list = out.attempts.get(r.data.job) ?? [];
    list.push(r.data);
    out.attempts.set(r.data.job, list);
  }
  for (const list of out.attempts.values()) list.sort((a, b) => a.attempt - b.attempt);
  return out;
}
