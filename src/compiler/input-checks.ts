/** The compiler's first phase: what reaches the cluster must be able to (the context as environment strings, only command steps). */
import type { PipelineStep } from "../core/step.js";
import { CommandStep } from "../spec/command-step.js";
import { contextKeyProblem } from "../spec/context-keys.js";
import { isComposite } from "./tree.js";

/** Largest single `NAME=value` string Linux passes to a process (MAX_ARG_STRLEN - 1). */
const MAX_ENV_STRING_BYTES = 131_071;

/** The context as the strings jobs export, sorted by key; every value that cannot be one is a problem. */
export function contextStrings(context: Record<string, unknown>, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(context).sort()) {
    const value = context[key];
    if (key === "step_states") continue;
    const problem = contextKeyProblem(key);
    if (problem) {
      problems.push(problem);
      continue;
    }
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      problems.push(`context value '${key}' must be a string, number or boolean to reach a cluster job`);
      continue;
    }
    const text = String(value);
    if (text.includes("\0")) problems.push(`context value '${key}' contains a NUL byte, which no environment variable can hold`);
    else if (Buffer.byteLength(text) + key.length + 1 > MAX_ENV_STRING_BYTES) {
      problems.push(`context value '${key}' is ${Buffer.byteLength(text)} bytes; Linux passes at most ${MAX_ENV_STRING_BYTES} bytes per environment variable (put large data in a file)`);
    } else out[key] = text;
  }
  return out;
}

/** One problem naming every leaf that is not a CommandStep: only a shell command can run in a job. */
export function refuseInProcessSteps(root: PipelineStep, problems: string[]): void {
  const offenders: string[] = [];
  const walk = (step: PipelineStep, key: string): void => {
    if (isComposite(step)) {
      for (const c of step.children) walk(c, `${key}.${c.name}`);
    } else if (!(step instanceof CommandStep)) {
      offenders.push(`${key} (${step.constructor.name})`);
    }
  };
  walk(root, root.name);
  if (offenders.length > 0) {
    problems.push(
      `these steps exist only as in-process functions and cannot run on a cluster: ${offenders.join(", ")}; ` +
        `make them CommandSteps (a shell command) or run the pipeline in-process`,
    );
  }
}
