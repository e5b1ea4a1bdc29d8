import { asCompletedState, CompletedState } from "./completed-state.js";
import { PipelineStep } from "./step.js";
import type { Context, RunOptions, StepOptions } from "./step.js";

export type StepFunction = (
  context: Context,
  options: RunOptions,
) => Promise<CompletedState | Record<string, unknown> | void> | CompletedState | Record<string, unknown> | void;

export interface FunctionStepOptions extends StepOptions {
  run: StepFunction;
  rollback?: (context: Context, error: unknown) => void | Promise<void>;
}

/**
 * A step made from a function, for in-process work. Returning nothing or an
 * object of outputs means success; returning a CompletedState passes it on.
 * Such a step exists only in this process and cannot be sent to a cluster.
 */
export class FunctionStep extends PipelineStep {
  private readonly fn: StepFunction;
  private readonly undo: FunctionStepOptions["rollback"];

  constructor(options: FunctionStepOptions) {
    super(options);
    this.fn = options.run;
    this.undo = options.rollback;
  }

  override async run(context: Context, options: RunOptions = {}): Promise<CompletedState> {
    const result = await this.fn(context, options);
    if (result === undefined) return CompletedState.ok();
    // Also a CompletedState from another copy of the library (or its JSON), which must not become "outputs".
    const state = asCompletedState(result);
    if (state !== null) return state;
    if (result === null || typeof result !== "object" || Array.isArray(result)) return result as unknown as CompletedState;
    return CompletedState.ok({ outputs: result as Record<string, unknown> });
  }

  override async rollback(context: Context, error: unknown): Promise<void> {
    await this.undo?.(context, error);
  }
}
