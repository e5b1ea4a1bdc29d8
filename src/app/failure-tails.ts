/**
 * Why a local run failed, for people: the last lines of each failed step's
 * stderr (from its log in the run directory), and for exit status 127
 * ("command not found") where to look first: steps run in work/, where only
 * the spec's `bundle:` paths are copied.
 */
import type { CompletedState } from "../core/completed-state.js";
import { interpretAnswers, readLocalFiles, reportRequests } from "../report/files.js";

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

/** Lines for stderr (empty when nothing failed). */
export async function failureTails(runDir: string, state: CompletedState, options: FailureTailOptions = {}): Promise<string> {
  const failed = failedLeaves(state);
  if (failed.length === 0) return "";
  const shown = failed.slice(0, options.steps ?? 3);
  const keys = shown.map(([key]) => key);
  const { logs } = interpretAnswers(keys, [], await readLocalFiles(runDir, reportRequests(keys, [])));
  const out: string[] = [];
  for (const [key, s] of shown) {
    const err = logs.get(key)?.find((t) => t.stream === "stderr");
    const lines = err?.lines.slice(-(options.lines ?? 10)) ?? [];
    const where = err === undefined ? "" : err.missing !== null ? ` (${err.path}: ${err.missing})` : lines.length === 0 ? ` (${err.path} is empty)` : `; the end of ${err.path}:`;
    out.push(`hpcpipe: ${key} failed: ${(s.error ?? s.failure ?? "failed").replace(/\s+/g, " ").slice(0, 300)}${where}`);
    for (const line of lines) out.push(`  | ${line}`);
    if (s.meta.exit_code === 127) out.push(`  hint: ${EXIT_127_HINT}`);
  }
  if (failed.length > shown.length) out.push(`hpcpipe: ... and ${failed.length - shown.length} more failed step(s): see the summary and logs/`);
  return `${out.join("\n")}\n`;
}
