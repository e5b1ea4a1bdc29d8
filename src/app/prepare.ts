import { isAbsolute, resolve } from "node:path";
import { checkResources, loadClusterConfig, toCompileTarget } from "../cluster/index.js";
import type { ClusterConfig } from "../cluster/index.js";
import { compile } from "../compiler/compile.js";
import { CompileError } from "../compiler/errors.js";
import type { CompiledPlan, PlanNode } from "../plan/plan.js";
import { loadSpec } from "../spec/index.js";
import type { LoadedSpec } from "../spec/index.js";
import { templateRenderer } from "./renderer.js";
import { newRunId } from "./run-id.js";

export interface PrepareOptions {
  /** Path of the YAML pipeline spec. */
  spec: string;
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
  loaded: LoadedSpec;
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
  const loaded = loadSpec(options.spec, { set: options.set ?? {} });
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
