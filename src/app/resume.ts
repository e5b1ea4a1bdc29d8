/**
 * Resubmitting a run: only steps whose remote state is not a success of the
 * same definition run again, in the same remote run directory, so the steps
 * that already succeeded keep their states and published values.
 */
import type { CompiledPlan } from "../plan/plan.js";
import type { StateFile } from "../plan/state-file.js";
import type { StateSource } from "../collect/state-source.js";
import { canonicalJson } from "../core/signature.js";
import type { JobStatus } from "../runs/index.js";

export class ResumeError extends Error {
  override name = "ResumeError";
}

/**
 * Every concrete leaf step of a plan with its signature (`{i}` expanded over its map's items), one at a time,
 * item by item: a packed task's states are one pack file, read once while its items are asked for in a row.
 */
export function* eachConcreteStep(plan: Pick<CompiledPlan, "jobs" | "items">): Generator<[string, string], void, undefined> {
  for (const job of plan.jobs) {
    for (const body of job.bodies) {
      const perItem: Array<[string[], string]> = [];
      for (const step of body.steps) {
        if (step.key.includes("{i}")) perItem.push([step.key.split("{i}"), step.signature]);
        else yield [step.key, step.signature];
      }
      if (perItem.length === 0) continue;
      const count = job.map ? (plan.items[job.map.key]?.length ?? 0) : 0;
      for (let i = 0; i < count; i++) for (const [parts, signature] of perItem) yield [parts.join(String(i)), signature];
    }
  }
}

/** Every concrete leaf step of a plan with its signature, as a map (later jobs win). */
export function concreteSteps(plan: Pick<CompiledPlan, "jobs" | "items">): Map<string, string> {
  return new Map(eachConcreteStep(plan));
}

/**
 * Keys whose remote state is a success with the step's current signature: these need not run again. A key
 * that several jobs run is judged by the last one's signature (as concreteSteps would); the keys are never
 * all held in a second map (a million items' resume).
 */
export function doneSteps(plan: Pick<CompiledPlan, "jobs" | "items">, states: Pick<ReadonlyMap<string, StateFile>, "get">): Set<string> {
  const done = new Set<string>();
  for (const [key, signature] of eachConcreteStep(plan)) {
    const state = states.get(key);
    if (state?.success === true && state.signature === signature) done.add(key);
    else done.delete(key);
  }
  return done;
}

/** The states of a merge's source one key at a time, each forgotten once read (a resume of a million items holds no state). */
export function statesOf(source: StateSource): Pick<ReadonlyMap<string, StateFile>, "get"> {
  return {
    get: (key) => {
      const state = source.state(key);
      source.release();
      return state;
    },
  };
}

/**
 * The same maps with the same values in the same order, compared element by element: a million items
 * made four strings of 60 MB each as canonical JSON (650 MB more at the resume's peak).
 */
export function sameLists(a: Readonly<Record<string, ReadonlyArray<string | null>>>, b: Readonly<Record<string, ReadonlyArray<string | null>>>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key)) return false;
    const x = a[key] ?? [];
    const y = b[key] ?? [];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/** A resume must not change what the steps that already ran were given. */
export function checkSameInputs(
  runId: string,
  previous: Pick<CompiledPlan, "context" | "items" | "pipeline" | "itemHashes">,
  next: Pick<CompiledPlan, "context" | "items" | "pipeline" | "itemHashes">,
): void {
  if (previous.pipeline !== next.pipeline) {
    throw new ResumeError(`run ${runId} ran pipeline ${previous.pipeline}, not ${next.pipeline}: resume it with the same spec`);
  }
  if (canonicalJson(previous.context) !== canonicalJson(next.context)) {
    throw new ResumeError(`run ${runId}: the context differs from the one it was submitted with (check --set); start a new run instead of resuming`);
  }
  if (!sameLists(previous.items, next.items)) {
    throw new ResumeError(`run ${runId}: a map's items differ from the ones it was submitted with; start a new run instead of resuming`);
  }
  if (!sameLists(previous.itemHashes ?? {}, next.itemHashes ?? {})) {
    throw new ResumeError(`run ${runId}: a map's item files changed since it was submitted (same paths, other contents); start a new run instead of resuming`);
  }
}

/** Resubmitting while jobs of the run still wait or run would run steps twice. */
export function checkNothingActive(runId: string, statuses: readonly JobStatus[]): void {
  const active = statuses.filter((s) => !s.final);
  if (active.length > 0) {
    throw new ResumeError(
      `run ${runId} still has jobs waiting or running (${active.map((s) => `${s.job}: ${s.state}`).join(", ")}); ` +
        `wait for them (hpcpipe status ${runId} --watch) or cancel them (hpcpipe cancel ${runId}) before resuming`,
    );
  }
}
