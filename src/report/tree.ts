/**
 * The run's tree for the report: the compiled plan walked with the merged
 * result's states (maps expanded to their items, long maps trimmed to the
 * failed items first), or, without a plan, a tree guessed from the result's
 * step keys. The walk also yields every leaf in tree order and which nodes
 * may fail, for the other parts of the report.
 */
import type { CompletedStateJson, FailureKind } from "../core/completed-state.js";
import type { PlanNode } from "../plan/plan.js";
import { itemLinesOf } from "../core/item-lines.js";
import type { ItemLinesSummary } from "../core/item-lines.js";
import { attemptOf, emptyCounts, isNotRun, outcomeOf, reasonOf, slurmIdOf, str } from "./states.js";
import type { Outcome, State } from "./states.js";

/** Items of one map shown in the tree (failed ones first); the rest are counted. */
export const MAX_MAP_ITEMS_SHOWN = 100;

/** The parts of a compiled plan the report uses (a `CompiledPlan` is one). */
export interface ReportPlan {
  tree: PlanNode;
  items: Record<string, string[]>;
}

/** One node of the report's tree: a pipeline, group, map, map item or step, and how it ended. */
export interface TreeNode {
  key: string;
  name: string;
  kind: "pipeline" | "group" | "map" | "item" | "step" | "composite";
  outcome: Outcome;
  /** Its failure does not fail its parent (continue_on_error, continue_on_item_error). */
  allowed: boolean;
  /** A map item's value. */
  item: string | null;
  duration_s: number | null;
  failure: FailureKind | null;
  error: string | null;
  host: string | null;
  /** `24610_1` for an array task, `24609` for a plain job. */
  slurmId: string | null;
  /** The scheduler's state and reason for a step that did not run (`CANCELLED (DependencyNeverSatisfied)`). */
  reason: string | null;
  /** Attempt a skipped step's result comes from. */
  fromAttempt: number | null;
  children: TreeNode[];
  /** Items of a map left out of the tree, by outcome. */
  omitted: { count: number; byOutcome: Record<Outcome, number> } | null;
}

/** A run's tree and what the walk learned on the way. */
export interface WalkedTree {
  tree: TreeNode;
  rootKey: string;
  states: Record<string, State>;
  /** Leaf keys in tree order (every leaf, shown or not). */
  leaves: string[];
  /** Whether each node's failure is allowed, shown or not. */
  allowed: ReadonlyMap<string, boolean>;
  /** Leaves of large maps' shown items: counted in `largeCounts` with the rest of their map, not one by one. */
  sampled: ReadonlySet<string>;
  /** Leaf steps of large maps (items in the result's lines file), by outcome. */
  largeCounts: Record<Outcome, number>;
}

/** Walks the plan (or, without one, the result's keys); `fallbackRoot` names the root when neither says. */
export function walkTree(plan: ReportPlan | null, result: CompletedStateJson, attempt: number, fallbackRoot = "pipeline"): WalkedTree {
  const w = walkState(plan, result, attempt, fallbackRoot);
  const tree = plan !== null ? walkPlan(plan.tree, plan.tree.key, false, w) : treeFromKeys(w);
  return { tree, rootKey: w.rootKey, states: w.states, leaves: w.leaves, allowed: w.allowed, sampled: w.sampled, largeCounts: w.largeCounts };
}

interface Walk {
  states: Record<string, State>;
  root: State;
  rootKey: string;
  attempt: number;
  items: Record<string, string[]>;
  /** Leaf keys in tree order (every leaf, shown or not). */
  leaves: string[];
  /** Whether each node's failure is allowed, shown or not. */
  allowed: Map<string, boolean>;
  sampled: Set<string>;
  largeCounts: Record<Outcome, number>;
}

function treeNode(key: string, name: string, kind: TreeNode["kind"], state: State | undefined, allowed: boolean, attempt: number): TreeNode {
  const outcome = outcomeOf(state, attempt);
  return {
    key,
    name,
    kind,
    outcome,
    allowed: allowed && outcome === "failed",
    item: str(state?.meta.item),
    duration_s: state === undefined || isNotRun(state) ? null : state.duration_s,
    failure: state?.failure ?? null,
    error: state?.error ?? (state === undefined ? "no result: it was not started" : null),
    host: str(state?.meta.host),
    slurmId: slurmIdOf(state),
    reason: outcome === "not_run" ? reasonOf(state) : null,
    fromAttempt: outcome === "skipped" ? attemptOf(state) : null,
    children: [],
    omitted: null,
  };
}

/** Keeps at most MAX_MAP_ITEMS_SHOWN items: failed ones first, then the others in order; counts the rest. */
function trimItems(node: TreeNode): void {
  if (node.children.length <= MAX_MAP_ITEMS_SHOWN) return;
  const rank = (n: TreeNode): number => (n.outcome === "failed" ? 0 : n.outcome === "not_run" ? 1 : 2);
  const chosen = new Set([...node.children].sort((a, b) => rank(a) - rank(b)).slice(0, MAX_MAP_ITEMS_SHOWN));
  const byOutcome = emptyCounts();
  let count = 0;
  for (const c of node.children) {
    if (chosen.has(c)) continue;
    byOutcome[c.outcome] += 1;
    count += 1;
  }
  node.children = node.children.filter((c) => chosen.has(c));
  node.omitted = { count, byOutcome };
}

/** The concrete key of a plan child under a concrete parent key (a map's `{i}` replaced), as the merger computes it. */
function concreteChildKey(child: PlanNode, parentTemplate: string, parentKey: string): string {
  return child.key.startsWith(`${parentTemplate}.`) ? parentKey + child.key.slice(parentTemplate.length) : `${parentKey}.${child.name}`;
}

function walkPlan(node: PlanNode, key: string, allowed: boolean, w: Walk, itemName?: string): TreeNode {
  const state = key === w.rootKey ? w.root : w.states[key];
  const kind: TreeNode["kind"] = itemName !== undefined ? "item" : node.kind;
  const out = treeNode(key, itemName ?? node.name, kind, state, allowed, w.attempt);
  w.allowed.set(key, out.allowed);
  if (node.kind === "step") {
    w.leaves.push(key);
    return out;
  }
  if (node.kind === "map" && itemName === undefined) {
    const values = w.items[node.key] ?? [];
    const count = node.items ?? values.length;
    const template = `${node.key}.{i}`;
    const only = node.children.length === 1 ? node.children[0] : undefined;
    const itemNode: PlanNode =
      only !== undefined && only.key === template
        ? only
        : { ...node, key: template, name: "{i}", kind: "pipeline", children: node.children };
    const itemAllowed = node.continue_on_item_error ?? itemNode.continue_on_error;
    const lines = itemLinesOf(state);
    if (lines !== null) return walkLargeMap(out, lines, key, itemNode, itemAllowed, values, w);
    for (let i = 0; i < count; i++) {
      const child = walkPlan(itemNode, `${key}.${i}`, itemAllowed, w, String(i));
      if (child.item === null && values[i] !== undefined) child.item = values[i] ?? null;
      out.children.push(child);
    }
    trimItems(out);
    return out;
  }
  for (const child of node.children) {
    out.children.push(walkPlan(child, concreteChildKey(child, node.key, key), child.continue_on_error, w));
  }
  return out;
}

/**
 * A map whose items are in the result's lines file: only the items kept in
 * result.json are walked, its failed items first, then its slowest (at most
 * MAX_MAP_ITEMS_SHOWN); the others are counted from the map's summary,
 * leaves included.
 */
function walkLargeMap(out: TreeNode, lines: ItemLinesSummary, key: string, itemNode: PlanNode, allowed: boolean, values: readonly string[], w: Walk): TreeNode {
  const shown = emptyCounts();
  const failed = new Set(lines.failed_items);
  const slow = lines.slowest.map((s) => s.index).filter((i) => !failed.has(i));
  for (const i of [...lines.failed_items, ...slow].slice(0, MAX_MAP_ITEMS_SHOWN)) {
    const from = w.leaves.length;
    const child = walkPlan(itemNode, `${key}.${i}`, allowed, w, String(i));
    if (child.item === null && values[i] !== undefined) child.item = values[i] ?? null;
    for (const leaf of w.leaves.slice(from)) w.sampled.add(leaf);
    shown[child.outcome] += 1;
    out.children.push(child);
  }
  const byOutcome = emptyCounts();
  byOutcome.ok = lines.ok - shown.ok - shown.skipped;
  byOutcome.failed = lines.failed - shown.failed;
  byOutcome.not_run = lines.not_run - shown.not_run;
  for (const k of Object.keys(byOutcome) as Outcome[]) byOutcome[k] = Math.max(0, byOutcome[k]);
  out.omitted = { count: Math.max(0, lines.items - out.children.length), byOutcome };
  const leaves = lines.leaf_steps;
  w.largeCounts.failed += leaves.failed;
  w.largeCounts.not_run += leaves.not_run;
  for (const [attempt, n] of Object.entries(leaves.ok_by_attempt)) {
    const from = Number(attempt);
    w.largeCounts[attempt !== "none" && from < w.attempt ? "skipped" : "ok"] += n;
  }
  return out;
}

/** A tree from the result's keys alone (a run directory without plan.json): kinds are guessed from the key shapes. */
function treeFromKeys(w: Walk): TreeNode {
  interface Trie {
    key: string;
    name: string;
    children: Map<string, Trie>;
  }
  const root: Trie = { key: w.rootKey, name: w.rootKey, children: new Map() };
  for (const key of Object.keys(w.states)) {
    if (!key.startsWith(`${w.rootKey}.`)) continue;
    let at = root;
    for (const segment of key.slice(w.rootKey.length + 1).split(".")) {
      let next = at.children.get(segment);
      if (next === undefined) {
        next = { key: `${at.key}.${segment}`, name: segment, children: new Map() };
        at.children.set(segment, next);
      }
      at = next;
    }
  }
  const isIndex = (s: string): boolean => /^\d+$/.test(s);
  const build = (t: Trie, parentIsMap: boolean): TreeNode => {
    const children = [...t.children.values()];
    const isMap = children.length > 0 && children.every((c) => isIndex(c.name));
    if (isMap) children.sort((a, b) => Number(a.name) - Number(b.name));
    const kind: TreeNode["kind"] = parentIsMap ? "item" : children.length === 0 ? "step" : isMap ? "map" : "composite";
    const state = t.key === w.rootKey ? w.root : w.states[t.key];
    const parentKey = t.key.slice(0, t.key.lastIndexOf("."));
    const parent = parentKey === w.rootKey ? w.root : w.states[parentKey];
    const listed = parent?.meta.failed_allowed;
    const node = treeNode(t.key, t.name, kind, state, Array.isArray(listed) && listed.includes(t.key), w.attempt);
    w.allowed.set(t.key, node.allowed);
    if (kind === "step") w.leaves.push(t.key);
    node.children = children.map((c) => build(c, isMap));
    if (isMap) trimItems(node);
    return node;
  };
  const tree = build(root, false);
  tree.kind = "pipeline";
  return tree;
}

function rootKeyOf(plan: ReportPlan | null, result: CompletedStateJson, fallback: string): string {
  if (plan !== null) return plan.tree.key;
  const first = Object.keys(result.step_states ?? {})[0];
  return first !== undefined ? (first.split(".")[0] ?? fallback) : fallback;
}

function walkState(plan: ReportPlan | null, result: CompletedStateJson, attempt: number, fallbackRoot: string): Walk {
  return {
    states: result.step_states ?? {},
    root: result,
    rootKey: rootKeyOf(plan, result, fallbackRoot),
    attempt,
    items: plan?.items ?? {},
    leaves: [],
    allowed: new Map(),
    sampled: new Set(),
    largeCounts: emptyCounts(),
  };
}
