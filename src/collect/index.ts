export { readStateDir, readStateFile, parseStateText, keyOfStateFile, STATE_TEMP_FILE } from "./read-states.js";
export type { ParsedState, StateDirResult, StateProblem } from "./read-states.js";
export { mergeStates, mergeFromSource, treeHasKey, stateFromFile, baseSlurmState, isFinalSlurmState } from "./merge.js";
export { DirSource, mapSource, SpoolSource } from "./state-source.js";
export type { StateSource } from "./state-source.js";
export type { JobFact, MergeOptions, TaskFact } from "./merge.js";
export { buildStepIndex, arrayTaskIds, bodyOfTask, concreteKey } from "./job-index.js";
export type { StepSlot } from "./job-index.js";
