/**
 * The report's totals: how many leaf steps ended each way, when the run
 * started and finished and its wall time, and the sentences shown at the top
 * of the page.
 */
import { MAX_LOG_TAILS } from "./log-tails.js";
import { emptyCounts, outcomeOf } from "./states.js";
import type { Outcome } from "./states.js";
import type { Timeline } from "./timeline.js";
import type { TreeNode, WalkedTree } from "./tree.js";

/** Leaf steps by outcome; from the tree's shown nodes when the walk found no leaf. */
export function outcomeCounts(walked: WalkedTree, attempt: number): Record<Outcome, number> {
  const counts = emptyCounts();
  for (const key of walked.leaves) if (!walked.sampled.has(key)) counts[outcomeOf(walked.states[key], attempt)] += 1;
  for (const k of Object.keys(counts) as Outcome[]) counts[k] += walked.largeCounts[k];
  if (walked.leaves.length === 0) countLeaves(walked.tree, counts);
  return counts;
}

function countLeaves(node: TreeNode, counts: Record<Outcome, number>): void {
  if (node.kind === "step" || (node.children.length === 0 && node.kind !== "map" && node.kind !== "item")) counts[node.outcome] += 1;
  for (const c of node.children) countLeaves(c, counts);
}

export interface RunSpan {
  /** ISO: the recorded start, else the first row's start. */
  started: string | null;
  /** ISO: the last row's end. */
  finished: string | null;
  wall_s: number | null;
}

/**
 * When the run started and finished, from its recorded start, the timeline's rows and the spans of the
 * large maps (their states' first start and duration over all their items, of which the timeline shows
 * only a sample).
 */
export function runSpan(recordedStart: string | null, line: Timeline, maps: ReadonlyArray<{ timestamp: string; duration_s: number }> = []): RunSpan {
  const ends = line.rows.map((r) => r.end);
  const starts = line.rows.map((r) => r.start);
  for (const span of maps) {
    const start = Date.parse(span.timestamp);
    if (!Number.isFinite(start)) continue;
    starts.push(start);
    ends.push(start + span.duration_s * 1000);
  }
  const started = recordedStart ?? (starts.length > 0 ? new Date(Math.min(...starts)).toISOString() : null);
  const finished = ends.length > 0 ? new Date(Math.max(...ends)).toISOString() : null;
  const wall_s = started !== null && finished !== null ? Math.max(0, (Date.parse(finished) - Date.parse(started)) / 1000) : null;
  return { started, finished, wall_s };
}

export interface NoteFacts {
  /** Why the result does not cover the whole run, if it does not. */
  partial: string | null | undefined;
  timeline: Timeline;
  /** Why logs and images were not fetched, if so. */
  notFetched: string | null | undefined;
  hasPlan: boolean;
  /** Failed leaf steps. */
  failedCount: number;
}

/** Sentences for the top of the page: partial result, approximate waits, what was not fetched, what is missing. */
export function reportNotes(facts: NoteFacts): string[] {
  const notes: string[] = [];
  if (facts.partial) notes.push(`This result is partial: ${facts.partial}.`);
  if (facts.timeline.approximate) notes.push(facts.timeline.waitNote);
  if (facts.notFetched) notes.push(facts.notFetched);
  if (!facts.hasPlan) notes.push("The run directory has no plan.json: the tree is rebuilt from the result's step keys (group and pipeline kinds unknown).");
  if (facts.failedCount > MAX_LOG_TAILS) notes.push(`${facts.failedCount} steps failed; log tails are shown for the first ${MAX_LOG_TAILS} (see \`hpcpipe logs\` for the others).`);
  return notes;
}
