import { Pipeline, StepGroup } from "../../src/index.js";
import type { PipelineStep } from "../../src/index.js";
import { compile } from "../../src/compiler/compile.js";
import type { CompileInput, Renderer } from "../../src/compiler/compile.js";
import { LOCAL_TARGET_DEFAULTS } from "../../src/compiler/target.js";
import type { CompileTarget } from "../../src/compiler/target.js";
import { CommandStep } from "../../src/spec/command-step.js";
import type { CommandStepOptions } from "../../src/spec/command-step.js";
import type { PlanStep } from "../../src/plan/plan.js";
import type { LeafUnit } from "../../src/compiler/units.js";
import { step } from "../render/fixtures.js";

/** A renderer that records what it was given instead of running templates: the compiler's structure is tested alone. */
export const structureRenderer: Renderer = {
  job: (job) => `# ${job.id} ${job.steps.join(" ")}\n`,
  submit: (plan) => `# submit ${plan.jobs.map((j) => j.id).join(" ")}\n`,
  lib: () => "# lib\n",
};

export const target = (over: Partial<CompileTarget> = {}): CompileTarget => ({ ...LOCAL_TARGET_DEFAULTS, workdir: "/tmp/runs", ...over });

export const cmd = (name: string, over: Partial<CommandStepOptions> = {}): CommandStep =>
  new CommandStep({ name, command: `echo ${name}`, ...over });

export const pipe = (name: string, steps: PipelineStep[], over: Record<string, unknown> = {}): Pipeline =>
  new Pipeline({ name, steps, ...over });

export const group = (name: string, steps: PipelineStep[], over: Record<string, unknown> = {}): StepGroup =>
  new StepGroup({ name, steps, parallel: true, ...over });

export function compileTree(root: PipelineStep, over: Partial<CompileInput> = {}) {
  return compile({ root, context: {}, runId: "run1", target: target(), renderer: structureRenderer, ...over });
}

/** A leaf step as the plan holds it, built by hand for the unit tests of single phases. */
export const planStepOf = (key: string, over: Partial<PlanStep> = {}): PlanStep => step(key, "true", { signature: "000000000000", idempotent: false, ...over });

export const leafUnit = (key: string, over: Partial<Omit<LeafUnit, "type" | "leaf">> = {}): LeafUnit => ({
  type: "leaf",
  leaf: planStepOf(key),
  resources: {},
  fusable: true,
  coe: false,
  ...over,
});
