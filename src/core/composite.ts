import { CompletedState } from "./completed-state.js";
import { systemClock } from "./clock.js";
import type { Clock } from "./clock.js";
import { assertUniqueNames } from "./contracts.js";
import type { Contract } from "./contracts.js";
import { planDryRun } from "./dry-run.js";
import { runChild, statesUnder } from "./execute.js";
import type { ExecEnv } from "./execute.js";
import { silentLogger } from "./logger.js";
import type { Logger } from "./logger.js";
import { PipelineStep, StepDefinitionError } from "./step.js";
import type { Context, RunOptions, StepOptions } from "./step.js";

export interface CompositeOptions extends StepOptions {
  steps?: readonly PipelineStep[];
  /** Logger used when `run` is not given one. */
  logger?: Logger;
  /** Clock used when `run` is not given one. */
  clock?: Clock;
}

/** What Pipeline and StepGroup share: children, an inferred contract, and running as the root. */
export abstract class CompositeStep extends PipelineStep {
  readonly steps: readonly PipelineStep[];
  private readonly inferred: Contract;
  private readonly defaultLogger: Logger | undefined;
  private readonly defaultClock: Clock | undefined;

  constructor(options: CompositeOptions, infer: (children: readonly PipelineStep[]) => Contract) {
    super(options);
    const steps = [...(options.steps ?? [])];
    for (const s of steps) {
      if (!(s instanceof PipelineStep)) {
        throw new StepDefinitionError(`${options.name}: every child must be a PipelineStep, got ${typeof s}`);
      }
    }
    assertUniqueNames(options.name, steps);
    this.steps = steps;
    this.inferred = infer(steps);
    this.defaultLogger = options.logger;
    this.defaultClock = options.clock;
  }

  override get requires(): readonly string[] {
    return this.declaredRequires ?? this.inferred.requires;
  }

  override get provides(): readonly string[] {
    return this.declaredProvides ?? this.inferred.provides;
  }

  /** Inferred needs are left to the children, so a missing key is reported by the step that needs it. */
  override get checkedRequires(): readonly string[] {
    return this.declaredRequires ?? [];
  }

  override get children(): readonly PipelineStep[] {
    return this.steps;
  }

  /** Children validated themselves; only a contract declared on the composite is checked again. */
  override validate(context: Context): string[] | Promise<string[]> {
    return this.declaredProvides === undefined ? [] : super.validate(context);
  }

  /** Runs the children; `key` is this composite's namespaced key. */
  protected abstract runBody(context: Context, key: string, env: ExecEnv): Promise<CompletedState>;

  /**
   * Runs the tree and returns one CompletedState; a step's failure is in the
   * result, never thrown. As the root, the result carries every descendant's
   * state in `step_states`; with `dryRun` nothing runs and the plan is in `meta.plan`.
   */
  override async run(context: Context, options: RunOptions = {}): Promise<CompletedState> {
    const env: ExecEnv = {
      logger: options.logger ?? this.defaultLogger ?? silentLogger,
      clock: options.clock ?? this.defaultClock ?? systemClock,
      force: (options.force ?? false) || this.forced,
      signal: options.signal,
      workDir: options.workDir,
    };
    if (options.key !== undefined) return this.runBody(context, options.key, env);
    if (options.dryRun) return planDryRun(this, context, env);
    const state = await runChild(this, context, this.name, env);
    return new CompletedState({ ...state, step_states: statesUnder(context, this.name) }, env.clock);
  }
}

/**
 * Runs children one after another. A failed child stops the rest unless it
 * has continue_on_error; a missing requirement always stops.
 */
export async function runSequential(
  children: readonly PipelineStep[],
  context: Context,
  key: string,
  env: ExecEnv,
): Promise<CompletedState> {
  const allowedFailures: string[] = [];
  for (const child of children) {
    if (env.signal?.aborted) {
      return CompletedState.fail(`${key}: aborted before '${child.name}'`, { failure: "STEP_FAILED", meta: { aborted: true } });
    }
    const childKey = `${key}.${child.name}`;
    const state = await runChild(child, context, childKey, env);
    if (state.success) continue;
    if (child.continue_on_error && state.failure !== "MISSING_REQUIREMENT") {
      allowedFailures.push(childKey);
      continue;
    }
    return failureOf(childKey, state);
  }
  return CompletedState.ok({ meta: allowedFailures.length > 0 ? { failed_allowed: allowedFailures } : {} });
}

/** The parent's failure for a failed child: same kind, the deepest failed key, its error. */
export function failureOf(childKey: string, child: CompletedState, meta: Record<string, unknown> = {}): CompletedState {
  const deepest = typeof child.meta.failed_step === "string" ? child.meta.failed_step : childKey;
  const error = typeof child.meta.failed_step === "string" ? (child.error ?? "failed") : `${childKey}: ${child.error ?? "failed"}`;
  return CompletedState.fail(error, { failure: child.failure ?? "STEP_FAILED", meta: { ...meta, failed_step: deepest } });
}
