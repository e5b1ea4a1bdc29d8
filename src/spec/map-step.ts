import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { CompletedState } from "../core/completed-state.js";
import { CompositeStep, failureOf } from "../core/composite.js";
import type { CompositeOptions } from "../core/composite.js";
import { inferSequential } from "../core/contracts.js";
import type { Contract } from "../core/contracts.js";
import { runChild, stepStatesOf } from "../core/execute.js";
import type { ExecEnv } from "../core/execute.js";
import { Pipeline } from "../core/pipeline.js";
import { shortSignature } from "../core/signature.js";
import { StepDefinitionError } from "../core/step.js";
import { SLURM_TIME_PATTERN, slurmTimeToSeconds } from "../plan/resources.js";
import type { Context, PipelineStep } from "../core/step.js";
import { contextKeyProblem } from "./context-keys.js";
import { withItemScope } from "./item-scope.js";
import { hasControlChar } from "./source.js";
import { preview } from "../core/preview.js";

/** Longest item, in characters. */
export const MAX_ITEM_LENGTH = 4096;

/** Any control character (tab, newline, CR and NUL included): one regex test for the common, valid item. */
// eslint-disable-next-line no-control-regex
const CONTROL_CHAR = /[\x00-\x1f\x7f]/;

/**
 * Why a map item cannot be used, or null. Items travel one per line in a
 * file and into environment variables, so they are single printable lines.
 */
export function itemProblem(item: unknown): string | null {
  if (typeof item === "string" && item.length > 0 && item.length <= MAX_ITEM_LENGTH && !CONTROL_CHAR.test(item)) return null;
  if (typeof item !== "string") return `must be a string, got ${item === null ? "null" : typeof item}`;
  if (item.length === 0) return "must not be empty";
  if (item.length > MAX_ITEM_LENGTH) return `is longer than ${MAX_ITEM_LENGTH} characters`;
  if (item.includes("\n") || item.includes("\r")) return "must not contain a newline";
  if (item.includes("\0")) return "must not contain a NUL byte";
  if (hasControlChar(item, false)) return "must not contain a control character";
  return null;
}

export interface MapStepOptions extends CompositeOptions {
  /** One run of `steps` per item. */
  items: readonly string[];
  /** The context key each item is bound to (default `item`). */
  as?: string;
  /** Most items running at once; default: the number of CPUs. On a cluster it becomes the array's `%N`. */
  concurrency?: number;
  /** The map succeeds even when items fail; the failed ones are listed in `meta.failed_items`. */
  continue_on_item_error?: boolean;
  /** Where the items came from (a file), for messages and plans. */
  itemsSource?: string;
  /**
   * Items that are local files staged into the run: the SHA-256 of each
   * item's file, in item order. A changed file changes the item's signature
   * (its path stays the same), and the compiled plan carries them (`itemHashes`).
   */
  itemHashes?: readonly string[];
  /**
   * Task packing on a cluster: each array task runs this many items (default
   * 1: one task per item). In-process runs ignore it. Not part of the signature.
   */
  itemsPerTask?: number;
  /** Task packing by duration: the target wall time of one array task (a SLURM time, e.g. "10:00"); needs `itemDuration`. */
  taskDuration?: string;
  /** The estimated wall time of one item (a SLURM time, e.g. "0:30"); with `taskDuration` it gives the items per task. */
  itemDuration?: string;
  /** CPUs each packed array task asks for (default: the item's); a task runs `floor(taskCpus / item cpus)` items at once. */
  taskCpus?: number;
}

/** How a map asks to be packed into array tasks; the compiler resolves it (see src/compiler/packing.ts). */
export interface MapPacking {
  itemsPerTask: number | null;
  /** Seconds. */
  taskDurationS: number | null;
  /** Seconds. */
  itemDurationS: number | null;
  taskCpus: number | null;
}

/** The packing options a map (or, through `withPacking`, a parallel group) takes. */
export interface PackingOptions {
  itemsPerTask?: number;
  taskDuration?: string;
  itemDuration?: string;
  taskCpus?: number;
}

/** A packing request checked; null when none was given. `where` names the step in errors (`map validate`). */
export function parsePacking(options: PackingOptions, where: string): MapPacking | null {
  const { itemsPerTask, taskDuration, itemDuration, taskCpus } = options;
  if (itemsPerTask === undefined && taskDuration === undefined && itemDuration === undefined && taskCpus === undefined) return null;
  if (itemsPerTask !== undefined && (!Number.isInteger(itemsPerTask) || itemsPerTask < 1)) {
    throw new StepDefinitionError(`${where}: itemsPerTask must be a whole number >= 1, got ${preview(itemsPerTask)}`);
  }
  if (itemsPerTask !== undefined && (taskDuration !== undefined || itemDuration !== undefined)) {
    throw new StepDefinitionError(`${where}: give itemsPerTask or taskDuration with itemDuration, not both`);
  }
  if ((taskDuration === undefined) !== (itemDuration === undefined)) {
    throw new StepDefinitionError(`${where}: taskDuration and itemDuration go together (the items per task are taskDuration / itemDuration)`);
  }
  const seconds = (value: string | undefined, name: string): number | null => {
    if (value === undefined) return null;
    const s = typeof value === "string" && SLURM_TIME_PATTERN.test(value) ? slurmTimeToSeconds(value) : 0;
    if (s <= 0) throw new StepDefinitionError(`${where}: ${name} must be a positive SLURM time like "10:00" (MM:SS) or "1:00:00", got ${preview(value)}`);
    return s;
  };
  const taskDurationS = seconds(taskDuration, "taskDuration");
  const itemDurationS = seconds(itemDuration, "itemDuration");
  if (taskCpus !== undefined && (!Number.isInteger(taskCpus) || taskCpus < 1)) {
    throw new StepDefinitionError(`${where}: taskCpus must be a whole number >= 1, got ${preview(taskCpus)}`);
  }
  if (itemsPerTask === undefined && taskDurationS === null) {
    throw new StepDefinitionError(`${where}: taskCpus applies to packed tasks; give itemsPerTask (or taskDuration with itemDuration) too`);
  }
  return { itemsPerTask: itemsPerTask ?? null, taskDurationS, itemDurationS, taskCpus: taskCpus ?? null };
}

/** The sub-pipeline run for one item: a Pipeline whose signature also covers the item, so a changed item is never skipped. */
export class MapItemPipeline extends Pipeline {
  constructor(
    index: number,
    readonly item: string,
    readonly as: string,
    steps: readonly PipelineStep[],
    /** The SHA-256 of the item's file when the item is a staged local file. */
    readonly itemSha256?: string,
  ) {
    super({ name: String(index), steps });
  }

  override signatureData(): unknown {
    return this.itemSha256 === undefined ? { item: this.item, as: this.as } : { item: this.item, as: this.as, sha256: this.itemSha256 };
  }
}

function mapContract(as: string): (children: readonly PipelineStep[]) => Contract {
  return (children) => {
    const inner = inferSequential(children);
    return { requires: inner.requires.filter((k) => k !== as), provides: [] };
  };
}

/**
 * Runs a sub-pipeline once per item, the item bound to a context key: the
 * batch form, which a compiler turns into one array task per item. Results
 * are recorded as `<map>.<i>` (the item's pipeline) and `<map>.<i>.<step>`.
 * Items run concurrently up to `concurrency`, each in its own copy of the
 * context (sharing `step_states`), so what an item's steps set stays in it.
 * When an item fails no new item starts and the map fails, unless
 * `continue_on_item_error`.
 */
export class MapStep extends CompositeStep {
  readonly items: readonly string[];
  readonly as: string;
  readonly concurrency: number;
  /** The concurrency the user asked for (the array's `%N` on a cluster), or null for the default. */
  readonly throttle: number | null;
  readonly continue_on_item_error: boolean;
  readonly itemsSource: string | undefined;
  /** Task packing on a cluster, or null (one array task per item). */
  readonly packing: MapPacking | null;
  /** The SHA-256 of each item's file, for items that are staged local files; null for plain items. */
  readonly itemHashes: readonly string[] | null;
  private itemsDigest: string | undefined;

  constructor(options: MapStepOptions) {
    const as = options.as ?? "item";
    super(options, mapContract(as));
    const problem = contextKeyProblem(as);
    if (problem) throw new StepDefinitionError(`map ${options.name}: as: ${problem}`);
    if (!Array.isArray(options.items)) throw new StepDefinitionError(`map ${options.name}: items must be a list of strings`);
    const source = options.itemsSource ? ` (from ${options.itemsSource})` : "";
    for (let i = 0; i < options.items.length; i++) {
      const bad = itemProblem(options.items[i] as unknown);
      if (bad) throw new StepDefinitionError(`map ${options.name}: item ${i}${source} ${bad}`);
    }
    if (options.itemHashes !== undefined) {
      if (!Array.isArray(options.itemHashes) || options.itemHashes.length !== options.items.length) {
        throw new StepDefinitionError(`map ${options.name}: itemHashes must hold one SHA-256 per item (${options.items.length})`);
      }
      const bad = options.itemHashes.findIndex((h: unknown) => typeof h !== "string" || !/^[0-9a-f]{64}$/.test(h));
      if (bad >= 0) throw new StepDefinitionError(`map ${options.name}: itemHashes[${bad}] is not a SHA-256 (64 hex digits)`);
    }
    const concurrency = options.concurrency ?? availableParallelism();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new StepDefinitionError(`map ${options.name}: concurrency must be a whole number >= 1, got ${preview(concurrency)}`);
    }
    this.items = Object.freeze([...options.items]);
    this.as = as;
    this.concurrency = concurrency;
    this.throttle = options.concurrency ?? null;
    this.continue_on_item_error = options.continue_on_item_error ?? false;
    this.itemsSource = options.itemsSource;
    this.packing = parsePacking(options, `map ${options.name}`);
    this.itemHashes = options.itemHashes !== undefined ? Object.freeze([...options.itemHashes]) : null;
  }

  override get kind(): "map" {
    return "map";
  }

  /** A digest of the item list (sha256 of the items joined by newlines). */
  get itemsHash(): string {
    this.itemsDigest ??= createHash("sha256").update(this.items.join("\n")).digest("hex");
    return this.itemsDigest;
  }

  override signatureData(): unknown {
    const data = { as: this.as, items: this.items.length, items_sha256: this.itemsHash, continue_on_item_error: this.continue_on_item_error };
    // Staged item files: their contents count, not only their (unchanging) paths.
    return this.itemHashes === null ? data : { ...data, item_files_sha256: createHash("sha256").update(this.itemHashes.join("\n")).digest("hex") };
  }

  /** The pipeline that runs item `index` (named `String(index)`, recorded as `<map>.<index>`). */
  itemPipeline(index: number): MapItemPipeline {
    const item = this.items[index];
    if (item === undefined) throw new RangeError(`map ${this.name} has no item ${index}`);
    return new MapItemPipeline(index, item, this.as, this.steps, this.itemHashes?.[index]);
  }

  protected override async runBody(context: Context, key: string, env: ExecEnv): Promise<CompletedState> {
    const states = stepStatesOf(context); // created before the item contexts copy its reference
    const total = this.items.length;
    let next = 0;
    let firstFailure: { key: string; state: CompletedState } | undefined;
    const failedItems: number[] = [];

    const runItem = async (i: number): Promise<void> => {
      const pipeline = this.itemPipeline(i);
      const itemKey = `${key}.${i}`;
      // Earlier results under this index belong to another item (or a run cut short): they must not be reused.
      const previous = states[itemKey];
      if (previous === undefined || previous.signature !== shortSignature(pipeline)) {
        for (const k of Object.keys(states)) if (k === itemKey || k.startsWith(`${itemKey}.`)) delete states[k];
      }
      const scoped = withItemScope({ ...context, [this.as]: pipeline.item }, { index: i, item: pipeline.item });
      const state = await runChild(pipeline, scoped, itemKey, env);
      if (state.success) return;
      if (this.continue_on_item_error && state.failure !== "MISSING_REQUIREMENT") failedItems.push(i);
      else firstFailure ??= { key: itemKey, state };
    };
    const worker = async (): Promise<void> => {
      while (firstFailure === undefined && next < total && !env.signal?.aborted) await runItem(next++);
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, total) }, worker));

    const meta: Record<string, unknown> = { items: total, item_key: this.as };
    if (failedItems.length > 0) meta.failed_items = failedItems.sort((a, b) => a - b);
    if (next < total) meta.items_not_started = total - next;
    if (firstFailure !== undefined) return failureOf(firstFailure.key, firstFailure.state, meta);
    if (next < total) return CompletedState.fail(`${key}: aborted`, { failure: "STEP_FAILED", meta: { ...meta, aborted: true } });
    return CompletedState.ok({ meta });
  }
}
