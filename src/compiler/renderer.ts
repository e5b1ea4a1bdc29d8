import type { CompiledPlan, PlanJob } from "../plan/plan.js";

export interface RenderContext {
  runDir: string;
  runId: string;
  pipeline: string;
  cluster: { modules: string[]; setup: string[]; sbatch_options: string[]; signal_grace_s: number };
}

/** Turns plan jobs into script text; implemented by src/render over the Handlebars templates. */
export interface Renderer {
  job(job: Omit<PlanJob, "script">, context: RenderContext): string;
  submit(plan: CompiledPlan): string;
  lib(): string;
  /** The retry controller library (scripts/retry.sh), for a plan with retries. */
  retryLib?(): string;
}
