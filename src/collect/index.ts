export { readStateDir, parseStateText, keyOfStateFile, STATE_TEMP_FILE } from "./read-states.js";
export type { ParsedState, StateDirResult, StateProblem } from "./read-states.js";
export { mergeStates, stateFromFile, baseSlurmState, isFinalSlurmState } from "./merge.js";
export type { JobFact, MergeOptions, TaskFact } from "./merge.js";
export { buildStepIndex, arrayTaskIds, bodyOfTask, concreteKey } from "./job-index.js";
export type { StepSlot } from "./job-index.js";
