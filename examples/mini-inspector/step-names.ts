// The mini inspector's step names and stages, apart from the steps themselves, so that the CLI can
// describe the \`inspect\` command without loading the inspector and its glTF library.

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

