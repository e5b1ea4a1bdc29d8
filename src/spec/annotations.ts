/**
 * Facts about steps that only the compiler reads, kept beside the core's
 * classes rather than in subclasses of them: a subclass would change a
 * step's signature (which hashes its class name), so a pipeline written in
 * YAML and the same pipeline written in TypeScript would not resume each
 * other's runs. Both tables hold their steps weakly.
 */
import type { PipelineStep } from "../core/step.js";
import { CommandStep } from "./command-step.js";
import { parsePacking } from "./map-step.js";
import type { MapPacking, PackingOptions } from "./map-step.js";
import { MAX_RETRIES } from "../plan/retry.js";
import type { RetryPolicy } from "../plan/retry.js";

const noFuseSteps = new WeakSet<PipelineStep>();
const throttles = new WeakMap<PipelineStep, number>();
const packings = new WeakMap<PipelineStep, MapPacking>();

/** Opts a step (and, for a composite, its whole sub-tree) out of fusion; returns the step. */
export function noFuse<T extends PipelineStep>(step: T): T {
  noFuseSteps.add(step);
  return step;
}

/**
 * True when the step itself opted out of fusion: a composite marked with
 * `noFuse` (the spec's `fuse: false`) or a CommandStep built with `fuse: false`.
 * The compiler applies a composite's opt-out to everything below it.
 */
export function fuseOptOut(step: PipelineStep): boolean {
  return noFuseSteps.has(step) || (step instanceof CommandStep && !step.fuse);
}

/** Records the array throttle (`%N`) of a parallel group; returns the step. */
export function withThrottle<T extends PipelineStep>(step: T, throttle: number): T {
  if (!Number.isInteger(throttle) || throttle < 1) throw new RangeError(`throttle must be a whole number >= 1, got ${throttle}`);
  throttles.set(step, throttle);
  return step;
}

/**
 * The array throttle a user asked for: a group's `throttle` from the spec (or
 * `withThrottle`), a map's own `throttle`; null when none was given.
 */
export function throttleOf(step: PipelineStep): number | null {
  const own = (step as { throttle?: unknown }).throttle;
  if (typeof own === "number") return own;
  return throttles.get(step) ?? null;
}

/**
 * Task packing for a parallel group on a cluster (the spec's `items_per_task`,
 * `task_duration` / `item_duration`, `task_cpus` on a group): each array task
 * runs several children, each still with its own keys, logs and state files.
 * In-process runs ignore it; it is not part of the signature. Returns the step.
 */
export function withPacking<T extends PipelineStep>(step: T, options: PackingOptions): T {
  const where = `group ${step.name}`;
  if (!step.parallel) throw new RangeError(`${where}: task packing applies to a parallel group (an array job); this group runs its children one after another`);
  const packing = parsePacking(options, where);
  if (packing === null) packings.delete(step);
  else packings.set(step, packing);
  return step;
}

/** The packing a parallel group asked for with `withPacking`; null when none. */
export function groupPackingOf(step: PipelineStep): MapPacking | null {
  return packings.get(step) ?? null;
}

const retryPolicies = new WeakMap<PipelineStep, RetryPolicy>();

/**
 * Retries on a cluster (the spec's `retries`, `retry_on`, `on_timeout`, `on_oom`) for a command step, or
 * for each item of a map: a retry controller job resubmits what failed (src/plan/retry.ts). Not part of the
 * signature. `retries: 0` removes it. Returns the step.
 */
export function withRetries<T extends PipelineStep>(step: T, policy: RetryPolicy): T {
  if (!Number.isInteger(policy.retries) || policy.retries < 0 || policy.retries > MAX_RETRIES) {
    throw new RangeError(`${step.name}: retries must be a whole number from 0 to ${MAX_RETRIES}, got ${policy.retries}`);
  }
  if (policy.retries === 0) retryPolicies.delete(step);
  else retryPolicies.set(step, { ...policy, on: policy.on === null ? null : [...policy.on] });
  return step;
}

/** The retry policy of a step (`withRetries`), or null. */
export function retriesOf(step: PipelineStep): RetryPolicy | null {
  return retryPolicies.get(step) ?? null;
}
