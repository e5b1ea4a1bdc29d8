import { CliError, CliExit } from "../src/cli-exit.js";
import type { CliExitCode } from "../src/cli-exit.js";
import { classifyError } from "../src/app/errors.js";
import type { ErrorKind } from "../src/app/errors.js";
import { parseSetValues } from "../src/app/set-values.js";

/** The exit code of each kind of library error (see the README's exit codes). */
const EXIT_OF: Readonly<Record<ErrorKind, CliExitCode>> = {
  config: CliExit.CONFIG,
  "missing-input": CliExit.NO_INPUT,
  "bad-data": CliExit.DATA,
  usage: CliExit.USAGE,
  compile: CliExit.DATA,
  unreachable: CliExit.UNAVAILABLE,
  scheduler: CliExit.SCHEDULER,
};

/** Maps the library's known errors to a CliError with the right exit code; anything else is rethrown (exit 70). */
export function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  const known = classifyError(err);
  if (known === null) throw err;
  return new CliError(known.message, EXIT_OF[known.kind], { cause: err });
}

/** Runs a command action, turning known library errors into CliErrors. */
export async function guarded<T>(action: () => Promise<T> | T): Promise<T> {
  try {
    return await action();
  } catch (err) {
    throw asCliError(err);
  }
}

/** Collects a repeated option (`--set a=1 --set b=2`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseSetOption(pairs: string[]): Record<string, string> {
  try {
    return parseSetValues(pairs);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), CliExit.USAGE);
  }
}

