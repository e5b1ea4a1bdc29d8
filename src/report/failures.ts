/**
 * The errors section of the report: the failed leaf steps in tree order
 * (at most MAX_ERRORS), each with its facts, whether its failure was
 * tolerated, and its log tails; or the root's own error when no leaf
 * explains the failure.
 */
import type { CompletedStateJson, FailureKind } from "../core/completed-state.js";
import type { LogTail } from "./log-tails.js";
import { isNotRun, num, reasonOf, slurmIdOf, str } from "./states.js";
import type { State } from "./states.js";
import type { WalkedTree } from "./tree.js";

/** Failed steps listed in the errors section. */
export const MAX_ERRORS = 200;

export interface ErrorEntry {
  key: string;
  failure: FailureKind | null;
  error: string;
  exitCode: number | null;
  host: string | null;
  slurmId: string | null;
  reason: string | null;
  notRun: boolean;
  allowed: boolean;
  logs: LogTail[];
}

export interface FailedSteps {
  entries: ErrorEntry[];
  /** Failed leaf steps, listed or not. */
  failedCount: number;
  /** Failed leaf steps beyond MAX_ERRORS. */
  omitted: number;
}

/** A failure is tolerated when its node, or a node above it (a map item, a group child), may fail. */
function toleratedAbove(key: string, allowed: ReadonlyMap<string, boolean>): boolean {
  for (let k = key; k.length > 0; k = k.includes(".") ? k.slice(0, k.lastIndexOf(".")) : "") {
    if (allowed.get(k) === true) return true;
  }
  return false;
}

/** The errors section, from the walked tree; `logs` are the fetched tails by step key. */
export function failedSteps(walked: WalkedTree, result: CompletedStateJson, logs: ReadonlyMap<string, LogTail[]>): FailedSteps {
  const { states } = walked;
  const failedLeaves = walked.leaves.filter((k) => states[k] !== undefined && !states[k].success);
  const errors: ErrorEntry[] = failedLeaves.slice(0, MAX_ERRORS).map((key) => {
    const s = states[key] as State;
    return {
      key,
      failure: s.failure ?? null,
      error: s.error ?? "failed",
      exitCode: num(s.meta.exit_code),
      host: str(s.meta.host),
      slurmId: slurmIdOf(s),
      reason: isNotRun(s) ? reasonOf(s) : str(s.meta.reason),
      notRun: isNotRun(s),
      allowed: toleratedAbove(key, walked.allowed),
      logs: logs.get(key) ?? [],
    };
  });
  // A failure no leaf explains (unusable state files, a composite that did not finish): the root's own error.
  if (!result.success && failedLeaves.length === 0) {
    errors.push({
      key: walked.rootKey,
      failure: result.failure ?? null,
      error: result.error ?? "failed",
      exitCode: null,
      host: null,
      slurmId: null,
      reason: null,
      notRun: isNotRun(result),
      allowed: false,
      logs: [],
    });
  }
  return { entries: errors, failedCount: failedLeaves.length, omitted: Math.max(0, failedLeaves.length - MAX_ERRORS) };
}
