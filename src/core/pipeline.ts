import type { CompletedState } from "./completed-state.js";
import { CompositeStep, runSequential } from "./composite.js";
import type { CompositeOptions } from "./composite.js";
import { inferSequential } from "./contracts.js";
import type { ExecEnv } from "./execute.js";
import type { Context } from "./step.js";

export interface PipelineOptions extends CompositeOptions {
  /** Rerun every step below, even idempotent ones that already succeeded. */
  force?: boolean;
}

/**
 * An ordered list of steps that is itself a step, so pipelines nest. It is
 * the sole writer of `step_states`, keyed by dot-namespaced paths such as
 * `mini_inspector_e2e.scene_prep.prepare_scene`.
 */
export class Pipeline extends CompositeStep {
  private readonly forceAll: boolean;

  constructor(options: PipelineOptions) {
    super({ version: "1.0", ...options }, inferSequential);
    this.forceAll = options.force ?? false;
  }

  override get kind(): "pipeline" {
    return "pipeline";
  }

  override get forced(): boolean {
    return this.forceAll;
  }

  protected override runBody(context: Context, key: string, env: ExecEnv): Promise<CompletedState> {
    // CompositeStep.run has already folded `forced` into env.force.
    return runSequential(this.steps, context, key, env);
  }
}
