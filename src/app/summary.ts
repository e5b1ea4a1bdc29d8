import type { CompletedState } from "../core/completed-state.js";
import { exitCodeFrom } from "../core/exit-code.js";

/** One line per recorded step (namespaced key, result, seconds, error), then the overall result and exit code. */
export function formatResultSummary(state: CompletedState, title: string): string {
  const entries = Object.entries(state.step_states ?? {});
  const width = Math.min(70, Math.max(4, ...entries.map(([k]) => k.length)));
  const lines = [title, `${"step".padEnd(width)}  result             time`];
  for (const [key, s] of entries) {
    const result = s.success ? "ok" : s.meta.not_run ? "not run" : (s.failure ?? "failed");
    const time = `${s.duration_s.toFixed(2)}s`;
    const error = s.success ? "" : `  ${oneLine(s.error ?? "")}`;
    lines.push(`${key.padEnd(width)}  ${result.padEnd(17)}  ${time.padStart(7)}${error}`);
  }
  const code = exitCodeFrom(state);
  const allowed = Array.isArray(state.meta.failed_allowed) ? ` (allowed failures: ${state.meta.failed_allowed.length})` : "";
  lines.push(state.success ? `result: ok${allowed}, exit ${code}` : `result: ${state.failure ?? "failed"}: ${oneLine(state.error ?? "")}, exit ${code}`);
  return `${lines.join("\n")}\n`;
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 160 ? `${flat.slice(0, 157)}...` : flat;
}
