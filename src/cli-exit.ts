/**
 * Exit codes of the CLI's own failures. 0-4 belong to the pipeline result
 * (ExitCode); these follow sysexits.h so they never collide with them.
 */
export const CliExit = {
  /** Bad command line: unknown option, missing argument. */
  USAGE: 64,
  /** A pipeline spec, state file or other input is malformed. */
  DATA: 65,
  /** An input file does not exist or cannot be read. */
  NO_INPUT: 66,
  /** The cluster cannot be reached: connection, authentication, host key. */
  UNAVAILABLE: 69,
  /** A bug: an unexpected error inside hpcpipe. */
  SOFTWARE: 70,
  /** A local file could not be written. */
  CANT_CREATE: 73,
  /** The scheduler refused or failed a command (sbatch, squeue, scancel). */
  SCHEDULER: 75,
  /** A cluster config is malformed or names something unknown. */
  CONFIG: 78,
  /** Interrupted by SIGINT. */
  INTERRUPTED: 130,
} as const;

export type CliExitCode = (typeof CliExit)[keyof typeof CliExit];

/** An error the CLI reports in one clear message and turns into an exit code. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: CliExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
