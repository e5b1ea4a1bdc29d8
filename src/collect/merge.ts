/**
 * Rebuilds one CompletedState for a whole run from the per-step state files
 * its jobs wrote, with the same `step_states` keys the in-process core
 * records, plus failed `not_run` states for steps whose job ended without
 * writing them. Pure: no I/O.
 */
import { isFinalText } from "../slurm/states.js";
import { CompletedState } from "../core/completed-state.js";
import { failureOf } from "../core/composite.js";
import type { CompiledPlan, PlanNode } from "../plan/plan.js";
import type { StateFile } from "../plan/state-file.js";
import { stepSlots } from "./job-index.js";
import type { StepSlot, StepSlots } from "./job-index.js";
import type { StateProblem } from "./read-states.js";
import { mapSource } from "./state-source.js";
import type { StateSource } from "./state-source.js";
import { preview } from "../core/preview.js";
import { attachItemsFile, FAILED_ITEMS_INLINE, ITEMS_FILE, ItemLinesWriter } from "../core/item-lines.js";
import type { ItemLinesSummary } from "../core/item-lines.js";

/** What the scheduler (or the local executor) knows about one task of a job. */
export interface TaskFact {
  /** SLURM job state, e.g. COMPLETED, FAILED, TIMEOUT, CANCELLED, NODE_FAIL, OUT_OF_MEMORY, PENDING. */
  state: string;
  /** SLURM reason, e.g. DependencyNeverSatisfied, TimeLimit; null or "None" when there is none. */
  reason: string | null;
  /** The scheduler's job id, for messages. */
  slurmJobId?: string | null;
}

/** Facts about a plan job; `tasks` (by logical task index) override the job's own for array tasks. */
export interface JobFact extends TaskFact {
  tasks?: Pick<ReadonlyMap<number, TaskFact>, "get">;
}

export interface MergeOptions {
  /** By plan job id. Jobs without facts and without states are left out of the result. */
  jobFacts?: ReadonlyMap<string, JobFact>;
  /** Unusable state files (from readStateDir); each becomes a failed state for its step. */
  problems?: readonly StateProblem[];
  /** Timestamp for states the merger makes up (not-run steps, unusable files); default now. */
  now?: string;
  /**
   * Maps with more items than `max` keep their items in a lines file (src/core/item-lines.ts), written
   * as the merge goes to a temp file in `dir` (the directory result.json will be written to), and only
   * a summary and their failed items in step_states. Without it every item is in step_states.
   */
  items?: { dir: string; max: number };
  /**
   * Called with the states of each item of a large map (keyed by step key) before its line is written, and
   * free to add to their meta (the retries' `meta.attempts`); the result's own step_states are the caller's.
   */
  annotateItem?: (states: Record<string, CompletedState>) => void;
}


/** The first word of a SLURM state ("CANCELLED by 1001" is CANCELLED). */
export function baseSlurmState(state: string): string {
  return (state.trim().split(/\s+/)[0] ?? "").replace(/\+$/, "").toUpperCase();
}

/** Final in the one state vocabulary (src/slurm/states.ts): an unknown spelling is not. */
export function isFinalSlurmState(state: string): boolean {
  return isFinalText(state);
}

interface MergeContext {
  plan: CompiledPlan;
  source: StateSource;
  facts: ReadonlyMap<string, JobFact>;
  slots: StepSlots;
  now: string;
  out: Record<string, CompletedState>;
  rootKey: string;
  /** Where large maps' items go (see MergeOptions.items); created at the first large map. */
  items: { dir: string; max: number; writer: ItemLinesWriter | null } | null;
  /** Merging one item of a large map: maps inside it stay inline in the item's line. */
  inItem: boolean;
  /** The leaf steps of a large map's items, counted as they are merged. */
  leaves: LeafCounts | null;
  annotateItem: ((states: Record<string, CompletedState>) => void) | null;
}

type LeafCounts = ItemLinesSummary["leaf_steps"];

interface Child {
  node: PlanNode;
  key: string;
  /** Its failure does not fail the parent (continue_on_error, or an item of a map that continues on item errors). */
  allowed: boolean;
}

/** Converts a validated state file; the cluster facts go into meta. */
export function stateFromFile(file: StateFile, node?: Pick<PlanNode, "provides">): CompletedState {
  // Object.assign, not a spread: a spread copy of a JSON.parse object that then takes four more fields costs
  // ~30 times as much (Node 20). A `__proto__` key (which Object.assign would make the prototype) is spread.
  const meta: Record<string, unknown> = Object.hasOwn(file.meta, "__proto__") ? { ...file.meta } : Object.assign({}, file.meta);
  if (file.exit_code !== undefined) meta.exit_code = file.exit_code;
  if (file.slurm !== undefined) meta.slurm = file.slurm;
  if (file.host !== undefined) meta.host = file.host;
  if (file.attempt !== undefined) meta.attempt = file.attempt;
  if (file.cached !== undefined) meta.cached = file.cached;
  return new CompletedState({
    success: file.success,
    timestamp: file.timestamp,
    duration_s: file.duration_s,
    provides: file.provides.length > 0 ? file.provides : (node?.provides ?? []),
    outputs: file.outputs,
    error: file.error,
    meta,
    signature: file.signature,
    failure: file.success ? null : (file.failure ?? "STEP_FAILED"),
  });
}

/** Does a failed state stop the steps after it (the core's rule for sequences)? */
function stops(state: CompletedState, allowed: boolean): boolean {
  return !state.success && (!allowed || state.failure === "MISSING_REQUIREMENT");
}

function problemState(node: PlanNode, key: string, error: string, ctx: MergeContext): CompletedState {
  // A packed item's state is a line of its task's pack file (the error names the line).
  const file = `states/${ctx.source.fileOf?.(key) ?? `${key}.json`}`;
  return CompletedState.fail(`state file ${file} is unusable: ${error}`, {
    failure: "STEP_FAILED",
    timestamp: ctx.now,
    provides: node.provides,
    signature: node.signature,
    meta: { state_file: file, state_problem: error },
  });
}

/** The state recorded for `key` in a file (valid or not), or undefined. */
function fileState(node: PlanNode, key: string, ctx: MergeContext): CompletedState | undefined {
  const file = ctx.source.state(key);
  if (file !== undefined) {
    ctx.source.visit(key);
    if (file.key !== key) return problemState(node, key, `its key field is ${preview(file.key)}`, ctx);
    return stateFromFile(file, node);
  }
  const problem = ctx.source.problem(key);
  if (problem !== undefined) {
    const state = problemState(node, key, problem, ctx);
    ctx.source.consume(key);
    return state;
  }
  return undefined;
}

/** Whether the wrapper stopped before this step on purpose (an earlier step of the same task body failed). */
function stoppedEarlier(slot: StepSlot, ctx: MergeContext): boolean {
  for (let p = 0; p < slot.position; p++) {
    const key = slot.keys[p] as string;
    const step = slot.steps[p];
    if (ctx.source.problem(key) !== undefined || ctx.out[key]?.meta.state_problem !== undefined) return true;
    const file = ctx.source.state(key);
    if (file === undefined) continue;
    const state = stateFromFile(file);
    if (stops(state, step?.continue_on_error ?? false)) return true;
  }
  return false;
}

/**
 * A step killed by SIGTERM cannot tell a cancel from a preemption or a time
 * limit; the scheduler can. Its state takes the job's final SLURM state as
 * the reason (CANCELLED, TIMEOUT, PREEMPTED, ...).
 */
function withSchedulerReason(state: CompletedState, key: string, ctx: MergeContext): CompletedState {
  if (state.success || state.meta.reason !== "TERMINATED") return state;
  const slot = ctx.slots.get(key);
  const jobFact = slot === undefined ? undefined : ctx.facts.get(slot.job.id);
  if (slot === undefined || jobFact === undefined) return state;
  const fact = jobFact.tasks?.get(slot.task) ?? jobFact;
  if (!isFinalSlurmState(fact.state)) return state;
  const base = baseSlurmState(fact.state);
  state.meta = { ...state.meta, reason: base, slurm_state: fact.state };
  state.error = `killed by SIGTERM: the job ended ${fact.state}${base === "TIMEOUT" ? " (time limit)" : ""}`;
  return state;
}

/** A failed state for a step whose job ended (or never started) without it writing a state. */
function notRunState(node: PlanNode, key: string, ctx: MergeContext): CompletedState | undefined {
  const slot = ctx.slots.get(key);
  if (slot === undefined) return undefined;
  const jobFact = ctx.facts.get(slot.job.id);
  if (jobFact === undefined) return undefined;
  const fact = jobFact.tasks?.get(slot.task) ?? jobFact;
  if (!isFinalSlurmState(fact.state)) return undefined;
  if (stoppedEarlier(slot, ctx)) return undefined;
  const reason = fact.reason === null || fact.reason === "None" || fact.reason === "" ? null : fact.reason;
  const slurmId = fact.slurmJobId ?? jobFact.slurmJobId ?? null;
  const who = `job ${slot.job.id}${slot.job.array !== null ? ` task ${slot.task}` : ""}${slurmId ? ` (SLURM ${slurmId})` : ""}`;
  const how = `${fact.state}${reason ? ` (${reason})` : ""}`;
  const error =
    baseSlurmState(fact.state) === "COMPLETED"
      ? `${who} ended ${how} without writing this step's state`
      : `${who} ended ${how} before this step wrote its state`;
  const meta: Record<string, unknown> = { not_run: true, slurm_state: fact.state, slurm_reason: reason, job: slot.job.id };
  if (slurmId) meta.slurm_job_id = slurmId;
  if (slot.job.array !== null) meta.task = slot.task;
  if (slot.job.map !== undefined) meta.item_index = slot.index;
  return CompletedState.fail(error, { failure: "STEP_FAILED", timestamp: ctx.now, provides: node.provides, signature: node.signature, meta });
}

const concrete = (child: PlanNode, parentTemplate: string, parentKey: string): string =>
  child.key.startsWith(`${parentTemplate}.`) ? parentKey + child.key.slice(parentTemplate.length) : `${parentKey}.${child.name}`;

/** A map's item count and the node each item runs. */
function mapItems(node: PlanNode, plan: Pick<CompiledPlan, "items">): { count: number; item: PlanNode; allowed: boolean } {
  const count = node.items ?? plan.items[node.key]?.length ?? 0;
  const itemTemplate = `${node.key}.{i}`;
  const only = node.children.length === 1 ? node.children[0] : undefined;
  const item: PlanNode =
    only !== undefined && only.key === itemTemplate
      ? only
      : { key: itemTemplate, name: "{i}", kind: "pipeline", parallel: false, continue_on_error: false, signature: node.signature, provides: [], children: node.children };
  return { count, item, allowed: node.continue_on_item_error ?? item.continue_on_error };
}

/** The children of a composite with their concrete keys, one at a time; a map gives one item per index. */
function* childrenOf(node: PlanNode, key: string, ctx: MergeContext): Generator<Child> {
  if (node.kind !== "map") {
    for (const c of node.children) yield { node: c, key: concrete(c, node.key, key), allowed: c.continue_on_error };
    return;
  }
  const { count, item, allowed } = mapItems(node, ctx.plan);
  for (let i = 0; i < count; i++) yield { node: item, key: `${key}.${i}`, allowed };
}

/** Whether `target` is the key of a step of the tree (a map's item within its count): what the merge visits. */
export function treeHasKey(plan: Pick<CompiledPlan, "tree" | "items">, target: string): boolean {
  const walk = (node: PlanNode, key: string): boolean => {
    if (target === key) return true;
    if (node.kind === "step" || !target.startsWith(`${key}.`)) return false;
    if (node.kind === "map") {
      const rest = target.slice(key.length + 1);
      const dot = rest.indexOf(".");
      const segment = dot === -1 ? rest : rest.slice(0, dot);
      if (!/^(0|[1-9]\d*)$/.test(segment)) return false;
      const { count, item } = mapItems(node, plan);
      return Number(segment) < count && walk(item, `${key}.${segment}`);
    }
    return node.children.some((c) => walk(c, concrete(c, node.key, key)));
  };
  return walk(plan.tree, plan.tree.key);
}

/**
 * What a composite's state needs of its children, gathered one child at a
 * time (a map of a million items keeps a few numbers and its failures, not
 * its items' states).
 */
interface ChildTally {
  parallel: boolean;
  count: number;
  allowedFailures: string[];
  missing: string[];
  failed: { key: string; state: CompletedState } | undefined;
  /** A sequence stopped at its failed child: later children are not looked at for the outcome. */
  stopped: boolean;
  /** The first child that has a state, and whether every child with one did not run. */
  firstRan: { key: string; state: CompletedState } | undefined;
  allNotRun: boolean;
  start: number;
  end: number;
}

function newTally(node: PlanNode): ChildTally {
  const parallel = node.kind === "map" || (node.kind === "group" && node.parallel);
  return { parallel, count: 0, allowedFailures: [], missing: [], failed: undefined, stopped: false, firstRan: undefined, allNotRun: true, start: Infinity, end: -Infinity };
}

/** runSequential / StepGroup.runParallel of the core, one child at a time, in tree order. */
function addChild(t: ChildTally, c: Child, state: CompletedState | undefined): void {
  t.count++;
  if (state !== undefined) {
    t.firstRan ??= { key: c.key, state };
    if (state.meta.not_run !== true) t.allNotRun = false;
    const at = Date.parse(state.timestamp);
    if (!Number.isNaN(at)) {
      t.start = Math.min(t.start, at);
      t.end = Math.max(t.end, at + state.duration_s * 1000);
    }
  }
  if (t.stopped) return;
  if (state === undefined) {
    t.missing.push(c.key);
    return;
  }
  if (state.success) return;
  if (!stops(state, c.allowed)) t.allowedFailures.push(c.key);
  else if (t.failed === undefined) {
    t.failed = { key: c.key, state };
    if (!t.parallel) t.stopped = true;
  }
}

/** A composite's state from its children's tally. */
function computeComposite(node: PlanNode, key: string, t: ChildTally): CompletedState {
  const { parallel, allowedFailures, missing, failed } = t;
  let result: CompletedState;
  const meta: Record<string, unknown> = {};
  if (allowedFailures.length > 0) meta.failed_allowed = allowedFailures;
  if (failed !== undefined) {
    if (parallel && missing.length > 0) meta.not_started = missing;
    result = failureOf(failed.key, failed.state, parallel ? meta : {});
  } else if (missing.length > 0) {
    meta[parallel ? "not_started" : "not_finished"] = missing;
    result = CompletedState.fail(`${key}: did not finish: no result for ${missing.join(", ")}`, { failure: "STEP_FAILED", meta });
  } else {
    result = CompletedState.ok({ meta });
  }
  // Nothing below it ran (its jobs were cancelled or died first): the composite did not run either.
  const first = t.firstRan;
  if (first !== undefined && t.allNotRun) {
    const { not_run, slurm_state, slurm_reason } = first.state.meta;
    // Even when its children's failures were allowed, a composite that never ran did not succeed.
    if (result.success) result = failureOf(first.key, first.state, {});
    Object.assign(result.meta, { not_run, slurm_state, slurm_reason });
  }
  if (t.start !== Infinity) {
    result.timestamp = new Date(t.start).toISOString();
    result.duration_s = Math.max(0, (t.end - t.start) / 1000);
  } else result.duration_s = 0;
  result.signature = node.signature;
  result.provides = [...node.provides];
  return result;
}

/** Whether computeComposite would give a success, without building its state. */
function compositeSucceeds(t: ChildTally): boolean {
  return t.failed === undefined && t.missing.length === 0 && !(t.firstRan !== undefined && t.allNotRun);
}

function mergeNode(node: PlanNode, key: string, ctx: MergeContext): CompletedState | undefined {
  let state: CompletedState | undefined;
  if (node.kind === "step") {
    const fromFile = fileState(node, key, ctx);
    state = fromFile === undefined ? notRunState(node, key, ctx) : withSchedulerReason(fromFile, key, ctx);
    if (ctx.leaves !== null) countLeaf(ctx.leaves, state);
  } else {
    const tally = newTally(node);
    const lines = node.kind === "map" && ctx.items !== null && !ctx.inItem && mapItems(node, ctx.plan).count > ctx.items.max ? new MapLines(key) : null;
    for (const c of childrenOf(node, key, ctx)) addChild(tally, c, lines === null ? mergeNode(c.node, c.key, ctx) : lines.mergeItem(c, ctx));
    const own = fileState(node, key, ctx);
    const computable = tally.firstRan !== undefined || tally.count === 0;
    // The composite's own state is built only when it is the result (an item's unit line usually is).
    if (own === undefined) state = computable ? computeComposite(node, key, tally) : undefined;
    else if (computable && !compositeSucceeds(tally) && (own.success || typeof own.meta.failed_step !== "string")) {
      // The unit's own file is the truth, but a failure below it must name its deepest step like the core does.
      const computed = computeComposite(node, key, tally);
      state = own.success ? computed : new CompletedState({ ...own, error: computed.error, meta: { ...own.meta, failed_step: computed.meta.failed_step } });
      if (own.success) state.meta.unit_state_success = true;
    } else state = own;
    if (state === undefined && key === ctx.rootKey) state = computeComposite(node, key, tally);
    if (lines !== null) lines.keepSlowestStates(ctx.out);
    if (lines !== null && state !== undefined) state.meta.item_lines = lines.summary();
  }
  if (state !== undefined && key !== ctx.rootKey) ctx.out[key] = state;
  return state;
}

/**
 * One CompletedState for the root of the plan's tree; `step_states` holds
 * every descendant that ran (or was due to run and was killed or never
 * started), keyed exactly as the in-process core keys them.
 */
export function mergeStates(plan: CompiledPlan, states: ReadonlyMap<string, StateFile>, opts: Omit<MergeOptions, "items"> = {}): CompletedState {
  return mergeFromSource(plan, mapSource(states, opts.problems), opts);
}

/**
 * mergeStates from any state source (a states directory read file by file),
 * with large maps' items streamed to a lines file when `opts.items` is given
 * (the result's lines file is then known to itemsFileOf(result)). Only I/O:
 * what the source reads and the lines file.
 */
export function mergeFromSource(plan: CompiledPlan, source: StateSource, opts: MergeOptions = {}): CompletedState {
  const ctx: MergeContext = {
    plan,
    source,
    facts: opts.jobFacts ?? new Map(),
    slots: stepSlots(plan),
    now: opts.now ?? new Date().toISOString(),
    out: {},
    rootKey: plan.tree.key,
    items: opts.items === undefined ? null : { ...opts.items, writer: null },
    inItem: false,
    leaves: null,
    annotateItem: opts.annotateItem ?? null,
  };
  let root: CompletedState;
  let leftovers: { unknown: string[]; stray: StateProblem[] };
  try {
    root =
      mergeNode(plan.tree, plan.tree.key, ctx) ??
      CompletedState.fail(`${plan.tree.key}: did not run`, { failure: "STEP_FAILED", timestamp: ctx.now, signature: plan.tree.signature });
    // Problems of files that name no step of the tree are reported on the root, not lost.
    leftovers = source.leftovers((key) => treeHasKey(plan, key));
  } catch (err) {
    ctx.items?.writer?.abort();
    throw err;
  }
  const meta: Record<string, unknown> = { ...root.meta, run_id: plan.runId };
  if (leftovers.stray.length > 0) meta.state_problems = leftovers.stray;
  if (leftovers.unknown.length > 0) meta.unknown_states = leftovers.unknown;
  const result = new CompletedState({ ...root, meta, step_states: ctx.out });
  const writer = ctx.items?.writer;
  if (writer != null) attachItemsFile(result, writer.finish());
  return result;
}

/** A leaf step of a large map's item, as the report counts leaves (src/report/states.ts outcomeOf). */
function countLeaf(t: LeafCounts, state: CompletedState | undefined): void {
  if (state === undefined || state.meta.not_run === true) t.not_run++;
  else if (!state.success) t.failed++;
  else {
    const attempt = typeof state.meta.attempt === "number" && Number.isFinite(state.meta.attempt) ? String(state.meta.attempt) : "none";
    t.ok_by_attempt[attempt] = (t.ok_by_attempt[attempt] ?? 0) + 1;
  }
}

/** How many of a large map's slowest items its summary names. */
const SLOWEST_KEPT = 10;

/**
 * One large map being merged item by item: each item's states go to one
 * line of the lines file; the map keeps counts, its slowest items, and the
 * states of its first failed items (in step_states too).
 */
class MapLines {
  private counts = { items: 0, ok: 0, failed: 0, not_run: 0, cached_steps: 0 };
  private failedItems: number[] = [];
  private slowest: Array<{ index: number; duration_s: number }> = [];
  /** The states of the slowest items so far (kept in step_states at the end, beside the failed ones). */
  private slowStates = new Map<number, Record<string, CompletedState>>();
  private leaves: LeafCounts = { failed: 0, not_run: 0, ok_by_attempt: {} };

  constructor(private readonly mapKey: string) {}

  mergeItem(c: Child, ctx: MergeContext): CompletedState | undefined {
    const items = ctx.items as NonNullable<MergeContext["items"]>;
    items.writer ??= new ItemLinesWriter(items.dir);
    const outer = ctx.out;
    // A dictionary from the start: an object literal given a million distinct keys makes V8 build a hidden class for each.
    const scratch = Object.create(null) as Record<string, CompletedState>;
    ctx.out = scratch;
    ctx.inItem = true;
    ctx.leaves = this.leaves;
    let state: CompletedState | undefined;
    try {
      state = mergeNode(c.node, c.key, ctx);
    } finally {
      ctx.out = outer;
      ctx.inItem = false;
      ctx.leaves = null;
      ctx.source.release();
    }
    const keys = Object.keys(scratch);
    if (keys.length === 0) return state;
    ctx.annotateItem?.(scratch);
    const index = Number(c.key.slice(this.mapKey.length + 1));
    const own = scratch[c.key];
    const steps: Record<string, CompletedState> = {};
    let item: string | null = own !== undefined && typeof own.meta.item === "string" ? own.meta.item : null;
    let failedRan = false;
    let failedNotRun = false;
    for (const k of keys) {
      if (k === c.key) continue;
      const s = scratch[k] as CompletedState;
      steps[k.slice(c.key.length + 1)] = s;
      if (item === null && typeof s.meta.item === "string") item = s.meta.item;
      if (!s.success) {
        if (s.meta.not_run === true) failedNotRun = true;
        else failedRan = true;
      }
      if (s.meta.cached !== undefined && typeof s.meta.exit_code === "number") this.counts.cached_steps++;
    }
    items.writer.write({ map: this.mapKey, index, item, state: own ?? null, steps });
    // The outcome as the summaries count it (src/app/map-items.ts).
    const outcome = own !== undefined ? (own.success ? "ok" : own.meta.not_run === true ? "not_run" : "failed") : failedRan ? "failed" : failedNotRun ? "not_run" : "ok";
    this.counts.items++;
    this.counts[outcome]++;
    if (outcome !== "ok" && this.failedItems.length < FAILED_ITEMS_INLINE) {
      this.failedItems.push(index);
      for (const k of keys) outer[k] = scratch[k] as CompletedState;
    }
    if (own !== undefined && Number.isFinite(own.duration_s) && this.keepSlowest(index, own.duration_s)) this.slowStates.set(index, scratch);
    return state;
  }

  /** Whether the item is now one of the slowest. */
  private keepSlowest(index: number, duration_s: number): boolean {
    const list = this.slowest;
    if (list.length === SLOWEST_KEPT && duration_s <= (list.at(-1)?.duration_s ?? -Infinity)) return false;
    let at = list.length;
    while (at > 0 && (list[at - 1]?.duration_s ?? Infinity) < duration_s) at--;
    list.splice(at, 0, { index, duration_s });
    const out = list.length > SLOWEST_KEPT ? list.pop() : undefined;
    if (out !== undefined) this.slowStates.delete(out.index);
    return true;
  }

  /** Puts the slowest items' states into `out` (those not there already as failed items), in index order. */
  keepSlowestStates(out: Record<string, CompletedState>): void {
    const indices = [...this.slowStates.keys()].sort((a, b) => a - b);
    for (const index of indices) Object.assign(out, this.slowStates.get(index));
    this.slowStates.clear();
  }

  summary(): ItemLinesSummary {
    return { file: ITEMS_FILE, ...this.counts, failed_items: this.failedItems, slowest: this.slowest, leaf_steps: this.leaves };
  }
}
