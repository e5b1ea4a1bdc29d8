/**
 * Why a local run failed, for people: the last lines of each failed step's
 * stderr (from its log in the run directory), and for exit status 127
 * ("command not found") where to look first: steps run in work/, where only
 * the spec's `bundle:` paths are copied.
 */
import type { CompletedState } from "../core/completed-state.js";
import { slotLogOf } from "../core/log-section.js";

export interface FailureTailOptions {
  /** Failed steps shown (the first ones, in step order). */
  steps?: number;
  /** Last lines of each stderr. */
  lines?: number;
}

export const EXIT_127_HINT =
  "exit 127 is \"command not found\": steps run in the run's work/ directory, where only the spec's " +
  "bundle: paths are copied; add a script or tool of the spec's directory to bundle: (bundle: [tool.sh]), or put it on PATH";

/** The failed steps that ran (not the pipelines or groups above them, not steps that never started). */
function failedLeaves(state: CompletedState): Array<[string, CompletedState]> {
  const entries = Object.entries(state.step_states ?? {});
  const parents = new Set<string>();
  for (const [key, s] of entries) {
    if (s.success) continue;
    for (let dot = key.lastIndexOf("."); dot > 0; dot = key.lastIndexOf(".", dot - 1)) parents.add(key.slice(0, dot));
  }
  return entries.filter(([key, s]) => !s.success && s.meta.not_run !== true && !parents.has(key));
}

export interface FailedStepTail {
  step: string;
  error: string;
  exit_code: number | null;
  /** The stderr log, relative to the run directory. */
  log: string | null;
  /** Its last lines (control sequences removed). */
  stderr_tail: string[];
  /** Why there is no tail (no such file...), or null. */
  missing: string | null;
  hint: string | null;
}

/** The first failed steps with the ends of their stderr; `more` counts the failed steps left out. */
export async function failedStepTails(runDir: string, state: CompletedState, options: FailureTailOptions = {}): Promise<{ tails: FailedStepTail[]; more: number }> {
  const failed = failedLeaves(state);
  if (failed.length === 0) return { tails: [], more: 0 };
  const shown = failed.slice(0, options.steps ?? 3);
  const keys = shown.map(([key]) => key);
  // The report's file reader, loaded only when a step failed: a run that succeeds never loads the report code.
  const { interpretAnswers, readLocalFiles, reportRequests } = await import("../report/files.js");
  // A packed item's logs are a section of its task's slot log, which its state names.
  const slotLogs = new Map<string, string>();
  for (const [key, s] of shown) {
    const log = slotLogOf(s.meta);
    if (log !== null) slotLogs.set(key, log);
  }
  const { logs } = interpretAnswers(keys, [], await readLocalFiles(runDir, reportRequests(keys, [], slotLogs)), slotLogs);
  const tails = shown.map(([key, s]): FailedStepTail => {
    const err = logs.get(key)?.find((t) => t.stream === "stderr");
    const exit = typeof s.meta.exit_code === "number" ? s.meta.exit_code : null;
    return {
      step: key,
      error: (s.error ?? s.failure ?? "failed").replace(/\s+/g, " ").slice(0, 300),
      exit_code: exit,
      log: err?.path ?? null,
      stderr_tail: err?.lines.slice(-(options.lines ?? 10)) ?? [],
      missing: err?.missing ?? null,
      hint: exit === 127 ? EXIT_127_HINT : null,
    };
  });
  return { tails, more: failed.length - shown.length };
}

/** The tails as lines for people (empty when nothing failed). */
export function formatFailureTails(result: { tails: FailedStepTail[]; more: number }): string {
  if (result.tails.length === 0) return "";
  const out: string[] = [];
  for (const t of result.tails) {
    const where = t.log === null ? "" : t.missing !== null ? ` (${t.log}: ${t.missing})` : t.stderr_tail.length === 0 ? ` (${t.log} is empty)` : `; the end of ${t.log}:`;
    out.push(`hpcpipe: ${t.step} failed: ${t.error}${where}`);
    for (const line of t.stderr_tail) out.push(`  | ${line}`);
    if (t.hint !== null) out.push(`  hint: ${t.hint}`);
  }
  if (result.more > 0) out.push(`hpcpipe: ... and ${result.more} more failed step(s): see the summary and logs/`);
  return `${out.join("\n")}\n`;
}

/** Lines for stderr (empty when nothing failed). */
export async function failureTails(runDir: string, state: CompletedState, options: FailureTailOptions = {}): Promise<string> {
  return formatFailureTails(await failedStepTails(runDir, state, options));
}
