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
import { buildStepIndex } from "./job-index.js";
import type { StepSlot } from "./job-index.js";
import { keyOfStateFile } from "./read-states.js";
import type { StateProblem } from "./read-states.js";
import { preview } from "../core/preview.js";

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
  states: ReadonlyMap<string, StateFile>;
  problems: Map<string, string>;
  facts: ReadonlyMap<string, JobFact>;
  slots: Map<string, StepSlot>;
  now: string;
  out: Record<string, CompletedState>;
  visited: Set<string>;
  rootKey: string;
}

interface Child {
  node: PlanNode;
  key: string;
  /** Its failure does not fail the parent (continue_on_error, or an item of a map that continues on item errors). */
  allowed: boolean;
}

/** Converts a validated state file; the cluster facts go into meta. */
export function stateFromFile(file: StateFile, node?: Pick<PlanNode, "provides">): CompletedState {
  const meta: Record<string, unknown> = { ...file.meta };
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
  return CompletedState.fail(`state file states/${key}.json is unusable: ${error}`, {
    failure: "STEP_FAILED",
    timestamp: ctx.now,
    provides: node.provides,
    signature: node.signature,
    meta: { state_file: `states/${key}.json`, state_problem: error },
  });
}

/** The state recorded for `key` in a file (valid or not), or undefined. */
function fileState(node: PlanNode, key: string, ctx: MergeContext): CompletedState | undefined {
  const file = ctx.states.get(key);
  if (file !== undefined) {
    ctx.visited.add(key);
    if (file.key !== key) return problemState(node, key, `its key field is ${preview(file.key)}`, ctx);
    return stateFromFile(file, node);
  }
  const problem = ctx.problems.get(key);
  if (problem !== undefined) {
    ctx.problems.delete(key);
    return problemState(node, key, problem, ctx);
  }
  return undefined;
}

/** Whether the wrapper stopped before this step on purpose (an earlier step of the same task body failed). */
function stoppedEarlier(slot: StepSlot, ctx: MergeContext): boolean {
  for (let p = 0; p < slot.position; p++) {
    const key = slot.keys[p] as string;
    const step = slot.steps[p];
    if (ctx.problems.has(key) || ctx.out[key]?.meta.state_problem !== undefined) return true;
    const file = ctx.states.get(key);
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

/** The children of a composite with their concrete keys; a map expands to one item per index. */
function childrenOf(node: PlanNode, key: string, ctx: MergeContext): Child[] {
  const concrete = (child: PlanNode, parentTemplate: string, parentKey: string): string =>
    child.key.startsWith(`${parentTemplate}.`) ? parentKey + child.key.slice(parentTemplate.length) : `${parentKey}.${child.name}`;
  if (node.kind !== "map") return node.children.map((c) => ({ node: c, key: concrete(c, node.key, key), allowed: c.continue_on_error }));

  const count = node.items ?? ctx.plan.items[node.key]?.length ?? 0;
  const itemTemplate = `${node.key}.{i}`;
  const only = node.children.length === 1 ? node.children[0] : undefined;
  const item: PlanNode =
    only !== undefined && only.key === itemTemplate
      ? only
      : { key: itemTemplate, name: "{i}", kind: "pipeline", parallel: false, continue_on_error: false, signature: node.signature, provides: [], children: node.children };
  const allowed = node.continue_on_item_error ?? item.continue_on_error;
  return Array.from({ length: count }, (_, i) => ({ node: item, key: `${key}.${i}`, allowed }));
}

function span(states: CompletedState[]): { timestamp: string | undefined; duration_s: number } {
  let start = Infinity;
  let end = -Infinity;
  for (const s of states) {
    const t = Date.parse(s.timestamp);
    if (Number.isNaN(t)) continue;
    start = Math.min(start, t);
    end = Math.max(end, t + s.duration_s * 1000);
  }
  if (start === Infinity) return { timestamp: undefined, duration_s: 0 };
  return { timestamp: new Date(start).toISOString(), duration_s: Math.max(0, (end - start) / 1000) };
}

/** A composite's state from its children: runSequential / StepGroup.runParallel of the core, in tree order. */
function computeComposite(node: PlanNode, key: string, children: Array<Child & { state: CompletedState | undefined }>): CompletedState {
  const parallel = node.kind === "map" || (node.kind === "group" && node.parallel);
  const allowedFailures: string[] = [];
  const missing: string[] = [];
  let failed: { key: string; state: CompletedState } | undefined;
  for (const c of children) {
    if (c.state === undefined) {
      missing.push(c.key);
      continue;
    }
    if (c.state.success) continue;
    if (!stops(c.state, c.allowed)) allowedFailures.push(c.key);
    else if (failed === undefined) {
      failed = { key: c.key, state: c.state };
      if (!parallel) break;
    }
  }
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
  const ran = children.flatMap((c) => (c.state === undefined ? [] : [c.state]));
  // Nothing below it ran (its jobs were cancelled or died first): the composite did not run either.
  const firstNotRun = ran[0];
  if (firstNotRun !== undefined && ran.every((s) => s.meta.not_run === true)) {
    const { not_run, slurm_state, slurm_reason } = firstNotRun.meta;
    // Even when its children's failures were allowed, a composite that never ran did not succeed.
    if (result.success) result = failureOf(children.find((c) => c.state === firstNotRun)?.key ?? key, firstNotRun, {});
    Object.assign(result.meta, { not_run, slurm_state, slurm_reason });
  }
  const { timestamp, duration_s } = span(ran);
  if (timestamp !== undefined) result.timestamp = timestamp;
  result.duration_s = duration_s;
  result.signature = node.signature;
  result.provides = [...node.provides];
  return result;
}

function mergeNode(node: PlanNode, key: string, ctx: MergeContext): CompletedState | undefined {
  let state: CompletedState | undefined;
  if (node.kind === "step") {
    const fromFile = fileState(node, key, ctx);
    state = fromFile === undefined ? notRunState(node, key, ctx) : withSchedulerReason(fromFile, key, ctx);
  } else {
    const children = childrenOf(node, key, ctx).map((c) => ({ ...c, state: mergeNode(c.node, c.key, ctx) }));
    const own = fileState(node, key, ctx);
    const anyRan = children.some((c) => c.state !== undefined);
    const computed = anyRan || children.length === 0 ? computeComposite(node, key, children) : undefined;
    if (own === undefined) state = computed;
    else if (computed !== undefined && !computed.success && (own.success || typeof own.meta.failed_step !== "string")) {
      // The unit's own file is the truth, but a failure below it must name its deepest step like the core does.
      state = own.success ? computed : new CompletedState({ ...own, error: computed.error, meta: { ...own.meta, failed_step: computed.meta.failed_step } });
      if (own.success) state.meta.unit_state_success = true;
    } else state = own;
    if (state === undefined && key === ctx.rootKey) state = computeComposite(node, key, children);
  }
  if (state !== undefined && key !== ctx.rootKey) ctx.out[key] = state;
  return state;
}

/**
 * One CompletedState for the root of the plan's tree; `step_states` holds
 * every descendant that ran (or was due to run and was killed or never
 * started), keyed exactly as the in-process core keys them.
 */
export function mergeStates(plan: CompiledPlan, states: ReadonlyMap<string, StateFile>, opts: MergeOptions = {}): CompletedState {
  const problems = new Map<string, string>();
  const strayProblems: StateProblem[] = [];
  for (const p of opts.problems ?? []) {
    const key = keyOfStateFile(p.file.slice(p.file.lastIndexOf("/") + 1));
    if (key !== null && !problems.has(key)) problems.set(key, p.error);
    else strayProblems.push(p);
  }
  const ctx: MergeContext = {
    plan,
    states,
    problems,
    facts: opts.jobFacts ?? new Map(),
    slots: buildStepIndex(plan),
    now: opts.now ?? new Date().toISOString(),
    out: {},
    visited: new Set(),
    rootKey: plan.tree.key,
  };
  const root =
    mergeNode(plan.tree, plan.tree.key, ctx) ??
    CompletedState.fail(`${plan.tree.key}: did not run`, { failure: "STEP_FAILED", timestamp: ctx.now, signature: plan.tree.signature });

  // Problems of files that name no step of the tree are reported on the root, not lost.
  for (const [key, error] of ctx.problems) strayProblems.push({ file: `${key}.json`, error });
  const unknown = [...states.keys()].filter((k) => !ctx.visited.has(k));
  const meta: Record<string, unknown> = { ...root.meta, run_id: plan.runId };
  if (strayProblems.length > 0) meta.state_problems = strayProblems;
  if (unknown.length > 0) meta.unknown_states = unknown;
  return new CompletedState({ ...root, meta, step_states: ctx.out });
}
