import type { PipelineStep } from "../core/step.js";
import type { Need } from "../plan/plan.js";
import { CommandStep } from "../spec/command-step.js";
import { commandStepProblems } from "./command-checks.js";
import { mapOf } from "./tree.js";

/**
 * Walks the tree in execution order and records, for every leaf, where each
 * required key comes from: the latest upstream step that provides it, else the
 * context (or the map item). A key from neither is a compile error.
 */
export function resolveNeeds(root: PipelineStep, contextKeys: Set<string>, problems: string[]): Map<string, Need[]> {
  const needs = new Map<string, Need[]>();
  const walk = (step: PipelineStep, key: string, providers: Map<string, string>, scoped: Set<string>): void => {
    if (step instanceof CommandStep) {
      for (const p of commandStepProblems(step, key, providers)) problems.push(p);
      const list: Need[] = [];
      for (const k of step.requires) {
        const from = providers.get(k);
        if (from !== undefined) list.push({ key: k, from });
        else if (scoped.has(k) || contextKeys.has(k)) list.push({ key: k, from: "context" });
        else problems.push(`step ${key} requires '${k}', which neither the context nor an upstream step provides`);
      }
      needs.set(key, list);
      for (const k of step.provides) providers.set(k, key);
      return;
    }
    const map = mapOf(step);
    if (map) {
      const inner = new Map(providers);
      const innerScoped = new Set([...scoped, map.as]);
      inner.delete(map.as);
      for (const c of step.children) walk(c, `${key}.{i}.${c.name}`, inner, innerScoped);
      return;
    }
    if (step.parallel) {
      const before = new Map(providers);
      for (const c of step.children) {
        const mine = new Map(before);
        walk(c, `${key}.${c.name}`, mine, scoped);
        for (const [k, v] of mine) if (before.get(k) !== v) providers.set(k, v);
      }
      return;
    }
    for (const c of step.children) walk(c, `${key}.${c.name}`, providers, scoped);
  };
  walk(root, root.name, new Map(), new Set());
  return needs;
}
