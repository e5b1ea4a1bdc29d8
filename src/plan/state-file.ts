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

