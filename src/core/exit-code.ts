import type { CompletedState, FailureKind } from "./completed-state.js";

/** Process exit codes for a pipeline result; the CLI's own errors use codes above these. */
export enum ExitCode {
  OK = 0,
  MISSING_REQUIREMENT = 1,
  STEP_EXCEPTION = 2,
  INVALID_RETURN = 3,
  STEP_FAILED = 4,
}

const BY_KIND: Record<FailureKind, ExitCode> = {
  MISSING_REQUIREMENT: ExitCode.MISSING_REQUIREMENT,
  STEP_EXCEPTION: ExitCode.STEP_EXCEPTION,
  INVALID_RETURN: ExitCode.INVALID_RETURN,
  STEP_FAILED: ExitCode.STEP_FAILED,
};

/** Maps a (possibly nested) result to the exit code of its root cause. */
export function exitCodeFrom(state: Pick<CompletedState, "success" | "failure">): ExitCode {
  if (state.success) return ExitCode.OK;
  return state.failure ? BY_KIND[state.failure] : ExitCode.STEP_FAILED;
}
