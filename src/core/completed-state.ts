import { z } from "zod";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";

/** Why a step failed; travels inside the state so nested failures keep their cause. */
export const FAILURE_KINDS = ["MISSING_REQUIREMENT", "STEP_EXCEPTION", "INVALID_RETURN", "STEP_FAILED"] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/**
 * The JSON shape of a step result. Keys are snake_case on purpose: the same
 * JSON is written by job scripts on a cluster and read back by the tool.
 */
export const completedStateSchema: z.ZodType<CompletedStateJson> = z.lazy(() =>
  z.object({
    success: z.boolean(),
    timestamp: z.string(),
    duration_s: z.number().finite().nonnegative(),
    provides: z.array(z.string()),
    outputs: z.record(z.string(), z.unknown()),
    error: z.string().nullable(),
    meta: z.record(z.string(), z.unknown()),
    signature: z.string(),
    failure: z.enum(FAILURE_KINDS).nullable().optional(),
    step_states: z.record(z.string(), completedStateSchema).optional(),
  }),
);

export interface CompletedStateJson {
  success: boolean;
  timestamp: string;
  duration_s: number;
  provides: string[];
  outputs: Record<string, unknown>;
  error: string | null;
  meta: Record<string, unknown>;
  signature: string;
  failure?: FailureKind | null | undefined;
  step_states?: Record<string, CompletedStateJson> | undefined;
}

export interface CompletedStateInit {
  success: boolean;
  timestamp?: string;
  duration_s?: number;
  provides?: readonly string[];
  outputs?: Record<string, unknown>;
  error?: string | null;
  meta?: Record<string, unknown>;
  signature?: string;
  failure?: FailureKind | null;
  step_states?: Record<string, CompletedState>;
}

/** The result of running a step, or a whole pipeline (then `step_states` holds every namespaced child result). */
export class CompletedState {
  success: boolean;
  timestamp: string;
  duration_s: number;
  provides: string[];
  outputs: Record<string, unknown>;
  error: string | null;
  meta: Record<string, unknown>;
  signature: string;
  failure: FailureKind | null;
  step_states: Record<string, CompletedState> | undefined;

  constructor(init: CompletedStateInit, clock: Clock = systemClock) {
    this.success = init.success;
    this.timestamp = init.timestamp ?? clock.isoNow();
    this.duration_s = init.duration_s ?? 0;
    this.provides = [...(init.provides ?? [])];
    this.outputs = init.outputs ?? {};
    this.error = init.error ?? null;
    this.meta = init.meta ?? {};
    this.signature = init.signature ?? "";
    this.failure = init.success ? null : (init.failure ?? "STEP_FAILED");
    this.step_states = init.step_states;
  }

  /** A successful result with optional outputs. */
  static ok(init: Omit<CompletedStateInit, "success" | "failure" | "error"> = {}): CompletedState {
    return new CompletedState({ ...init, success: true });
  }

  /** A failed result; `failure` defaults to STEP_FAILED. */
  static fail(error: string, init: Omit<CompletedStateInit, "success" | "error"> = {}): CompletedState {
    return new CompletedState({ ...init, success: false, error });
  }

  /** Rebuilds a state (and its nested step_states) from validated JSON. */
  static fromJSON(json: unknown): CompletedState {
    const parsed = completedStateSchema.parse(json);
    return fromParsed(parsed);
  }

  toJSON(): CompletedStateJson {
    const json: CompletedStateJson = {
      success: this.success,
      timestamp: this.timestamp,
      duration_s: this.duration_s,
      provides: this.provides,
      outputs: this.outputs,
      error: this.error,
      meta: this.meta,
      signature: this.signature,
      failure: this.failure,
    };
    if (this.step_states !== undefined) {
      json.step_states = Object.fromEntries(Object.entries(this.step_states).map(([k, v]) => [k, v.toJSON()]));
    }
    return json;
  }
}

function fromParsed(p: CompletedStateJson): CompletedState {
  return new CompletedState({
    ...p,
    failure: p.failure ?? null,
    step_states:
      p.step_states === undefined
        ? undefined
        : Object.fromEntries(Object.entries(p.step_states).map(([k, v]) => [k, fromParsed(v)])),
  });
}

/**
 * Accepts a CompletedState instance or a plain object of the same shape
 * (a step from another copy of the library); anything else is null.
 */
export function asCompletedState(value: unknown): CompletedState | null {
  if (value instanceof CompletedState) return value;
  const parsed = completedStateSchema.safeParse(value);
  return parsed.success ? fromParsed(parsed.data) : null;
}
