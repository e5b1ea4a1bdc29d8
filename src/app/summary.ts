import type { CompletedState } from "../core/completed-state.js";
import { exitCodeFrom } from "../core/exit-code.js";
import { itemLinesOf } from "../core/item-lines.js";
import type { ItemLinesSummary } from "../core/item-lines.js";
import { countFailures, FAILED_ITEMS_SHOWN, itemTallyText, SLOWEST_ITEMS_SHOWN, slowestText, summaryRows } from "./map-items.js";
import type { ItemTally, OutcomeView } from "./map-items.js";

const outcomeOf = (s: CompletedState): OutcomeView => ({ success: s.success, notRun: s.meta.not_run === true, durationS: s.duration_s });

/**
 * The counts a large map keeps with its state (its items are in the lines file), as a summary tally:
 * summaryRows' `tallyOf` for CompletedStates; `tallyOfLines(step.item_lines)` for a status's StepResults.
 */
export function keptTally(s: { meta: Record<string, unknown> }): ItemTally | null {
  return tallyOfLines(itemLinesOf(s));
}

export function tallyOfLines(lines: ItemLinesSummary | null | undefined): ItemTally | null {
  if (lines == null) return null;
  return {
    total: lines.items,
    ok: lines.ok,
    failed: lines.failed,
    notRun: lines.not_run,
    failedItems: lines.failed_items.slice(0, FAILED_ITEMS_SHOWN),
    slowest: lines.slowest.slice(0, SLOWEST_ITEMS_SHOWN).map((x) => ({ index: x.index, durationS: x.duration_s })),
  };
}

/**
 * One line per recorded step (namespaced key, result, seconds, error), a map's
 * items collapsed into one line of counts, then the overall result and exit code.
 */
export function formatResultSummary(state: CompletedState, title: string): string {
  const rows = summaryRows(state.step_states ?? {}, outcomeOf, keptTally);
  let widest = 4;
  for (const row of rows) widest = Math.max(widest, row.key.length);
  const width = Math.min(70, widest);
  const lines = [title, `${"step".padEnd(width)}  result             time`];
  for (const row of rows) {
    const s = row.state;
    const result = s.success ? (s.meta.cached ? "ok (cached)" : "ok") : s.meta.not_run ? "not run" : (s.failure ?? "failed");
    const time = `${s.duration_s.toFixed(2)}s`;
    const notes = [row.kind === "map" ? itemTallyText(row.items) : "", row.kind === "map" ? slowestText(row.items) : "", s.success ? "" : oneLine(s.error ?? "")].filter((t) => t !== "");
    lines.push(`${row.key.padEnd(width)}  ${result.padEnd(17)}  ${time.padStart(7)}${notes.length > 0 ? `  ${notes.join("; ")}` : ""}`);
  }
  let cached = 0;
  const large = new Set<string>();
  for (const [key, s] of Object.entries(state.step_states ?? {})) {
    const lines = itemLinesOf(s);
    if (lines === null) continue;
    large.add(`${key}.`);
    cached += lines.cached_steps;
  }
  const inLines = (key: string): boolean => large.size > 0 && [...large].some((prefix) => key.startsWith(prefix));
  for (const [key, s] of Object.entries(state.step_states ?? {})) {
    // Leaves (a unit has no exit code); a large map's items were counted with it.
    if (s.meta.cached !== undefined && typeof s.meta.exit_code === "number" && !inLines(key)) cached += 1;
  }
  if (cached > 0) lines.push(`step cache: ${cached.toLocaleString("en-US")} step(s) restored from earlier runs`);
  const retried = retriedText(state);
  if (retried !== null) lines.push(retried);
  const code = exitCodeFrom(state);
  if (state.success) {
    const allowed = countFailures(rows, outcomeOf);
    lines.push(`result: ok${allowed > 0 ? `, ${allowed.toLocaleString("en-US")} failure${allowed === 1 ? "" : "s"} allowed` : ""}, exit ${code}`);
  } else {
    lines.push(`result: ${state.failure ?? "failed"}: ${oneLine(state.error ?? "")}, exit ${code}`);
  }
  return `${lines.join("\n")}\n`;
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 160 ? `${flat.slice(0, 157)}...` : flat;
}

/** Steps that took more than one attempt (retries on the cluster: meta.attempts), the first few by name. */
function retriedText(state: CompletedState): string | null {
  const retried: string[] = [];
  const all = Object.entries(state.step_states ?? {}).filter(([, s]) => Array.isArray(s.meta.attempts) && s.meta.attempts.length > 1);
  // Steps only: a map item (a unit) is retried with its steps, whose keys it prefixes.
  const leaves = all.filter(([key]) => !all.some(([other]) => other.startsWith(`${key}.`)));
  let count = 0;
  for (const [key, s] of leaves) {
    const attempts = s.meta.attempts as unknown[];
    count += 1;
    if (retried.length >= 5) continue;
    const last = attempts[attempts.length - 1] as Record<string, unknown> | undefined;
    const why = typeof last?.failed_for_good === "string" ? `, then failed: ${last.failed_for_good}` : "";
    retried.push(`${key} (${attempts.length} attempts${why})`);
  }
  if (count === 0) return null;
  return `retries: ${count.toLocaleString("en-US")} step(s) took more than one attempt: ${retried.join(", ")}${count > retried.length ? `, ${(count - retried.length).toLocaleString("en-US")} more` : ""}`;
}
