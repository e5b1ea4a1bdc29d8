import { basename, extname } from "node:path";
import { exitCodeFrom, Pipeline } from "../../src/index.js";
import type { CompletedState, Context, ExitCode, Logger, PipelineStep } from "../../src/index.js";
import { KEYS } from "./context.js";
import type { InspectionReport } from "./report.js";
import { AssembleReportStep } from "./steps/assemble-report.js";
import { CleanupSceneStep, releaseSceneState } from "./steps/cleanup-scene.js";
import { CollectMeshesStep } from "./steps/collect-meshes.js";
import { ComputeCountsStep } from "./steps/compute-counts.js";
import { ImportModelStep } from "./steps/import-model.js";
import { PrepareSceneStep } from "./steps/prepare-scene.js";
import { WriteJsonStep } from "./steps/write-json.js";

import { PIPELINE_NAME, resolveStepNames, STAGES } from "./step-names.js";
import type { StepName } from "./step-names.js";

export { PIPELINE_NAME, resolveStepNames, STAGES, STEP_NAMES, UnknownStepError } from "./step-names.js";
export type { StepName } from "./step-names.js";

const FACTORIES: Record<StepName, () => PipelineStep> = {
  prepare_scene: () => new PrepareSceneStep(),
  import_model: () => new ImportModelStep(),
  collect_meshes: () => new CollectMeshesStep(),
  compute_counts: () => new ComputeCountsStep(),
  assemble_report: () => new AssembleReportStep(),
  write_json: () => new WriteJsonStep(),
  cleanup_scene: () => new CleanupSceneStep(),
};

/**
 * The inspector as a pipeline of pipelines:
 * scene_prep(prepare_scene, import_model) -> analysis(collect_meshes, compute_counts)
 * -> reporting(assemble_report, write_json) -> cleanup(cleanup_scene).
 * Given `steps`, only those run, in canonical order and in their usual
 * stages (stages left empty are dropped), so state keys stay the same.
 */
export function buildMiniInspector(steps?: readonly string[]): Pipeline {
  const selected = new Set(resolveStepNames(steps));
  const stages = STAGES.map((stage) => ({ name: stage.name, steps: stage.steps.filter((s) => selected.has(s)) }))
    .filter((stage) => stage.steps.length > 0)
    .map((stage) => new Pipeline({ name: stage.name, version: "1.0", steps: stage.steps.map((s) => FACTORIES[s]()) }));
  return new Pipeline({ name: PIPELINE_NAME, version: "1.0", steps: stages });
}

/** Where the report goes by default: `<model name without .glb/.gltf>.report.json` in the current directory. */
export function defaultOutPath(model: string): string {
  const ext = extname(model);
  const stem = [".glb", ".gltf"].includes(ext.toLowerCase()) ? basename(model, ext) : basename(model);
  return `${stem}.report.json`;
}

export interface MiniInspectorOptions {
  /** The .glb or .gltf file. */
  model: string;
  /** The report's path; default: defaultOutPath(model), relative to the current directory. */
  out?: string;
  /** Run only these steps (see STEP_NAMES); unknown names throw UnknownStepError. */
  steps?: string[];
  /** Resolve and check the plan; run nothing and write nothing. The plan is in `state.meta.plan`. */
  dryRun?: boolean;
  /** Rerun steps even if they already succeeded. */
  force?: boolean;
  /** Pipeline events are logged here; default: silent. */
  logger?: Logger;
}

export interface MiniInspectorResult {
  /** The root pipeline's result; `step_states` holds every step's, keyed `mini_inspector_e2e.<stage>.<step>`. */
  state: CompletedState;
  exitCode: ExitCode;
  /** The report, when assemble_report ran and succeeded. */
  report?: InspectionReport;
  /** The report's absolute path, when write_json ran and succeeded. */
  reportPath?: string;
  /** The output path that was used (as given, or the default). */
  outPath: string;
}

/**
 * Inspects one model. Step failures do not throw: they are in `state` and
 * `exitCode`. Whatever happens, the parsed document is released before returning.
 */
export async function runMiniInspector(opts: MiniInspectorOptions): Promise<MiniInspectorResult> {
  const pipeline = buildMiniInspector(opts.steps);
  const outPath = opts.out ?? defaultOutPath(opts.model);
  const context: Context = { [KEYS.modelPath]: opts.model, [KEYS.outPath]: outPath };
  try {
    const state = await pipeline.run(context, { dryRun: opts.dryRun ?? false, force: opts.force ?? false, logger: opts.logger });
    const result: MiniInspectorResult = { state, exitCode: exitCodeFrom(state), outPath };
    const report = context[KEYS.report];
    if (report !== undefined) result.report = report as InspectionReport;
    const reportPath = context[KEYS.reportPath];
    if (typeof reportPath === "string") result.reportPath = reportPath;
    return result;
  } finally {
    // cleanup_scene normally does this; it does not run after a failure or when left out of `steps`.
    releaseSceneState(context);
  }
}
