import { z } from "zod";
import { FAILURE_KINDS } from "../core/completed-state.js";

/** Largest state file a reader accepts; anything bigger is refused, not parsed. */
export const STATE_FILE_MAX_BYTES = 1024 * 1024;

/** A namespaced step key as it appears in a state file name: dot-joined names and indices. */
export const STEP_KEY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/;

/** The JSON a job wrapper writes to `states/<key>.json`: a CompletedState plus cluster facts. */
export const stateFileSchema = z.object({
  success: z.boolean(),
  timestamp: z.string().max(64),
  duration_s: z.number().finite().nonnegative(),
  provides: z.array(z.string().max(256)).max(10_000),
  outputs: z.record(z.string(), z.unknown()),
  error: z.string().max(65_536).nullable(),
  meta: z.record(z.string(), z.unknown()),
  signature: z.string().max(64),
  failure: z.enum(FAILURE_KINDS).nullable(),
  key: z.string().regex(STEP_KEY_PATTERN).max(1024),
  slurm: z
    .object({
      job_id: z.string().max(32),
      array_job_id: z.string().max(32),
      array_task_id: z.string().max(32),
      task: z.number().int().nonnegative(),
    })
    .partial()
    .optional(),
  host: z.string().max(256).optional(),
  exit_code: z.number().int().nullable().optional(),
  attempt: z.number().int().min(1).optional(),
  /** Restored from the step cache (src/cache): the run and step whose result this is, and the cache key. */
  cached: z
    .object({
      run: z.string().max(128),
      step: z.string().regex(STEP_KEY_PATTERN).max(1024),
      key: z.string().regex(/^[0-9a-f]{64}$/),
      /** When it ran (the state's own timestamp is when it was restored). */
      ran: z.string().max(64).optional(),
    })
    .strict()
    .optional(),
});

export type StateFile = z.infer<typeof stateFileSchema>;


const FAILURE_OR_NULL: ReadonlySet<unknown> = new Set<unknown>([...FAILURE_KINDS, null]);
const CACHE_KEY = /^[0-9a-f]{64}$/;
const CACHED_FIELDS: ReadonlySet<string> = new Set(["run", "step", "key", "ran"]);

const isString = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;
const isOptString = (v: unknown, max: number): v is string | undefined => v === undefined || isString(v, max);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
/** An object as JSON.parse makes it (no array, the plain prototype), without an own `__proto__` key (zod leaves that key out). */
const isPlain = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype && !Object.hasOwn(v, "__proto__");

/**
 * stateFileSchema's checks written out, for the reader of a million pack lines:
 * the same StateFile zod gives (fields in the schema's order, unknown fields
 * left out), or null when the value is not plainly valid — then zod decides
 * and names what is wrong. Never accepts what the schema refuses (it is
 * stricter where it is simpler: a plain prototype, no `__proto__` key).
 * `json` must be fresh JSON.parse output: its meta, outputs and provides are
 * taken as they are, not copied.
 */
export function stateFileFast(json: unknown): StateFile | null {
  if (!isPlain(json)) return null;
  const { success, timestamp, duration_s, provides, outputs, error, meta, signature, failure, key, slurm, host, exit_code, attempt, cached } = json;
  if (typeof success !== "boolean" || !isString(timestamp, 64) || typeof duration_s !== "number" || !Number.isFinite(duration_s) || duration_s < 0) return null;
  if (!Array.isArray(provides) || provides.length > 10_000 || Object.getPrototypeOf(provides) !== Array.prototype) return null;
  for (let i = 0; i < provides.length; i++) if (!isString(provides[i], 256)) return null;
  if (!isPlain(outputs) || !isPlain(meta) || !(error === null || isString(error, 65_536)) || !isString(signature, 64) || !FAILURE_OR_NULL.has(failure)) return null;
  if (!isString(key, 1024) || !STEP_KEY_PATTERN.test(key)) return null;
  if (!isOptString(host, 256) || !(exit_code === undefined || exit_code === null || isInt(exit_code)) || !(attempt === undefined || (isInt(attempt) && attempt >= 1))) return null;
  const out: StateFile = { success, timestamp, duration_s, provides: provides as string[], outputs, error, meta, signature, failure: failure as StateFile["failure"], key };
  if (slurm !== undefined) {
    if (!isPlain(slurm)) return null;
    const { job_id, array_job_id, array_task_id, task } = slurm;
    if (!isOptString(job_id, 32) || !isOptString(array_job_id, 32) || !isOptString(array_task_id, 32) || !(task === undefined || (isInt(task) && task >= 0))) return null;
    const s: NonNullable<StateFile["slurm"]> = {};
    if (job_id !== undefined) s.job_id = job_id;
    if (array_job_id !== undefined) s.array_job_id = array_job_id;
    if (array_task_id !== undefined) s.array_task_id = array_task_id;
    if (task !== undefined) s.task = task;
    out.slurm = s;
  }
  if (host !== undefined) out.host = host;
  if (exit_code !== undefined) out.exit_code = exit_code;
  if (attempt !== undefined) out.attempt = attempt;
  if (cached !== undefined) {
    if (!isPlain(cached)) return null;
    for (const field of Object.keys(cached)) if (!CACHED_FIELDS.has(field)) return null;
    const { run, step, key: cacheKey, ran } = cached;
    if (!isString(run, 128) || !isString(step, 1024) || !STEP_KEY_PATTERN.test(step) || typeof cacheKey !== "string" || !CACHE_KEY.test(cacheKey) || !isOptString(ran, 64)) return null;
    out.cached = ran === undefined ? { run, step, key: cacheKey } : { run, step, key: cacheKey, ran };
  }
  return out;
}

/** stateFileSchema.safeParse of fresh JSON.parse output, through stateFileFast when the value is plainly valid. */
export function parseStateFile(json: unknown): { success: true; data: StateFile } | { success: false; error: z.ZodError } {
  const fast = stateFileFast(json);
  if (fast !== null) return { success: true, data: fast };
  const parsed = stateFileSchema.safeParse(json);
  return parsed.success ? { success: true, data: parsed.data } : { success: false, error: parsed.error };
}
