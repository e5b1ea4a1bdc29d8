/**
 * The phase that lowers the pipeline tree into units, the pieces jobs are
 * made of: leaf steps (which may fuse), parallel groups and maps (one array
 * each), and blocks whose failure is tolerated (their dependents wait with
 * afterany). Also what one array task runs: a flat sequence of leaves.
 */
import { shortSignature } from "../core/signature.js";
import type { PipelineStep } from "../core/step.js";
import type { Need, PlanStep } from "../plan/plan.js";
import { mergeResources } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import type { RetryPolicy } from "../plan/retry.js";
import { retriesOf } from "../spec/annotations.js";
import { CommandStep } from "../spec/command-step.js";
import { isSequential, mapOf } from "./tree.js";
import type { MapLike } from "./tree.js";

export interface LeafUnit {
  type: "leaf";
  leaf: PlanStep;
  resources: Resources;
  /** May share a job with an equal-resource neighbour. */
  fusable: boolean;
  /** The step's continue_on_error: its dependents wait with afterany. */
  coe: boolean;
  /** Retries on the cluster (a step with retries runs in a job of its own, never fused). */
  retry?: RetryPolicy | null;
}
export interface GroupUnit {
  type: "group";
  key: string;
  step: PipelineStep;
}
export interface MapUnit {
  type: "map";
  key: string;
  step: MapLike;
  /** Retries of each item (the map's `retries`). */
  retry?: RetryPolicy | null;
}
export type Unit = LeafUnit | GroupUnit | MapUnit | { type: "block"; units: Unit[] };

/** What lowering reads: where each leaf's requirements come from and the resource defaults; problems are appended in tree order. */
export interface LeafContext {
  needs: ReadonlyMap<string, Need[]>;
  /** The cluster's defaults under the pipeline's own. */
  defaults: Resources;
  problems: string[];
}

/** A leaf step as a job runs it. */
export function planStep(step: CommandStep, key: string, needs: ReadonlyMap<string, Need[]>): PlanStep {
  return {
    key,
    name: step.name,
    signature: shortSignature(step),
    command: step.command,
    env: { ...step.env },
    requires: [...step.requires],
    provides: [...step.provides],
    outputs: [...step.outputs],
    needs: needs.get(key) ?? [],
    continue_on_error: step.continue_on_error,
    idempotent: step.idempotent,
    ...(step.batch ? { batch: true as const } : {}),
    ...(step.inputs.length > 0 ? { inputs: [...step.inputs] } : {}),
    ...(step.cache ? {} : { cache: false as const }),
  };
}

/** A batch step runs once for all the items of a map's task: anywhere else it is a problem. */
export function refuseBatch(leaf: PlanStep, where: string, problems: string[]): void {
  if (leaf.batch) problems.push(`${leaf.key}: a batch step runs one command for all the items of a map's task; ${where} is not a map (put the step inside a map, or remove batch)`);
}

/** The leaves one array task runs in sequence; `top` is the task's own unit (its continue_on_error is the task's). */
export function taskLeaves(step: PipelineStep, key: string, where: string, cx: LeafContext, top = true): Array<{ leaf: PlanStep; resources: Resources }> {
  if (step instanceof CommandStep) {
    if (retriesOf(step) !== null) {
      cx.problems.push(
        top || !where.startsWith("map ")
          ? `${key}: retries on a step inside ${where} are not supported yet (one array runs every child); put retries on a step outside the group, or on a map (per item)`
          : `${key}: retries inside ${where} go on the map itself (retries: N there retries each failed item)`,
      );
    }
    return [{ leaf: planStep(step, key, cx.needs), resources: mergeResources(cx.defaults, step.resources) }];
  }
  if (mapOf(step)) {
    cx.problems.push(`${key}: a map inside ${where} cannot run on a cluster (one array task cannot hold another array); make it a top-level step`);
    return [];
  }
  if (!top && step.continue_on_error) {
    cx.problems.push(
      `${key}: continue_on_error on a ${step.kind} inside ${where} is not supported on a cluster yet ` +
        `(one array task runs its steps as a flat sequence); put continue_on_error on its steps instead`,
    );
    return [];
  }
  return step.children.flatMap((c) => taskLeaves(c, `${key}.${c.name}`, where, cx, false));
}

/**
 * The units of `step` in execution order. `fuseAllowed` is false below a
 * composite that opted out of fusion (`canFuse`), and for the whole tree when
 * fusion is off.
 */
export function unitsOf(step: PipelineStep, key: string, fuseAllowed: boolean, cx: LeafContext & { canFuse: (s: PipelineStep) => boolean }): Unit[] {
  if (step instanceof CommandStep) {
    const leaf = planStep(step, key, cx.needs);
    refuseBatch(leaf, "its place in the pipeline", cx.problems);
    const retry = retriesOf(step);
    return [
      {
        type: "leaf",
        leaf,
        resources: mergeResources(cx.defaults, step.resources),
        fusable: fuseAllowed && step.fuse && !step.continue_on_error && retry === null,
        coe: step.continue_on_error,
        retry,
      },
    ];
  }
  const map = mapOf(step);
  // An array whose own failure is allowed hands its dependents on with afterany, like a tolerated sequence.
  const tolerated = (unit: Unit): Unit[] => (step.continue_on_error ? [{ type: "block", units: [unit] }] : [unit]);
  if (map) return tolerated({ type: "map", key, step: map, retry: retriesOf(step) });
  if (!isSequential(step)) return tolerated({ type: "group", key, step });
  const inner = fuseAllowed && cx.canFuse(step);
  const units = step.children.flatMap((c) => unitsOf(c, `${key}.${c.name}`, inner, cx));
  return step.continue_on_error ? [{ type: "block", units }] : units;
}
