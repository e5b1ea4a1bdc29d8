import { RUN_ID_PATTERN } from "../plan/run-id.js";
import type { PipelineStep } from "../core/step.js";
import { mergeResources } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import type { CompiledPlan } from "../plan/plan.js";
import { fuseOptOut } from "../spec/annotations.js";
import { assemblePlan, renderContext, renderJobs, runLayout } from "./assemble.js";
import { buildDrafts } from "./drafts.js";
import { CompileError } from "./errors.js";
import { fuseUnits } from "./fusion.js";
import { contextStrings, refuseInProcessSteps } from "./input-checks.js";
import { resolveNeeds } from "./needs.js";
import { pruneDone } from "./prune.js";
import { linkControllers } from "./retries.js";
import type { Renderer } from "./renderer.js";
import type { CompileTarget } from "./target.js";
import { timeLimitProblems, withSlurmTimes } from "./time-limits.js";
import { unitsOf } from "./units.js";
import type { LeafContext } from "./units.js";
import { preview } from "../core/preview.js";

export { RUN_ID_PATTERN } from "../plan/run-id.js";
export type { RenderContext, Renderer } from "./renderer.js";

export interface CompileInput {
  root: PipelineStep;
  context: Record<string, string | number | boolean>;
  runId: string;
  target: CompileTarget;
  /** The pipeline's own resource defaults (over the cluster's). */
  defaults?: Resources;
  /** Fuse consecutive sequential steps with equal resources into one job (default true). */
  fuse?: boolean;
  /** False for a composite that opted out of fusion (the spec's `fuse: false`). */
  canFuse?: (step: PipelineStep) => boolean;
  renderer: Renderer;
  /**
   * Concrete keys of steps that already succeeded with their current
   * signature (a resumed run): jobs and array tasks that would only rerun
   * them are left out, and dependencies on left-out jobs are dropped.
   */
  done?: ReadonlySet<string>;
}

/** Stops the compile with every problem found so far, in the order found. */
function refuseIfProblems(problems: string[]): void {
  if (problems.length > 0) throw new CompileError(problems.join("\n"), problems);
}

/**
 * Compiles a pipeline tree into a plan of SLURM jobs: sequential steps chained
 * with afterok (afterany after continue_on_error), each parallel group one
 * array job, each map an array over its items, arrays chunked to the cluster's
 * MaxArraySize, consecutive equal-resource steps fused. Deterministic.
 *
 * Phases, each in its own module: check the input (input-checks), resolve
 * where each requirement comes from (needs), lower the tree to units (units),
 * fuse (fusion), build job drafts with arrays packed and chunked (drafts),
 * write and check time limits (time-limits), leave out what a resumed run
 * has done (prune), render the scripts and assemble the plan (assemble).
 */
export function compile(input: CompileInput): CompiledPlan {
  const { root, target } = input;
  if (!RUN_ID_PATTERN.test(input.runId)) throw new CompileError(`invalid run id ${preview(input.runId)}`);
  const problems: string[] = [];
  const context = contextStrings(input.context, problems);
  refuseInProcessSteps(root, problems);
  refuseIfProblems(problems);

  const needs = resolveNeeds(root, new Set(Object.keys(context)), problems);
  refuseIfProblems(problems);

  const lowering: LeafContext = { needs, defaults: mergeResources(target.defaults, input.defaults), problems };
  const canFuse = input.canFuse ?? ((s: PipelineStep) => !fuseOptOut(s));
  const units = unitsOf(root, root.name, input.fuse ?? true, { ...lowering, canFuse });
  const built = buildDrafts(fuseUnits(units), target, lowering);
  const timed = withSlurmTimes(built.jobs);
  for (const problem of timeLimitProblems(timed, target)) problems.push(problem);
  refuseIfProblems(problems);

  const drafts = input.done ? linkControllers(pruneDone(timed, input.done, built.items, target.maxArraySize)) : timed;
  const layout = runLayout(target, root.name, input.runId);
  const jobs = renderJobs(drafts, input.renderer, renderContext(target, layout, root.name, input.runId));
  return assemblePlan({ root, runId: input.runId, target, layout, jobs, context, items: built.items, itemHashes: built.itemHashes, renderer: input.renderer });
}
