/** The compiler's last phases: render each job's script, then assemble the plan and the files of its bundle. */
import { shortSignature } from "../core/signature.js";
import type { PipelineStep } from "../core/step.js";
import { PLAN_FORMAT_VERSION } from "../plan/plan.js";
import type { CompiledPlan, PlanJob, PlanLayout, PlanNode } from "../plan/plan.js";
import type { JobDraft } from "./drafts.js";
import { CompileError } from "./errors.js";
import type { RenderContext, Renderer } from "./renderer.js";
import type { CompileTarget } from "./target.js";
import { mapOf } from "./tree.js";

/** Every remote path of a run lives under `<workdir>/<pipeline>/<run id>`. */
export function runLayout(target: CompileTarget, pipeline: string, runId: string): PlanLayout {
  const runDir = `${target.workdir.replace(/\/+$/, "")}/${pipeline}/${runId}`;
  return { runDir, scripts: "scripts", states: "states", logs: "logs", out: "out", ctx: "ctx", items: "items", work: "work" };
}

export function renderContext(target: CompileTarget, layout: PlanLayout, pipeline: string, runId: string): RenderContext {
  return {
    runDir: layout.runDir,
    runId,
    pipeline,
    cluster: { modules: target.modules, setup: target.setup, sbatch_options: target.sbatchOptions, signal_grace_s: target.signalGraceS },
  };
}

/** Each draft with its script; a renderer's failure names the job and its steps. */
export function renderJobs(drafts: readonly JobDraft[], renderer: Renderer, context: RenderContext): PlanJob[] {
  return drafts.map((d) => {
    try {
      return { ...d, script: renderer.job(d, context) };
    } catch (err) {
      throw new CompileError(`rendering job ${d.id} (${d.steps.join(", ")}): ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

export interface PlanParts {
  root: PipelineStep;
  runId: string;
  target: CompileTarget;
  layout: PlanLayout;
  jobs: PlanJob[];
  context: Record<string, string>;
  items: Record<string, string[]>;
  itemHashes: Record<string, string[]>;
  renderer: Renderer;
}

/**
 * The plan and its bundle: the wrapper library, every job script, the
 * context (NUL-separated `NAME=value`), each map's items file, and last the
 * submit script, rendered from the plan with every other file in it.
 */
export function assemblePlan(parts: PlanParts): CompiledPlan {
  const { root, jobs, context, items, itemHashes, renderer } = parts;
  const plan: CompiledPlan = {
    format: PLAN_FORMAT_VERSION,
    pipeline: root.name,
    runId: parts.runId,
    signature: shortSignature(root),
    cluster: parts.target.name,
    layout: parts.layout,
    tree: planNode(root, root.name),
    jobs,
    context,
    items,
    ...(Object.keys(itemHashes).length > 0 ? { itemHashes } : {}),
    files: {},
  };
  const files: Record<string, string> = {};
  files["scripts/lib.sh"] = renderer.lib();
  if (jobs.some((j) => j.retry !== undefined)) {
    if (renderer.retryLib === undefined) throw new CompileError("the plan has retries, but the renderer has no retry controller library (scripts/retry.sh)");
    files["scripts/retry.sh"] = renderer.retryLib();
  }
  for (const job of jobs) files[job.scriptPath] = job.script;
  files["context.env0"] = Object.entries(context)
    .map(([k, v]) => `${k}=${v}\0`)
    .join("");
  for (const [key, list] of Object.entries(items)) files[`items/${key}.txt`] = list.map((i) => `${i}\n`).join("");
  plan.files = files;
  files["scripts/submit.sh"] = renderer.submit(plan);
  return plan;
}

/** The pipeline tree as the plan keeps it, so results merge back under the keys the in-process core uses. */
export function planNode(step: PipelineStep, key: string): PlanNode {
  const map = mapOf(step);
  const childPrefix = map ? `${key}.{i}` : key;
  return {
    key,
    name: step.name,
    kind: map ? "map" : step.kind,
    parallel: step.parallel || map !== null,
    continue_on_error: step.continue_on_error,
    signature: shortSignature(step),
    provides: [...step.provides],
    ...(map ? { items: map.items.length, item_key: map.as, continue_on_item_error: map.continue_on_item_error } : {}),
    children: step.children.map((c) => planNode(c, `${childPrefix}.${c.name}`)),
  };
}
