import type { PipelineStep } from "./step.js";
import { StepDefinitionError } from "./step.js";

export interface Contract {
  requires: string[];
  provides: string[];
}

/** Children run in order: a need is external unless an earlier child provides it. */
export function inferSequential(children: readonly PipelineStep[]): Contract {
  const provided = new Set<string>();
  const requires = new Set<string>();
  for (const child of children) {
    for (const k of child.requires) if (!provided.has(k)) requires.add(k);
    for (const k of child.provides) provided.add(k);
  }
  return { requires: [...requires], provides: [...provided] };
}

/** Children run at once: no child can satisfy a sibling, so every need is external. */
export function inferParallel(children: readonly PipelineStep[]): Contract {
  const requires = new Set<string>();
  const provides = new Set<string>();
  for (const child of children) {
    for (const k of child.requires) requires.add(k);
    for (const k of child.provides) provides.add(k);
  }
  return { requires: [...requires], provides: [...provides] };
}

export function assertUniqueNames(owner: string, children: readonly PipelineStep[]): void {
  const seen = new Set<string>();
  for (const child of children) {
    if (seen.has(child.name)) {
      throw new StepDefinitionError(`${owner}: two children are named '${child.name}'; names must be unique among siblings`);
    }
    seen.add(child.name);
  }
}

/** Parallel siblings must not write the same key, nor wait for each other's keys. */
export function assertParallelSafe(owner: string, children: readonly PipelineStep[]): void {
  const providedBy = new Map<string, string>();
  for (const child of children) {
    for (const k of child.provides) {
      const other = providedBy.get(k);
      if (other !== undefined) {
        throw new StepDefinitionError(
          `parallel group ${owner}: children '${other}' and '${child.name}' both provide '${k}'; ` +
            `parallel children must provide disjoint keys`,
        );
      }
      providedBy.set(k, child.name);
    }
  }
  for (const child of children) {
    for (const k of child.requires) {
      const sibling = providedBy.get(k);
      if (sibling !== undefined && sibling !== child.name) {
        throw new StepDefinitionError(
          `parallel group ${owner}: child '${child.name}' requires '${k}', which its sibling '${sibling}' provides; ` +
            `siblings run at the same time, so put them in sequence`,
        );
      }
    }
  }
}
