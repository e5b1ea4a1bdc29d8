import { CliError, CliExit } from "../src/cli-exit.js";
import { ConfigError } from "../src/cluster/index.js";
import { CompileError } from "../src/compiler/errors.js";
import { ResumeError } from "../src/app/resume.js";
import { parseSetValues } from "../src/app/set-values.js";
import { BundleError, SubmitFailedError, SubmitOutputError } from "../src/app/submit.js";
import { RunStateError, RunStoreError, UnknownRunError } from "../src/runs/index.js";
import { SchedulerError } from "../src/slurm/index.js";
import { SpecError } from "../src/spec/index.js";
import { StoreError } from "../src/store/index.js";
import { ConnectionError, RemoteCommandError, TransportError } from "../src/transport/index.js";

/** Maps the library's known errors to a CliError with the right exit code; anything else is rethrown (exit 70). */
export function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ConfigError) return new CliError(err.message, CliExit.CONFIG, { cause: err });
  if (err instanceof SpecError) {
    const missing = err.problems.some((p) => p.path === "" && p.expected.includes("no such file"));
    // Only `--set` values were wrong: the command line, not the spec.
    const usage = err.problems.length > 0 && err.problems.every((p) => p.path.startsWith("--set "));
    return new CliError(err.message, missing ? CliExit.NO_INPUT : usage ? CliExit.USAGE : CliExit.DATA, { cause: err });
  }
  if (err instanceof ResumeError) return new CliError(err.message, CliExit.USAGE, { cause: err });
  if (err instanceof CompileError) return new CliError(`cannot compile the pipeline:\n  ${err.problems.join("\n  ")}`, CliExit.DATA, { cause: err });
  // The cluster workflow: connection and host key 69, scheduler 75, run records and cluster data 65, unknown run 66.
  if (err instanceof ConnectionError) return new CliError(`cannot reach the cluster (${err.host}:${err.port}): ${err.message}`, CliExit.UNAVAILABLE, { cause: err });
  if (err instanceof RemoteCommandError || err instanceof SchedulerError || err instanceof SubmitFailedError) return new CliError(err.message, CliExit.SCHEDULER, { cause: err });
  if (err instanceof TransportError) return new CliError(err.message, CliExit.UNAVAILABLE, { cause: err });
  if (err instanceof UnknownRunError || err instanceof BundleError) return new CliError(err.message, CliExit.NO_INPUT, { cause: err });
  if (err instanceof RunStoreError || err instanceof RunStateError || err instanceof SubmitOutputError || err instanceof StoreError) return new CliError(err.message, CliExit.DATA, { cause: err });
  throw err;
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

