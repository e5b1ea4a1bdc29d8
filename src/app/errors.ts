/**
 * What kind of failure a library error is, for callers that must tell them
 * apart without knowing every error class (the CLI's exit codes, an API
 * caller's retry policy). The one place that knows the classes of every
 * layer (spec, config, compiler, run store, scheduler, transport).
 */
import { ConfigError } from "../cluster/index.js";
import { CompileError } from "../compiler/errors.js";
import { RunStateError, RunStoreError, UnknownRunError } from "../runs/index.js";
import { SchedulerError } from "../slurm/index.js";
import { SpecError } from "../spec/index.js";
import { StoreError } from "../store/index.js";
import { ConnectionError, RemoteCommandError, RemoteReadError, TransportError } from "../transport/index.js";
import { ResumeError } from "./resume.js";
import { BundleError, SubmitFailedError, SubmitOutputError } from "./submit.js";

export type ErrorKind =
  /** A cluster config is wrong. */
  | "config"
  /** A file the user named does not exist (a spec, a run, a bundle path). */
  | "missing-input"
  /** An input is malformed (a spec, a run record, state data from the cluster). */
  | "bad-data"
  /** The request contradicts itself (resume with other inputs). */
  | "usage"
  /** The pipeline cannot be compiled for the cluster. */
  | "compile"
  /** The cluster cannot be reached (network, host key, login). */
  | "unreachable"
  /** The scheduler or a remote command failed. */
  | "scheduler";

export interface ClassifiedError {
  kind: ErrorKind;
  /** The message to show (a compile error lists its problems). */
  message: string;
}

/** The kind of a known library error, or null for anything else (a bug). */
export function classifyError(err: unknown): ClassifiedError | null {
  if (!(err instanceof Error)) return null;
  const as = (kind: ErrorKind, message = err.message): ClassifiedError => ({ kind, message });
  if (err instanceof ConfigError) return as("config");
  if (err instanceof SpecError) {
    if (err.problems.some((p) => p.path === "" && p.expected.includes("no such file"))) return as("missing-input");
    // Only `--set` values were wrong: the command line, not the spec.
    return as(err.problems.length > 0 && err.problems.every((p) => p.path.startsWith("--set ")) ? "usage" : "bad-data");
  }
  if (err instanceof ResumeError) return as("usage");
  if (err instanceof CompileError) return as("compile", `cannot compile the pipeline:\n  ${err.problems.join("\n  ")}`);
  if (err instanceof ConnectionError) return as("unreachable", `cannot reach the cluster (${err.host}:${err.port}): ${err.message}`);
  if (err instanceof RemoteCommandError || err instanceof SchedulerError || err instanceof SubmitFailedError) return as("scheduler");
  if (err instanceof TransportError) return as("unreachable");
  if (err instanceof UnknownRunError || err instanceof BundleError) return as("missing-input");
  if (err instanceof RunStoreError || err instanceof RunStateError || err instanceof SubmitOutputError || err instanceof RemoteReadError || err instanceof StoreError) return as("bad-data");
  return null;
}
