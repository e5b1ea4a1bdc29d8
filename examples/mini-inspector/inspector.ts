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

export const PIPELINE_NAME = "mini_inspector_e2e";

/** The seven steps, in the order they run. */
export const STEP_NAMES = [
  "prepare_scene",
  "import_model",
  "collect_meshes",
  "compute_counts",
  "assemble_report",
  "write_json",
  "cleanup_scene",
] as const;

export type StepName = (typeof STEP_NAMES)[number];

/** The four stages (sub-pipelines) and the steps each holds. */
export const STAGES: readonly { name: string; steps: readonly StepName[] }[] = [
  { name: "scene_prep", steps: ["prepare_scene", "import_model"] },
  { name: "analysis", steps: ["collect_meshes", "compute_counts"] },
  { name: "reporting", steps: ["assemble_report", "write_json"] },
  { name: "cleanup", steps: ["cleanup_scene"] },
];

const FACTORIES: Record<StepName, () => PipelineStep> = {
  prepare_scene: () => new PrepareSceneStep(),
  import_model: () => new ImportModelStep(),
  collect_meshes: () => new CollectMeshesStep(),
  compute_counts: () => new ComputeCountsStep(),
  assemble_report: () => new AssembleReportStep(),
  write_json: () => new WriteJsonStep(),
  cleanup_scene: () => new CleanupSceneStep(),
};

/** A `steps` list named a step that does not exist (or named none). */
export class UnknownStepError extends Error {
  override name = "UnknownStepError";
  readonly valid: readonly string[] = STEP_NAMES;
}

/**
 * Checks a list of step names and returns them deduplicated in canonical
 * order; undefined means all seven. Throws UnknownStepError, listing the
 * valid names, for an unknown name or an empty list.
 */
export function resolveStepNames(names?: readonly string[]): StepName[] {
  if (names === undefined) return [...STEP_NAMES];
  const valid = `valid steps: ${STEP_NAMES.join(", ")}`;
  const wanted = new Set(names.map((n) => n.trim()).filter((n) => n !== ""));
  if (wanted.size === 0) throw new UnknownStepError(`no step names given (${valid})`);
  const unknown = [...wanted].filter((n) => !(STEP_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new UnknownStepError(`unknown step${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => `'${n}'`).join(", ")} (${valid})`);
  }
  return STEP_NAMES.filter((n) => wanted.has(n));
}

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
