export * from "./core/index.js";
export * from "./spec/index.js";
export * from "./cluster/index.js";
export { compile, RUN_ID_PATTERN } from "./compiler/compile.js";
export type { CompileInput, Renderer, RenderContext } from "./compiler/compile.js";
export { CompileError } from "./compiler/errors.js";
export { formatPlan } from "./compiler/format.js";
export type { PlanFormat } from "./compiler/format.js";
export type { CompileTarget } from "./compiler/target.js";
export type * from "./plan/plan.js";
export type { RetryPolicy } from "./plan/retry.js";
export { resourcesSchema, slurmTimeToSeconds } from "./plan/resources.js";
export type { Resources } from "./plan/resources.js";
export { stateFileSchema } from "./plan/state-file.js";
export type { StateFile } from "./plan/state-file.js";
export * from "./slurm/index.js";
// The run lifecycle: submit (to a cluster or this machine), watch with typed progress events, collect, cancel.
export { submit, getRun, Run, changedEvents } from "./app/api.js";
export type { ProgressEvent, SubmitRequest, WatchOptions as RunWatchOptions } from "./app/api.js";
export type { InlinePipeline, PipelineSource } from "./app/prepare.js";
// The CLI's `--json` watch events (`status --watch --json`, `submit --wait --json`), for scripts that read them.
export { watchEventSchema } from "./app/progress-events.js";
export type { WatchStreamEvent } from "./app/progress-events.js";
export type { RunStatus, StepResult } from "./app/status.js";
export type { CollectOutcome } from "./app/collect.js";
export type { CancelOutcome, ExecutorKind } from "./app/executor.js";
export type { PassphrasePrompt } from "./app/connect.js";
export { RunStore } from "./runs/index.js";
export type { JobStatus, RunRecord, StateCount, TaskKind, TaskStatus, TaskTable } from "./runs/index.js";
