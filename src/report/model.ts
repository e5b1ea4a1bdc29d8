/**
 * The data of a run report, built from what a finished run left behind: the
 * compiled plan (when there is one), the merged result, the run's facts, the
 * scheduler's times, log tails and image bytes. Pure: no I/O, no clock; the
 * app layer (src/app/report.ts) fetches, this module decides.
 *
 * This module assembles the model from its parts, one concern a module:
 * states.ts (reading a state), tree.ts (the tree and its leaves),
 * failures.ts (the errors section), log-tails.ts (which logs, their lines),
 * images.ts (which images, embedding them), timeline.ts (rows and queue
 * waits), summary.ts (counts, span, notes). It re-exports their public parts.
 */
import type { CompletedStateJson, FailureKind } from "../core/completed-state.js";
import { exitCodeFrom } from "../core/exit-code.js";
import { itemLinesOf } from "../core/item-lines.js";
import { failedSteps } from "./failures.js";
import type { ErrorEntry } from "./failures.js";
import { imageEntries, imageTargets } from "./images.js";
import type { FetchedImage, ImageEntry } from "./images.js";
import type { LogTail } from "./log-tails.js";
import type { Outcome } from "./states.js";
import { outcomeCounts, reportNotes, runSpan } from "./summary.js";
import { buildTimeline } from "./timeline.js";
import type { SchedulerTimes, Timeline } from "./timeline.js";
import { walkTree } from "./tree.js";
import type { ReportPlan, TreeNode } from "./tree.js";

export type { Outcome } from "./states.js";
export { slurmIdOf, slurmOf } from "./states.js";
export { MAX_MAP_ITEMS_SHOWN } from "./tree.js";
export type { ReportPlan, TreeNode } from "./tree.js";
export { LOG_LINE_MAX_CHARS, LOG_TAIL_BYTES, LOG_TAIL_LINES, logPaths, logTargets, MAX_LOG_TAILS, tailLines } from "./log-tails.js";
export type { LogTail } from "./log-tails.js";
export { IMAGE_MAX_BYTES, imageMime, IMAGES_TOTAL_MAX_BYTES, imageTargets, MAX_IMAGES, safeOutputPath } from "./images.js";
export type { FetchedImage, ImageEntry } from "./images.js";
export { MAX_TIMELINE_ROWS } from "./timeline.js";
export type { SchedulerTimes, TaskTimes, Timeline, TimelineRow } from "./timeline.js";
export { MAX_ERRORS } from "./failures.js";
export type { ErrorEntry } from "./failures.js";

/** What is known about the run itself. */
export interface RunFacts {
  kind: "cluster" | "local";
  runId: string;
  pipeline: string;
  cluster: string;
  /** 1 for a first submission; `submit --resume` adds one. */
  attempt: number;
  /** Cluster: when the record was written, just before submission. Local: when the run directory was prepared. ISO. */
  started: string | null;
  /** Where the run lives: the remote run directory, or the local one. */
  location: string;
  /** Cluster: the record's phase (`collected`, `cancelled`...). */
  phase?: string;
  /** Cluster: SLURM job id by plan job id, this attempt. */
  jobs?: Record<string, string>;
  /** Set when the result does not cover the whole run yet (jobs still running when it was collected). */
  partial?: string | null;
}

export interface ReportInput {
  plan: ReportPlan | null;
  result: CompletedStateJson;
  run: RunFacts;
  scheduler: SchedulerTimes | null;
  /** Tails by step key (see logTargets). */
  logs: ReadonlyMap<string, LogTail[]>;
  /** Image outputs by path relative to the work directory (see imageTargets). */
  images: ReadonlyMap<string, FetchedImage>;
  /** Why logs and images were not fetched at all (`--offline`), if so. */
  notFetched?: string | null;
  /** When the report was made (ISO); passed in so the model stays pure. */
  generated: string;
}

export interface ReportModel {
  runId: string;
  pipeline: string;
  kind: "cluster" | "local";
  cluster: string;
  attempt: number;
  location: string;
  phase: string | null;
  success: boolean;
  failure: FailureKind | null;
  error: string | null;
  exitCode: number;
  started: string | null;
  finished: string | null;
  wall_s: number | null;
  generated: string;
  counts: Record<Outcome, number>;
  tree: TreeNode;
  timeline: Timeline;
  errors: ErrorEntry[];
  /** Failed steps beyond MAX_ERRORS. */
  errorsOmitted: number;
  images: ImageEntry[];
  /** Sentences for the top of the page (partial result, approximate waits, what was not fetched). */
  notes: string[];
}

/** Builds the report's model; pure. */
export function buildReportModel(input: ReportInput): ReportModel {
  const { plan, result, run } = input;
  const walked = walkTree(plan, result, run.attempt, run.pipeline);
  const failed = failedSteps(walked, result, input.logs);
  const line = buildTimeline(walked.leaves, walked.states, run, input.scheduler);
  const largeMaps = Object.values(walked.states).filter((state) => itemLinesOf(state) !== null);
  const { started, finished, wall_s } = runSpan(run.started, line, largeMaps);
  return {
    runId: run.runId,
    pipeline: run.pipeline,
    kind: run.kind,
    cluster: run.cluster,
    attempt: run.attempt,
    location: run.location,
    phase: run.phase ?? null,
    success: result.success,
    failure: result.failure ?? null,
    error: result.error,
    exitCode: exitCodeFrom({ success: result.success, failure: result.failure ?? null }),
    started,
    finished,
    wall_s,
    generated: input.generated,
    counts: outcomeCounts(walked, run.attempt),
    tree: walked.tree,
    timeline: line,
    errors: failed.entries,
    errorsOmitted: failed.omitted,
    images: imageEntries(imageTargets(plan, result, run.attempt), input.images, input.notFetched ?? null),
    notes: reportNotes({ partial: run.partial, timeline: line, notFetched: input.notFetched, hasPlan: plan !== null, failedCount: failed.failedCount }),
  };
}
