import { asCompletedState, CompletedState } from "./completed-state.js";
import type { FailureKind } from "./completed-state.js";
import type { Clock } from "./clock.js";
import type { Logger } from "./logger.js";
import { shortSignature } from "./signature.js";
import type { Context, PipelineStep } from "./step.js";

/** Everything a run carries down the tree. */
export interface ExecEnv {
  logger: Logger;
  clock: Clock;
  force: boolean;
  signal: AbortSignal | undefined;
  workDir: string | undefined;
}

/** The map of namespaced results inside the shared context, created on first use. */
export function stepStatesOf(context: Context): Record<string, CompletedState> {
  let states = context.step_states;
  if (states === undefined || states === null || typeof states !== "object") {
    states = {};
    context.step_states = states;
  }
  return states;
}

export function missingRequirements(step: PipelineStep, context: Context): string[] {
  return step.checkedRequires.filter((k) => context[k] === undefined);
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return `thrown value: ${String(err)}`;
}

/**
 * Whether a previous successful result of this exact definition lets the step
 * be skipped: idempotent, not forced, same signature, and what it provides is
 * still in the context (`have`: the keys available at that point).
 */
export function canSkip(step: PipelineStep, previous: CompletedState | undefined, force: boolean, have: (key: string) => boolean): boolean {
  return (
    !force &&
    !step.forced &&
    step.idempotent &&
    previous !== undefined &&
    previous.success &&
    previous.signature === shortSignature(step) &&
    step.provides.every(have)
  );
}

/**
 * Runs one step under the orchestrator's rules and records its result under
 * `key`: requirements, idempotent skip, timing, exceptions and rollback,
 * return checking, validation, logging. Never throws for the step's failure.
 */
export async function runChild(step: PipelineStep, context: Context, key: string, env: ExecEnv): Promise<CompletedState> {
  const states = stepStatesOf(context);
  const { logger, clock } = env;
  const signature = shortSignature(step);
  const timestamp = clock.isoNow();
  const started = clock.now();

  const finish = (state: CompletedState): CompletedState => {
    state.timestamp = timestamp;
    state.duration_s = Math.max(0, (clock.now() - started) / 1000);
    state.signature = signature;
    // A failed step provided nothing, whatever it declared.
    if (!state.success) state.provides = [];
    else if (state.provides.length === 0) state.provides = [...step.provides];
    states[key] = state;
    if (state.success) logger.info({ step: key, duration_s: state.duration_s }, "step succeeded");
    else logger.info({ step: key, failure: state.failure, error: state.error, duration_s: state.duration_s }, "step failed");
    return state;
  };
  const failed = (failure: FailureKind, error: string, meta: Record<string, unknown> = {}): CompletedState =>
    finish(new CompletedState({ success: false, failure, error, meta }, clock));

  // States restored from JSON are plain objects: bring them back to CompletedState first.
  const previous = states[key] === undefined ? undefined : (asCompletedState(states[key]) ?? undefined);
  if (canSkip(step, previous, env.force, (k) => context[k] !== undefined)) {
    states[key] = previous as CompletedState;
    logger.info({ step: key }, "step skipped (idempotent, already succeeded)");
    return previous as CompletedState;
  }

  const missing = missingRequirements(step, context);
  if (missing.length > 0) {
    return failed("MISSING_REQUIREMENT", `missing requirement${missing.length > 1 ? "s" : ""} ${missing.map((k) => `'${k}'`).join(", ")}`, {
      missing,
    });
  }

  logger.info({ step: key }, "step start");
  let raw: unknown;
  try {
    raw = await step.run(context, { key, logger, clock, force: env.force, signal: env.signal, workDir: env.workDir });
  } catch (err) {
    let error = describe(err);
    try {
      await step.rollback(context, err);
    } catch (rollbackErr) {
      error += `; rollback also failed: ${describe(rollbackErr)}`;
    }
    return failed("STEP_EXCEPTION", error);
  }

  const result = asCompletedState(raw);
  if (result === null) {
    const got = raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw;
    return failed("INVALID_RETURN", `returned ${got} instead of a CompletedState`);
  }
  // A copy, so a step that returns a shared object does not see it rewritten.
  const state = new CompletedState({ ...result, step_states: undefined }, clock);
  if (!state.success) return finish(state);

  let problems: string[];
  try {
    const got: unknown = await step.validate(context);
    problems = Array.isArray(got) ? got.map(String) : [`validate returned ${typeof got} instead of a list of problems`];
  } catch (err) {
    problems = [`validate threw ${describe(err)}`];
  }
  if (problems.length > 0) {
    return finish(
      new CompletedState({ ...state, success: false, failure: "STEP_FAILED", error: `validation failed: ${problems.join("; ")}`, step_states: undefined }, clock),
    );
  }
  return finish(state);
}

/** Gathers the results below `key` (its descendants) from the context's map. */
export function statesUnder(context: Context, key: string): Record<string, CompletedState> {
  const prefix = `${key}.`;
  const out: Record<string, CompletedState> = {};
  for (const [k, v] of Object.entries(stepStatesOf(context))) if (k.startsWith(prefix)) out[k] = v;
  return out;
}
