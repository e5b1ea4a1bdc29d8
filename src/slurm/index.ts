export { JOB_STATES, isFinal, isFinalText, isSuccess, translateState, unknownJobState } from "./states.js";
export type { JobState, TranslatedState } from "./states.js";
export {
  AccountingDisabledError,
  AccountingUnavailableError,
  InvalidJobIdError,
  PermissionDeniedError,
  SchedulerError,
  SlurmOutputError,
  checkResult,
  failureOf,
} from "./errors.js";
export type { CommandExecutor, CommandResult } from "./errors.js";
export { assertJobIds, sacctArgv, sacctRunsArgv, sacctRunsArgvOf, sacctTimesArgv, sbatchArgv, scancelArgv, scontrolArgv, squeueArgv } from "./commands.js";
export type { DependencyType, SbatchOptions, SqueueOptions } from "./commands.js";
export {
  SACCT_FIELDS,
  SACCT_TIME_FIELDS,
  SQUEUE_FORMAT,
  dedupeTasks,
  expandArrayRange,
  parseExitCode,
  parsePrintedJobId,
  parseSacct,
  parseSacctAnswer,
  parseSacctRunsAnswer,
  parseSacctTimes,
  parseSbatchParsable,
  parseScontrol,
  parseScontrolAnswer,
  parseScontrolLine,
  parseSqueue,
  parseSqueueAnswer,
  arrayRanges,
  taskKey,
} from "./parse.js";
export type { JobTimesRecord, RecordSource, TaskRecord } from "./parse.js";
export { TaskAnswer } from "./task-answer.js";
export type { ResolveOrder, SegmentView } from "./task-answer.js";
export { SACCT_RUNS_ANY_OWN, SACCT_RUNS_AWK, SACCT_RUNS_FILTER_FAILED, SACCT_RUNS_NAME, SACCT_RUNS_SCRIPT } from "./sacct-runs.js";
export { SlurmScheduler, unknownRecord } from "./scheduler.js";
export type { JobAnswerMap, JobStatusMap, SlurmSchedulerOptions, StatusOptions } from "./scheduler.js";
export { DEFAULT_POLL_POLICY, PollInterval, busyCapOf, nextPollDelay, pollPolicy, statusFingerprint } from "./poll.js";
export type { PollPolicy, PollStep } from "./poll.js";
export { TRANSIENT_SLURM_ERRORS, isTransientSlurmError } from "./transient.js";
export { parseTaggedSacct, parseTaggedSqueue, RECONCILE_SQUEUE_FORMAT, taggedSacctArgv, taggedSqueueArgv } from "./tagged-jobs.js";
export { parseSubmitOutput, JOB_LINE_PREFIX } from "./submit-output.js";
