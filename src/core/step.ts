import type { CompletedState } from "./completed-state.js";
import type { Clock } from "./clock.js";
import type { Logger } from "./logger.js";
import { preview } from "./preview.js";

/**
 * The shared context: one object flows through the whole tree. Steps read
 * their `requires` keys and set their `provides` keys; `step_states` is kept
 * by the orchestrator alone.
 */
export interface Context {
  [key: string]: unknown;
  step_states?: Record<string, CompletedState>;
}

/** What the orchestrator hands a step besides the context. Leaf steps may ignore it. */
export interface RunOptions {
  dryRun?: boolean;
  force?: boolean;
  logger?: Logger;
  clock?: Clock;
  /** The step's full dot-namespaced key, set by the orchestrator; absent when a pipeline is run as the root. */
  key?: string;
  /** Aborted when the run is being abandoned (e.g. SIGINT); long steps should stop. */
  signal?: AbortSignal;
  /** Working directory for steps that run commands; default: the process's cwd. */
  workDir?: string;
}

export interface StepOptions {
  name: string;
  version?: string;
  requires?: readonly string[];
  provides?: readonly string[];
  idempotent?: boolean;
  continue_on_error?: boolean;
}

/** Step names become path segments and dot-namespaced keys, so they are restricted. */
export const STEP_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$/;

export class StepDefinitionError extends Error {
  override name = "StepDefinitionError";
}

export function assertStepName(name: unknown, what = "step"): asserts name is string {
  if (typeof name !== "string" || !STEP_NAME_PATTERN.test(name)) {
    throw new StepDefinitionError(
      `invalid ${what} name ${preview(name)}: use 1-100 letters, digits, '_' or '-' ` +
        `(not starting with '-'); dots are reserved for namespacing`,
    );
  }
}

function keyList(keys: readonly string[] | undefined, owner: string, field: string): string[] {
  const list = [...(keys ?? [])];
  for (const k of list) {
    if (typeof k !== "string" || k.length === 0 || k === "step_states") {
      throw new StepDefinitionError(`step ${owner}: ${field} has an invalid key ${preview(k)}`);
    }
  }
  return [...new Set(list)];
}

/** A unit of work. Subclasses implement `run`; the orchestrator owns timing, state and logging. */
export abstract class PipelineStep {
  readonly name: string;
  readonly version: string;
  readonly idempotent: boolean;
  readonly continue_on_error: boolean;
  protected declaredRequires: string[] | undefined;
  protected declaredProvides: string[] | undefined;

  constructor(options: StepOptions) {
    assertStepName(options.name);
    this.name = options.name;
    this.version = options.version ?? "0.0.0";
    this.idempotent = options.idempotent ?? true;
    this.continue_on_error = options.continue_on_error ?? false;
    this.declaredRequires = options.requires && keyList(options.requires, options.name, "requires");
    this.declaredProvides = options.provides && keyList(options.provides, options.name, "provides");
  }

  /** Context keys this step needs before it runs. */
  get requires(): readonly string[] {
    return this.declaredRequires ?? [];
  }

  /** Requirements checked before the step runs. A composite checks only what it declares; its children check their own. */
  get checkedRequires(): readonly string[] {
    return this.requires;
  }

  /** Context keys this step sets when it succeeds. */
  get provides(): readonly string[] {
    return this.declaredProvides ?? [];
  }

  /** Does the work. Return a CompletedState; throwing is recorded as STEP_EXCEPTION. */
  abstract run(context: Context, options?: RunOptions): Promise<CompletedState>;

  /** Checked after a successful run; returns the problems found (empty when valid). */
  validate(context: Context): string[] | Promise<string[]> {
    const missing = this.provides.filter((k) => context[k] === undefined);
    return missing.length === 0 ? [] : [`did not provide ${missing.map((k) => `'${k}'`).join(", ")}`];
  }

  /** Undoes partial work after `run` threw. The default does nothing. */
  rollback(_context: Context, _error: unknown): void | Promise<void> {}

  /** Extra definition data that changes the step's signature (e.g. a command line). */
  signatureData(): unknown {
    return null;
  }

  /** Child steps for composites; a leaf has none. */
  get children(): readonly PipelineStep[] {
    return [];
  }

  /** What the step is, for plans and logs ("map": a MapStep from src/spec, which runs its children once per item). */
  get kind(): "step" | "pipeline" | "group" | "map" {
    return "step";
  }

  /** True for a group whose children run at the same time. */
  get parallel(): boolean {
    return false;
  }

  /** True when the step always reruns, even after an idempotent success (a pipeline built with `force`). */
  get forced(): boolean {
    return false;
  }
}
