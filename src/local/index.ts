export { runPlanLocally, jobFactsOf, checkPlanJobs } from "./executor.js";
export type { LocalJobResult, LocalJobState, LocalRunEvent, LocalRunOptions, LocalRunResult, LocalTaskResult } from "./executor.js";
export { materialiseBundle, bundlePath, checkRunDir, LocalRunError, RUN_SUBDIRS } from "./bundle.js";
export { parseSbatchDirectives, parseSignalOption } from "./sbatch-directives.js";
export type { SbatchDirectives, WarnSignal } from "./sbatch-directives.js";
