/**
 * Failed steps' logs in the report: which ones to fetch, where they are in
 * the run directory, and the cleaned last lines shown for each.
 */
import type { CompletedStateJson } from "../core/completed-state.js";
import { isNotRun, str } from "./states.js";
import { walkTree } from "./tree.js";
import { slotLogOf } from "../core/log-section.js";
import type { ReportPlan } from "./tree.js";

/** Lines of a failed step's log shown in the report. */
export const LOG_TAIL_LINES = 40;
/** Bytes read from the end of a log to find those lines. */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Characters kept of one log line. */
export const LOG_LINE_MAX_CHARS = 400;
/** Failed steps whose logs are fetched and shown (the others are listed without). */
export const MAX_LOG_TAILS = 50;

export interface LogTail {
  stream: "stdout" | "stderr";
  /** Relative to the run directory (`logs/<key>.out`). */
  path: string;
  lines: string[];
  /** Earlier lines were left out. */
  truncated: boolean;
  /** Why there is no tail (no such file, a symlink, not fetched...); null when there is one. */
  missing: string | null;
}

// ---------------------------------------------------------------------------- what to fetch

/**
 * The step keys whose logs the report shows: failed leaf steps that may have run, at most MAX_LOG_TAILS, in tree order.
 * `slotLogs` is given the slot log of each that is a packed item (its state's meta.log).
 */
export function logTargets(plan: ReportPlan | null, result: CompletedStateJson, attempt = 1, slotLogs?: Map<string, string>): string[] {
  const { leaves, states } = walkTree(plan, result, attempt);
  const keys = leaves
    .filter((key) => {
      const s = states[key];
      if (s === undefined || s.success) return false;
      // A step whose job never started has no log; one killed before it wrote its state (TIMEOUT, NODE_FAIL) may.
      return !(isNotRun(s) && (s.meta.slurm_reason === "DependencyNeverSatisfied" || /^(CANCELLED|PENDING)/.test(str(s.meta.slurm_state) ?? "")));
    })
    .slice(0, MAX_LOG_TAILS);
  for (const key of keys) {
    const log = slotLogOf(states[key]?.meta);
    if (log !== null) slotLogs?.set(key, log);
  }
  return keys;
}

/**
 * Logs of a step, relative to the run directory; null when the key could name a file outside `logs/`.
 * A packed item (`slotLog`, from its state's meta.log) has them in its task's slot logs, as a section.
 */
export function logPaths(key: string, slotLog?: string): { stdout: string; stderr: string; section?: true } | null {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/.test(key) || key.length > 1024) return null;
  if (slotLog !== undefined && slotLogOf({ log: slotLog }) !== null) return { stdout: `${slotLog}.out`, stderr: `${slotLog}.err`, section: true };
  return { stdout: `logs/${key}.out`, stderr: `logs/${key}.err` };
}

// CSI and OSC escape sequences, then any other control character but tab.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/**
 * The last `LOG_TAIL_LINES` lines of a log's end. `cutAtStart` says the bytes
 * do not begin at the start of the file (so the first line may be partial and
 * is dropped). Terminal escapes and control characters are removed; long lines
 * are shortened. The lines are text for the page, escaped by the renderer.
 */
export function tailLines(bytes: Buffer, cutAtStart: boolean, stream: LogTail["stream"], path: string): LogTail {
  let lines = bytes.toString("utf8").replace(/\r\n/g, "\n").replace(/\r/g, "\n").split("\n");
  if (cutAtStart && lines.length > 1) lines = lines.slice(1);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const truncated = cutAtStart || lines.length > LOG_TAIL_LINES;
  lines = lines.slice(-LOG_TAIL_LINES).map((line) => {
    const clean = line.replace(ANSI, "").replace(CONTROL, "\uFFFD");
    return clean.length > LOG_LINE_MAX_CHARS ? `${clean.slice(0, LOG_LINE_MAX_CHARS)}… (${clean.length - LOG_LINE_MAX_CHARS} more characters)` : clean;
  });
  return { stream, path, lines, truncated, missing: null };
}
