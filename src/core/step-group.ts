import { availableParallelism } from "node:os";
import { CompletedState } from "./completed-state.js";
import { CompositeStep, failureOf, runSequential } from "./composite.js";
import type { CompositeOptions } from "./composite.js";
import { assertParallelSafe, inferParallel, inferSequential } from "./contracts.js";
import { runChild } from "./execute.js";
import type { ExecEnv } from "./execute.js";
import { StepDefinitionError } from "./step.js";
import type { Context } from "./step.js";
import { preview } from "./preview.js";

export interface StepGroupOptions extends CompositeOptions {
  /** Run children at the same time; their `provides` must not overlap. */
  parallel?: boolean;
  /** Most children running at once when parallel; default: the number of CPUs. */
  concurrency?: number;
}

/**
 * A set of steps run in sequence or, with `parallel`, concurrently up to a
 * bound. When a child fails (without continue_on_error) no new child starts;
 * the ones already running settle, every result is recorded, and the group fails.
 */
export class StepGroup extends CompositeStep {
  private readonly isParallel: boolean;
  readonly concurrency: number;
  /** The bound the user set, or null for "number of CPUs here"; a cluster array throttle uses only an explicit one. */
  readonly throttle: number | null;

  constructor(options: StepGroupOptions) {
    const parallel = options.parallel ?? false;
    super(options, parallel ? inferParallel : inferSequential);
    // After super(), which has checked that every child is a PipelineStep.
    if (parallel) assertParallelSafe(options.name, this.steps);
    this.isParallel = parallel;
    const concurrency = options.concurrency ?? availableParallelism();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new StepDefinitionError(`group ${options.name}: concurrency must be a whole number >= 1, got ${preview(concurrency)}`);
    }
    this.concurrency = concurrency;
    this.throttle = options.concurrency ?? null;
  }

  override get kind(): "group" {
    return "group";
  }

  override get parallel(): boolean {
    return this.isParallel;
  }

  override signatureData(): unknown {
    return { parallel: this.isParallel };
  }

  protected override runBody(context: Context, key: string, env: ExecEnv): Promise<CompletedState> {
    if (!this.isParallel) return runSequential(this.steps, context, key, env);
    return this.runParallel(context, key, env);
  }

  private async runParallel(context: Context, key: string, env: ExecEnv): Promise<CompletedState> {
    const children = this.steps;
    let next = 0;
    let firstFailure: { key: string; state: CompletedState } | undefined;
    const allowedFailures: string[] = [];

    const worker = async (): Promise<void> => {
      while (firstFailure === undefined && next < children.length && !env.signal?.aborted) {
        const child = children[next++];
        if (child === undefined) return;
        const childKey = `${key}.${child.name}`;
        const state = await runChild(child, context, childKey, env);
        if (state.success) continue;
        if (child.continue_on_error && state.failure !== "MISSING_REQUIREMENT") allowedFailures.push(childKey);
        else firstFailure ??= { key: childKey, state };
      }
    };
    const workers = Array.from({ length: Math.min(this.concurrency, children.length) }, worker);
    await Promise.all(workers);

    const notStarted = children.slice(next).map((c) => `${key}.${c.name}`);
    const meta: Record<string, unknown> = {};
    if (allowedFailures.length > 0) meta.failed_allowed = allowedFailures;
    if (notStarted.length > 0) meta.not_started = notStarted;
    if (firstFailure !== undefined) return failureOf(firstFailure.key, firstFailure.state, meta);
    if (notStarted.length > 0) return CompletedState.fail(`${key}: aborted`, { failure: "STEP_FAILED", meta: { ...meta, aborted: true } });
    return CompletedState.ok({ meta });
  }
}
