import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { Logger } from "pino";
import { FunctionStep, PipelineStep } from "../../src/core/index.js";
import type { CompletedState, Context, RunOptions, StepFunction, StepOptions } from "../../src/core/index.js";

/** A promise with its resolve/reject exposed, to control when a step finishes. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Resolves `arrive()` for everybody only once `parties` callers have arrived.
 * Steps that wait on it can only finish if they all run at the same time.
 */
export class Barrier {
  private arrived = 0;
  private readonly all = deferred();
  constructor(private readonly parties: number) {}
  arrive(): Promise<void> {
    this.arrived += 1;
    if (this.arrived >= this.parties) this.all.resolve();
    return this.all.promise;
  }
  get count(): number {
    return this.arrived;
  }
}

/** Lets pending promise callbacks run (a few macrotask turns). */
export async function flush(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

/** An event trace shared by the steps of one test. */
export type Trace = string[];

export interface TracedStepOptions extends Partial<StepOptions> {
  /** Value set on each `provides` key; default `${name}-value`. */
  value?: unknown;
  /** Extra work after the start event and before providing. */
  body?: (context: Context, options: RunOptions) => unknown;
}

/**
 * A FunctionStep that records `start:<name>` and `end:<name>` in `trace`,
 * runs `body`, then sets every `provides` key. Returns outputs {by: name}.
 */
export function tracedStep(name: string, trace: Trace, options: TracedStepOptions = {}): FunctionStep {
  const { value, body, ...stepOptions } = options;
  return new FunctionStep({
    ...stepOptions,
    name,
    run: async (context, runOptions) => {
      trace.push(`start:${name}`);
      await body?.(context, runOptions);
      for (const k of stepOptions.provides ?? []) context[k] = value ?? `${name}-value`;
      trace.push(`end:${name}`);
      return { by: name };
    },
  });
}

/** A FunctionStep from a bare function. */
export function fnStep(name: string, run: StepFunction, options: Partial<StepOptions> = {}): FunctionStep {
  return new FunctionStep({ ...options, name, run });
}

/** A hand-written subclass, to return things a FunctionStep would not. */
export class RawStep extends PipelineStep {
  calls = 0;
  constructor(
    options: StepOptions,
    private readonly produce: (context: Context) => unknown,
  ) {
    super(options);
  }
  override async run(context: Context): Promise<CompletedState> {
    this.calls += 1;
    return this.produce(context) as CompletedState;
  }
}

export interface MemoryLog {
  logger: Logger;
  /** Every line written so far, parsed. */
  lines(): Array<Record<string, unknown>>;
  /** The `msg` of every line, in order. */
  messages(): string[];
}

/** A real pino logger at INFO writing JSON lines into memory. */
export function memoryLogger(level = "info"): MemoryLog {
  const chunks: string[] = [];
  const stream = { write: (s: string): void => void chunks.push(s) };
  const logger = pino({ level, base: undefined }, stream);
  const lines = (): Array<Record<string, unknown>> =>
    chunks
      .join("")
      .split("\n")
      .filter((l) => l.trim().length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, messages: () => lines().map((l) => String(l.msg)) };
}

/** A fresh directory under the OS temp dir; `cleanup` removes it. */
export async function makeTempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "hpcpipe-core-test-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The state recorded under `key`, failing loudly if absent. */
export function stateAt(context: Context, key: string): CompletedState {
  const state = context.step_states?.[key];
  if (state === undefined) throw new Error(`no state recorded under '${key}'`);
  return state;
}
