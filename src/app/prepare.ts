import { isAbsolute, resolve } from "node:path";
import { checkResources, loadClusterConfig, toCompileTarget } from "../cluster/index.js";
import type { ClusterConfig } from "../cluster/index.js";
import { compile } from "../compiler/compile.js";
import { CompileError } from "../compiler/errors.js";
import type { CompiledPlan, PlanNode } from "../plan/plan.js";
import { loadSpec } from "../spec/index.js";
import type { LoadedSpec } from "../spec/index.js";
import type { Pipeline } from "../core/pipeline.js";
import type { Resources } from "../plan/resources.js";
import type { StagedFile } from "../store/staging.js";
import { contextKeyProblem } from "../spec/index.js";
import { templateRenderer } from "./renderer.js";
import { newRunId } from "./run-id.js";
import { preview } from "../core/preview.js";

/** A pipeline built in code (the programmatic API), in place of a spec file. */
export interface InlinePipeline {
  pipeline: Pipeline;
  /** The initial context (`set` values are applied over it). */
  context?: Record<string, string | number | boolean>;
  /** Resource defaults for every step. */
  defaults?: Resources;
  /** Files and directories (relative to `baseDir`) copied into the run's work directory. */
  bundle?: string[];
  /** The directory `bundle` paths are relative to (default: the current directory). */
  baseDir?: string;
  /**
   * Map item files staged into the run's work directory, keyed `work/...`:
   * `resolveItemFiles(...).value.files`, whose `items` and `hashes` go to the
   * MapStep as `items` and `itemHashes`.
   */
  inputs?: StagedFile[];
}

/** A pipeline spec: the path of a YAML file, or a pipeline built in code. */
export type PipelineSource = string | InlinePipeline;

/** How a record names where the pipeline came from. */
export function sourceLabel(spec: PipelineSource): string {
  return typeof spec === "string" ? resolve(spec) : `(built in code: ${spec.pipeline.name})`;
}

export interface PrepareOptions {
  /** Path of the YAML pipeline spec, or a pipeline built in code. */
  spec: PipelineSource;
  /** Cluster config name or path; default `local`. */
  cluster?: string;
  /** `--set key=value` overrides of the spec's context. */
  set?: Record<string, string>;
  runId?: string;
  /** Fuse consecutive equal-resource steps (default true). */
  fuse?: boolean;
  /** A directory of the user's own templates (sbatch.hbs, submit.hbs, partials/). */
  templatesDir?: string;
  /** For local runs: where run directories go (overrides a relative workdir of the config); default `.hpcpipe/runs`. */
  localRunsDir?: string;
  /** Steps that already succeeded (a resumed run): jobs and array tasks that would only rerun them are left out. */
  done?: ReadonlySet<string>;
}

export interface PreparedPlan {
  plan: CompiledPlan;
  loaded: Pick<LoadedSpec, "pipeline" | "context" | "specDir" | "bundle" | "defaults" | "inputs">;
  config: ClusterConfig;
  /** What compiles but is probably not meant (a map with no items), for people to read before it runs. */
  warnings: string[];
}

/** Maps with no items: they compile to no job and succeed without running anything. */
export function planWarnings(plan: CompiledPlan): string[] {
  const warnings: string[] = [];
  const walk = (node: PlanNode): void => {
    if (node.kind === "map" && node.items === 0) warnings.push(`map ${node.key} has 0 items: its steps will not run (and it counts as ok)`);
    for (const child of node.children) walk(child);
  };
  walk(plan.tree);
  return warnings;
}

/**
 * Loads the spec and the cluster config and compiles the plan; contacts
 * nothing. For a local config, the run directory is made absolute here so
 * that the scripts can name it.
 */
export function preparePlan(options: PrepareOptions): PreparedPlan {
  const loaded = typeof options.spec === "string" ? loadSpec(options.spec, { set: options.set ?? {} }) : inlineSpec(options.spec, options.set ?? {});
  const config = loadClusterConfig(options.cluster ?? "local");
  const target = toCompileTarget(config);
  if (config.executor === "local") {
    const base = options.localRunsDir ?? (isAbsolute(config.workdir) ? config.workdir : resolve(config.workdir));
    target.workdir = resolve(base);
  }
  const plan = compile({
    root: loaded.pipeline,
    context: loaded.context,
    runId: options.runId ?? newRunId(),
    target,
    defaults: loaded.defaults,
    fuse: options.fuse ?? true,
    renderer: templateRenderer(options.templatesDir),
    ...(options.done ? { done: options.done } : {}),
  });
  // Every job's request (fused jobs add their steps' times) must fit the cluster's partition limits.
  const problems = plan.jobs.flatMap((job) => checkResources(config, job.resources, job.steps.length === 1 ? (job.steps[0] ?? job.id) : `${job.id} (${job.steps.join(", ")})`));
  if (problems.length > 0) throw new CompileError(problems.join("\n"), problems);
  return { plan, loaded, config, warnings: planWarnings(plan) };
}

/** A pipeline built in code, checked like a spec's: `set` keys must be valid context keys. */
function inlineSpec(source: InlinePipeline, set: Record<string, string>): PreparedPlan["loaded"] {
  const context: Record<string, string | number | boolean> = { ...(source.context ?? {}) };
  for (const [key, value] of Object.entries(set)) {
    const problem = contextKeyProblem(key);
    if (problem !== null) throw new CompileError(`set: context key ${preview(key)} ${problem}`, [problem]);
    context[key] = value;
  }
  return { pipeline: source.pipeline, context, specDir: resolve(source.baseDir ?? "."), bundle: [...(source.bundle ?? [])], defaults: source.defaults ?? {}, inputs: [...(source.inputs ?? [])] };
}
