import { CompletedState } from "./completed-state.js";
import { asCompletedState } from "./completed-state.js";
import { canSkip } from "./execute.js";
import type { ExecEnv } from "./execute.js";
import type { Context, PipelineStep } from "./step.js";

/** One line of a dry-run plan, in execution order (parents before their children). */
export interface PlannedStep {
  key: string;
  kind: "step" | "pipeline" | "group" | "map";
  parallel: boolean;
  depth: number;
  action: "run" | "skip";
  requires: string[];
  provides: string[];
  /** Requirements that neither the context nor an upstream step provides. */
  missing: string[];
}

/**
 * Resolves the tree in execution order and checks every requirement against
 * the context and what upstream steps provide. Parallel siblings see only
 * what existed before the group started.
 */
export function planTree(root: PipelineStep, context: Context, force = false): PlannedStep[] {
  // Read only: a dry run leaves the context as it found it.
  const states: Record<string, unknown> = context.step_states ?? {};
  const available = new Set(Object.keys(context).filter((k) => k !== "step_states" && context[k] !== undefined));
  const plan: PlannedStep[] = [];

  const walk = (step: PipelineStep, key: string, depth: number, have: Set<string>, forced: boolean): void => {
    const previous = states[key] === undefined ? undefined : (asCompletedState(states[key]) ?? undefined);
    const skip = canSkip(step, previous, forced, (k) => have.has(k));
    plan.push({
      key,
      kind: step.kind,
      parallel: step.parallel,
      depth,
      action: skip ? "skip" : "run",
      requires: [...step.requires],
      provides: [...step.provides],
      // A run skips before it checks requirements, and a composite leaves inferred needs to its children.
      missing: skip ? [] : step.checkedRequires.filter((k) => !have.has(k)),
    });
    if (!skip) {
      const childForced = forced || step.forced;
      // A map runs its children in sequence once per item, under `<map>.<i>`, with the item bound to its `as` key.
      const itemKey = step.kind === "map" ? (step as PipelineStep & { as?: unknown }).as : undefined;
      const itemHave = typeof itemKey === "string" ? new Set([...have, itemKey]) : undefined;
      for (const child of step.children) {
        const childKey = itemHave ? `${key}.{i}.${child.name}` : `${key}.${child.name}`;
        walk(child, childKey, depth + 1, itemHave ?? (step.parallel ? new Set(have) : have), childForced);
      }
    }
    for (const k of step.provides) have.add(k);
  };
  walk(root, root.name, 0, available, force);
  return plan;
}

/** Logs and returns the plan without calling any step's `run`. */
export function planDryRun(root: PipelineStep, context: Context, env: ExecEnv): CompletedState {
  const plan = planTree(root, context, env.force);
  for (const entry of plan) {
    env.logger.info({ step: entry.key, kind: entry.kind, action: entry.action, missing: entry.missing }, "dry-run plan");
  }
  const leaves = plan.filter((e) => e.missing.length > 0 && e.kind === "step");
  const offenders = leaves.length > 0 ? leaves : plan.filter((e) => e.missing.length > 0);
  const meta = { dry_run: true, plan };
  if (offenders.length === 0) {
    env.logger.info({ steps: plan.length }, "dry run: nothing executed");
    return new CompletedState({ success: true, meta }, env.clock);
  }
  const error = offenders.map((e) => `${e.key} is missing ${e.missing.map((k) => `'${k}'`).join(", ")}`).join("; ");
  env.logger.info({ error }, "dry run: missing requirements");
  return new CompletedState({ success: false, failure: "MISSING_REQUIREMENT", error, meta }, env.clock);
}
