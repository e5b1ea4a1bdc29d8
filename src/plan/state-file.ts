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
 * `json` must be fresh JSON.parse output: it is returned itself when its fields
 * are the schema's in the schema's order (as the wrapper writes them), else
 * copied in that order; its meta, outputs and provides are never copied.
 */
export function stateFileFast(json: unknown): StateFile | null {
  if (!STATE_FILE_FAST_COVERS || !isPlain(json)) return null;
  const { success, timestamp, duration_s, provides, outputs, error, meta, signature, failure, key, slurm, host, exit_code, attempt, cached } = json;
  if (typeof success !== "boolean" || !isString(timestamp, 64) || typeof duration_s !== "number" || !Number.isFinite(duration_s) || duration_s < 0) return null;
  if (!Array.isArray(provides) || provides.length > 10_000 || Object.getPrototypeOf(provides) !== Array.prototype) return null;
  for (let i = 0; i < provides.length; i++) if (!isString(provides[i], 256)) return null;
  if (!isPlain(outputs) || !isPlain(meta) || !(error === null || isString(error, 65_536)) || !isString(signature, 64) || !FAILURE_OR_NULL.has(failure)) return null;
  if (!isString(key, 1024) || !STEP_KEY_PATTERN.test(key)) return null;
  if (!isOptString(host, 256) || !(exit_code === undefined || exit_code === null || isInt(exit_code)) || !(attempt === undefined || (isInt(attempt) && attempt >= 1))) return null;
  if (slurm !== undefined) {
    if (!isPlain(slurm)) return null;
    const { job_id, array_job_id, array_task_id, task } = slurm;
    if (!isOptString(job_id, 32) || !isOptString(array_job_id, 32) || !isOptString(array_task_id, 32) || !(task === undefined || (isInt(task) && task >= 0))) return null;
  }
  if (cached !== undefined) {
    if (!isPlain(cached)) return null;
    for (const field of Object.keys(cached)) if (!CACHED_FIELDS.has(field)) return null;
    const { run, step, key: cacheKey, ran } = cached;
    if (!isString(run, 128) || !isString(step, 1024) || !STEP_KEY_PATTERN.test(step) || typeof cacheKey !== "string" || !CACHE_KEY.test(cacheKey) || !isOptString(ran, 64)) return null;
  }
  // The line as it is when its fields are the schema's, in its order (as the wrapper writes them): no copy.
  if (inOrder(json, STATE_FIELDS) && (slurm === undefined || inOrder(slurm as object, SLURM_FIELDS)) && (cached === undefined || inOrder(cached as object, CACHED_ORDER))) return json as StateFile;
  return copyInOrder(json as StateFile);
}

/** The schema's fields, in its order (zod's output order). */
const STATE_FIELDS = ["success", "timestamp", "duration_s", "provides", "outputs", "error", "meta", "signature", "failure", "key", "slurm", "host", "exit_code", "attempt", "cached"];
const SLURM_FIELDS = ["job_id", "array_job_id", "array_task_id", "task"];
const CACHED_ORDER = ["run", "step", "key", "ran"];

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Whether stateFileFast knows every field of the schema, in its order (else it gives every value to zod:
 * a field added to the schema alone must not be dropped by the fast path). A test holds it true.
 */
export const STATE_FILE_FAST_COVERS =
  sameList(Object.keys(stateFileSchema.shape), STATE_FIELDS) &&
  sameList(Object.keys(stateFileSchema.shape.slurm.unwrap().shape), SLURM_FIELDS) &&
  sameList(Object.keys(stateFileSchema.shape.cached.unwrap().shape), CACHED_ORDER);

/** Whether every enumerable field of `o` is one of `order`, in that order. */
function inOrder(o: object, order: readonly string[]): boolean {
  let i = 0;
  for (const field in o) {
    while (i < order.length && order[i] !== field) i++;
    if (i === order.length) return false;
    i++;
  }
  return true;
}

/** A validated state with its fields (and its slurm and cached fields) in the schema's order, unknown ones left out, as zod gives it. */
function copyInOrder(v: StateFile): StateFile {
  const out: StateFile = { success: v.success, timestamp: v.timestamp, duration_s: v.duration_s, provides: v.provides, outputs: v.outputs, error: v.error, meta: v.meta, signature: v.signature, failure: v.failure, key: v.key };
  if (v.slurm !== undefined) {
    const { job_id, array_job_id, array_task_id, task } = v.slurm;
    const s: NonNullable<StateFile["slurm"]> = {};
    if (job_id !== undefined) s.job_id = job_id;
    if (array_job_id !== undefined) s.array_job_id = array_job_id;
    if (array_task_id !== undefined) s.array_task_id = array_task_id;
    if (task !== undefined) s.task = task;
    out.slurm = s;
  }
  if (v.host !== undefined) out.host = v.host;
  if (v.exit_code !== undefined) out.exit_code = v.exit_code;
  if (v.attempt !== undefined) out.attempt = v.attempt;
  if (v.cached !== undefined) {
    const { run, step, key, ran } = v.cached;
    out.cached = ran === undefined ? { run, step, key } : { run, step, key, ran };
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
