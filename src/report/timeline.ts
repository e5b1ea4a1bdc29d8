/**
 * The report's timeline: one row per leaf step that ran this attempt, with
 * the task's queue wait taken from the scheduler's accounting (sacct) when
 * there is any, else measured from the run's start (and said to be
 * approximate).
 */
import { outcomeOf, isNotRun, slurmIdOf, slurmOf, str } from "./states.js";
import type { Outcome, State } from "./states.js";

/** Rows of the timeline. */
export const MAX_TIMELINE_ROWS = 1000;

/** When and where one job or array task ran, as the scheduler recorded it (epoch milliseconds). */
export interface TaskTimes {
  submit: number | null;
  eligible: number | null;
  start: number | null;
  end: number | null;
  nodes: string | null;
}

/** The scheduler's times by the task's own SLURM job id, or why there are none. */
export type SchedulerTimes = { available: true; byJobId: ReadonlyMap<string, TaskTimes> } | { available: false; why: string };

export interface TimelineRow {
  key: string;
  outcome: Outcome;
  host: string | null;
  slurmId: string | null;
  /** Epoch ms. */
  start: number;
  end: number;
  /** Where the wait bar starts (submission, or the run's start); null for later steps of the same task. */
  waitFrom: number | null;
  /** Seconds the task waited before it started; null when not known or not this row's. */
  wait_s: number | null;
  /** Of the wait, seconds spent waiting for dependencies (before the task became eligible). */
  dependency_s: number | null;
}

export interface Timeline {
  rows: TimelineRow[];
  /** Epoch ms of the left edge and the right edge. */
  from: number;
  to: number;
  /** How queue waits were measured, in one sentence for the page. */
  waitNote: string;
  /** Queue waits are estimates. */
  approximate: boolean;
  /** Rows left out (over MAX_TIMELINE_ROWS). */
  omitted: number;
  /** Steps reused from an earlier attempt (not drawn). */
  skipped: number;
}

/** What the timeline needs to know of the run (a RunFacts is one). */
export interface TimelineRun {
  kind: "cluster" | "local";
  /** ISO; null when not recorded. */
  started: string | null;
  attempt: number;
}

/** The timeline of the leaves (in tree order) that ran in this attempt, at most MAX_TIMELINE_ROWS rows. */
export function buildTimeline(leaves: string[], states: Record<string, State>, run: TimelineRun, scheduler: SchedulerTimes | null): Timeline {
  const rows: TimelineRow[] = [];
  let skipped = 0;
  for (const key of leaves) {
    const s = states[key];
    if (s === undefined || isNotRun(s)) continue;
    const outcome = outcomeOf(s, run.attempt);
    if (outcome === "skipped") {
      skipped += 1;
      continue;
    }
    const start = Date.parse(s.timestamp);
    if (Number.isNaN(start)) continue;
    rows.push({
      key,
      outcome,
      host: str(s.meta.host),
      slurmId: slurmIdOf(s),
      start,
      end: start + s.duration_s * 1000,
      waitFrom: null,
      wait_s: null,
      dependency_s: null,
    });
  }
  rows.sort((a, b) => a.start - b.start || a.key.localeCompare(b.key));

  const runStart = run.started === null ? Number.NaN : Date.parse(run.started);
  const sacct = scheduler?.available === true ? scheduler.byJobId : null;
  let approximate = false;
  let waitNote: string;
  if (run.kind === "local") {
    waitNote = "Local run: a task's wait is the time from the start of the run to the task's start (waiting for its dependencies and a free CPU).";
  } else if (sacct !== null) {
    waitNote = "Queue waits come from the scheduler (sacct): from submission to the task's start, including the time spent waiting for dependencies.";
  } else if (Number.isNaN(runStart)) {
    approximate = true;
    const why = scheduler?.available === false ? ` (${scheduler.why})` : "";
    waitNote = `Queue waits are not shown: the scheduler's times were not available${why}, and when this attempt was submitted is not recorded.`;
  } else {
    approximate = true;
    const why = scheduler?.available === false ? ` (${scheduler.why})` : "";
    waitNote = `Queue waits are approximate: the scheduler's times were not available${why}, so a task's wait is measured from when the run was submitted to its first step's start.`;
  }

  // The first step of each task (by its own SLURM job id) carries the task's wait.
  const firstOfTask = new Set<TimelineRow>();
  const seenTasks = new Set<string>();
  for (const row of rows) {
    const own = slurmOf(states[row.key])?.jobId ?? `row:${row.key}`;
    if (seenTasks.has(own)) continue;
    seenTasks.add(own);
    firstOfTask.add(row);
    const times = sacct?.get(own);
    if (times !== undefined && times.submit !== null) {
      const began = times.start ?? row.start;
      row.waitFrom = times.submit;
      row.wait_s = Math.max(0, (began - times.submit) / 1000);
      row.dependency_s = times.eligible !== null && times.eligible > times.submit ? Math.min(row.wait_s, (times.eligible - times.submit) / 1000) : 0;
      if (row.host === null && times.nodes !== null) row.host = times.nodes;
    } else if (!Number.isNaN(runStart)) {
      row.waitFrom = Math.min(runStart, row.start);
      row.wait_s = Math.max(0, (row.start - runStart) / 1000);
      if (run.kind === "cluster" && sacct !== null) approximate = true;
    }
  }
  if (approximate && sacct !== null) {
    waitNote += " Some tasks had no scheduler record; their waits are measured from the submission of the run.";
  }

  const omitted = Math.max(0, rows.length - MAX_TIMELINE_ROWS);
  const shown = rows.slice(0, MAX_TIMELINE_ROWS);
  const points = shown.flatMap((r) => [r.start, r.end, ...(r.waitFrom !== null ? [r.waitFrom] : [])]);
  const from = points.length > 0 ? Math.min(...points) : 0;
  const to = points.length > 0 ? Math.max(...points) : 0;
  return { rows: shown, from, to: Math.max(to, from + 1), waitNote, approximate, omitted, skipped };
}
