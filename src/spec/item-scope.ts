import type { Context } from "../core/step.js";

/**
 * The map item a context is scoped to, kept under a symbol so it is not a
 * context key: plans, compilers and `step_states` never see it. A CommandStep
 * run in-process reads it to export `HPCPIPE_ITEM` and `HPCPIPE_TASK` as the
 * cluster job wrapper does for a map's array task.
 */
export const ITEM_SCOPE: unique symbol = Symbol.for("hpcpipe.mapItem");

export interface ItemScope {
  index: number;
  item: string;
}

export function itemScopeOf(context: Context): ItemScope | undefined {
  const scope = (context as { [ITEM_SCOPE]?: unknown })[ITEM_SCOPE];
  if (typeof scope !== "object" || scope === null) return undefined;
  const { index, item } = scope as Partial<ItemScope>;
  return typeof index === "number" && typeof item === "string" ? { index, item } : undefined;
}

export function withItemScope(context: Context, scope: ItemScope): Context {
  Object.defineProperty(context, ITEM_SCOPE, { value: scope, enumerable: false, configurable: true, writable: false });
  return context;
}
