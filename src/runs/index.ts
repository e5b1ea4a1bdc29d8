// Local records of submitted runs (the run store) and what the scheduler says about their jobs.
export { RUN_ID_PATTERN, RUN_PHASES, runRecordSchema } from "./record.js";
export type { RunPhase, RunRecord } from "./record.js";
export { RunStore, defaultStoreDir } from "./store.js";
export { RunStateError, RunStoreError, UnknownRunError } from "./errors.js";
export { formatRunsTable, runListEntry } from "./format.js";
export type { RunListEntry } from "./format.js";
export {
  NOT_SUBMITTED,
  aggregateState,
  carryFinalStates,
  jobFactsOf,
  jobLabel,
  mapJobStatuses,
  phaseOf,
  totalCounts,
} from "./job-status.js";
export type { JobStatus, PhaseCounts, TaskPhase, TaskStatus } from "./job-status.js";
export { JSON_TASKS_MAX, TaskTable } from "./task-table.js";
export type { StateCount, TaskKind } from "./task-table.js";
