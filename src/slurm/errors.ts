// Typed failures of SLURM commands, recognised from their exit code and stderr
// (texts observed on SLURM 22.05.8; see test/fixtures/slurm/).

import { isTransientSlurmError } from "./transient.js";
import { preview } from "../core/preview.js";

/** What running one argv returned; `code` is null when the process died by a signal. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one command given as argv (never a shell string); the transport provides it. */
export type CommandExecutor = (argv: string[]) => Promise<CommandResult>;


/** A SLURM command failed or printed something hpcpipe cannot read; keeps everything it printed. */
export class SchedulerError extends Error {
  readonly argv: readonly string[];
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when retrying the same command later may succeed (controller busy, socket timeout). */
  readonly transient: boolean;

  constructor(message: string, argv: readonly string[], result: CommandResult, options?: { cause?: unknown }) {
    const detail = result.stderr.trim();
    super(detail ? `${message}: ${detail}` : message, options);
    this.name = "SchedulerError";
    this.argv = [...argv];
    this.code = result.code;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.transient = isTransientSlurmError(result.stderr);
  }
}

/** squeue/scontrol asked about exactly one job id that slurmctld does not hold (purged or never existed). */
export class InvalidJobIdError extends SchedulerError {
  constructor(argv: readonly string[], result: CommandResult) {
    super("SLURM does not know the job id", argv, result);
    this.name = "InvalidJobIdError";
  }
}

/** sacct on a cluster without accounting storage (accounting_storage/none): use scontrol instead. */
export class AccountingDisabledError extends SchedulerError {
  constructor(argv: readonly string[], result: CommandResult) {
    super("SLURM accounting storage is disabled on this cluster", argv, result);
    this.name = "AccountingDisabledError";
  }
}

/** sacct could not reach slurmdbd or slurmdbd its database: accounting exists but is down right now. */
export class AccountingUnavailableError extends SchedulerError {
  constructor(argv: readonly string[], result: CommandResult) {
    super("SLURM accounting database is unavailable", argv, result);
    this.name = "AccountingUnavailableError";
  }
}

/** scancel/scontrol on a job of another user (scancel exits 210 here). */
export class PermissionDeniedError extends SchedulerError {
  constructor(argv: readonly string[], result: CommandResult) {
    super("SLURM refused the operation (permission denied)", argv, result);
    this.name = "PermissionDeniedError";
  }
}

/** A line of SLURM output that does not have the expected shape. */
export class SlurmOutputError extends Error {
  constructor(
    message: string,
    readonly line: string,
    readonly lineNumber: number,
  ) {
    super(`${message} (line ${lineNumber}: ${preview(line)})`);
    this.name = "SlurmOutputError";
  }
}

/** The typed error for a failed command, chosen from what it printed on stderr. */
export function failureOf(argv: readonly string[], result: CommandResult): SchedulerError {
  const stderr = result.stderr;
  if (/Slurm accounting storage is disabled/i.test(stderr)) return new AccountingDisabledError(argv, result);
  if (
    /Unable to connect to database|Problem talking to the database|slurm_persist_conn_open|slurmdbd.*(?:not responding|Connection refused)/i.test(
      stderr,
    )
  ) {
    return new AccountingUnavailableError(argv, result);
  }
  if (/Invalid job id specified/i.test(stderr)) return new InvalidJobIdError(argv, result);
  if (/Access\/permission denied|Permission denied/i.test(stderr)) return new PermissionDeniedError(argv, result);
  const name = argv[0] ?? "command";
  return new SchedulerError(`${name} exited with ${result.code === null ? "a signal" : `code ${result.code}`}`, argv, result);
}

/** Throws the typed error when the command failed (non-zero exit, or an accounting failure on stderr whatever the exit code). */
export function checkResult(argv: readonly string[], result: CommandResult): CommandResult {
  if (result.code !== 0) throw failureOf(argv, result);
  if (/Slurm accounting storage is disabled|Unable to connect to database|Problem talking to the database/i.test(result.stderr)) {
    throw failureOf(argv, result);
  }
  return result;
}
