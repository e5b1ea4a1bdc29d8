import type { CompletedState } from "../core/completed-state.js";
import { PipelineStep, StepDefinitionError } from "../core/step.js";
import type { Context, RunOptions, StepOptions } from "../core/step.js";
import type { Resources } from "../plan/resources.js";
import { resourcesSchema } from "../plan/resources.js";
import { contextKeyProblem } from "./context-keys.js";
import { hasControlChar } from "./source.js";
// Implemented in run-command.ts (kept apart: it spawns processes).
import { runCommandInProcess } from "./run-command.js";
import { issuesText, preview } from "../core/preview.js";

export interface CommandStepOptions extends StepOptions {
  /** A bash snippet. Context values arrive as environment variables ("$model_path"), never spliced into this text. */
  command: string;
  /** Files (relative to the job's working directory) the step must leave behind; missing ones fail the step. */
  outputs?: readonly string[];
  resources?: Resources;
  /** Extra environment for the command; values are literal strings. */
  env?: Readonly<Record<string, string>>;
  /** Allow this step to be fused into one job with its sequential neighbours (default true). */
  fuse?: boolean;
  /**
   * A batch step (only inside a map): ONE command for every item of its array task, which lists
   * the items in `$HPCPIPE_BATCH_ITEMS` and reports each one to `$HPCPIPE_BATCH_REPORT`
   * (docs/runtime-contract.md, "Batch steps").
   */
  batch?: boolean;
  /**
   * Files the step reads (relative to the working directory; `{i}`, `{item}`, `{item_stem}` and
   * `*`/`**` globs allowed): their content hashes are part of its cache key. A bundle file that no
   * step declares keys every step.
   */
  inputs?: readonly string[];
  /** False: never restore this step from the step cache nor store it there (default true). */
  cache?: boolean;
}

/**
 * Why a declared output path cannot be used, or null. Outputs are checked
 * relative to the step's working directory and must stay inside it.
 */
export function outputPathProblem(path: unknown): string | null {
  if (typeof path !== "string" || path.length === 0) return "must be a non-empty string";
  if (path.length > 4096) return "is longer than 4096 characters";
  if (hasControlChar(path, false)) return "must not contain a newline or control character";
  if (path.startsWith("/") || path.startsWith("~")) return "must be relative to the working directory (no leading '/' or '~')";
  if (path.split("/").includes("..")) return "must stay inside the working directory (no '..')";
  return null;
}

/**
 * A step that runs a shell command: the kind of step that can leave the
 * process and run as (part of) a SLURM job. In-process, it runs the same
 * command with bash, with the same environment contract as the job wrapper.
 */
export class CommandStep extends PipelineStep {
  readonly command: string;
  readonly outputs: readonly string[];
  readonly resources: Resources;
  readonly env: Readonly<Record<string, string>>;
  readonly fuse: boolean;
  readonly batch: boolean;
  readonly inputs: readonly string[];
  readonly cache: boolean;

  constructor(options: CommandStepOptions) {
    super(options);
    if (typeof options.command !== "string" || options.command.trim() === "") {
      throw new StepDefinitionError(`step ${options.name}: command must be a non-empty string`);
    }
    if (options.command.includes("\0")) throw new StepDefinitionError(`step ${options.name}: command contains a NUL byte`);
    for (const key of [...this.requires, ...this.provides]) {
      const problem = contextKeyProblem(key);
      if (problem) throw new StepDefinitionError(`step ${options.name}: ${problem}`);
    }
    for (const [k, v] of Object.entries(options.env ?? {})) {
      const problem = contextKeyProblem(k);
      if (problem) throw new StepDefinitionError(`step ${options.name}: env: ${problem.replace("context key", "variable")}`);
      if (typeof v !== "string" || v.includes("\0")) throw new StepDefinitionError(`step ${options.name}: env ${k} must be a string without NUL`);
    }
    for (const out of options.outputs ?? []) {
      const problem = outputPathProblem(out);
      if (problem) throw new StepDefinitionError(`step ${options.name}: output ${preview(out)} ${problem}`);
    }
    const res = resourcesSchema.safeParse(options.resources ?? {});
    if (!res.success) {
      throw new StepDefinitionError(`step ${options.name}: resources: ${issuesText(res.error.issues, 10)}`);
    }
    this.command = options.command;
    this.outputs = [...(options.outputs ?? [])];
    this.resources = res.data;
    this.env = { ...(options.env ?? {}) };
    this.fuse = options.fuse ?? true;
    if (options.batch !== undefined && typeof options.batch !== "boolean") throw new StepDefinitionError(`step ${options.name}: batch must be true or false`);
    this.batch = options.batch ?? false;
    for (const input of options.inputs ?? []) {
      const problem = outputPathProblem(input);
      if (problem) throw new StepDefinitionError(`step ${options.name}: input ${preview(input)} ${problem}`);
    }
    this.inputs = [...(options.inputs ?? [])];
    if (options.cache !== undefined && typeof options.cache !== "boolean") throw new StepDefinitionError(`step ${options.name}: cache must be true or false`);
    this.cache = options.cache ?? true;
  }

  override signatureData(): unknown {
    const data = { command: this.command, outputs: this.outputs, env: this.env, resources: this.resources };
    // A batch command speaks another contract; plain steps keep the signatures they always had.
    return this.batch ? { ...data, batch: true } : data;
  }

  override run(context: Context, options: RunOptions = {}): Promise<CompletedState> {
    return runCommandInProcess(this, context, options);
  }
}
