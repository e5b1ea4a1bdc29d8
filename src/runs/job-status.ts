/**
 * What the scheduler says about a submitted run, per plan job and per
 * logical task: SLURM's per-task records (one squeue/sacct answer for the
 * whole run) mapped onto the plan's jobs, arrays and chunk offsets. Pure.
 */
import type { JobFact, TaskFact } from "../collect/merge.js";
import type { CompiledPlan, PlanJob } from "../plan/plan.js";
import { taskCount } from "../plan/task-map.js";
import { isFinal, translateState, unknownJobState, unknownRecord } from "../slurm/index.js";
import { TaskAnswer } from "../slurm/index.js";
import type { TaskRecord } from "../slurm/index.js";
import { TaskTable } from "./task-table.js";
import type { StateCount, TaskKind, TaskPhase } from "./task-table.js";

export type { StateCount, TaskKind, TaskPhase, TaskStatus } from "./task-table.js";
export { JSON_TASKS_MAX, TaskTable } from "./task-table.js";

export interface PhaseCounts {
  pending: number;
  running: number;
  done: number;
  failed: number;
}

export interface JobStatus {
  /** Plan job id (j000...). */
  job: string;
  /** What the job runs, for people: a step key, a group or map key, with the chunk. */
  label: string;
  slurmJobId: string | null;
  steps: string[];
  array: { offset: number; count: number; total: number; chunk: number; chunks: number } | null;
  /** One state for the whole job: every task's when they agree, else the most telling one. */
  state: string;
  reason: string | null;
  final: boolean;
  counts: PhaseCounts;
  /** Tasks per distinct state (state, reason, exit code), most first: the job at a glance. */
  states: StateCount[];
  /** Every task, in ONE record for the job (see TaskTable): `at(taskId)`, `byTask(logical)`, iteration. */
  tasks: TaskTable;
}

/** The state of a plan job the submit script never submitted (a final state of the one vocabulary, src/slurm/states.ts). */
export const NOT_SUBMITTED = "NOT_SUBMITTED";

const RUNNING_STATES = new Set(["RUNNING", "COMPLETING"]);
/** Among final states of an array's tasks, the one its summary shows (worst first). */
const FINAL_SEVERITY = ["NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "TIMEOUT", "FAILED", "DEADLINE", "PREEMPTED", "REVOKED", "CANCELLED", "COMPLETED"];

export function phaseOf(state: string): TaskPhase {
  const known = translateState(state).state;
  if (known === "COMPLETED") return "done";
  if (isFinal(known)) return "failed";
  if (RUNNING_STATES.has(known)) return "running";
  return "pending";
}

/** What a job no source knows is (see unknownJobState): LOST once MinJobAge has passed since submission. */
export interface UnknownJobRule {
  /** When the run's jobs were submitted (ISO). */
  submitted: string | null;
  now: number;
  minJobAgeS: number;
}

function taskKind(record: TaskRecord, rule: UnknownJobRule | undefined): TaskKind {
  const base = { exitCode: record.exitCode, signal: record.signal };
  if (record.state === "UNKNOWN" && record.rawState === "") {
    // No source (squeue, sacct, scontrol) knows the job: purged, or not yet visible. Lost only after MinJobAge.
    const u = rule === undefined ? { state: "UNKNOWN" as const, reason: null, final: false } : unknownJobState(rule.submitted, rule.now, rule.minJobAgeS);
    return { ...base, state: u.state, reason: u.reason, phase: u.final ? "failed" : "pending", final: u.final };
  }
  // An unknown spelling keeps its raw text and is not final (it is asked again).
  const state = record.state === "UNKNOWN" ? record.rawState : record.state;
  return { ...base, state, reason: record.reason, phase: phaseOf(record.state), final: isFinal(record.state) };
}

/** A dot key's parent: `p.renders.front` -> `p.renders`. */
function parentKey(key: string): string {
  const at = key.lastIndexOf(".");
  return at === -1 ? key : key.slice(0, at);
}

/** What a plan job runs, in a few words: `p.prep`, `p.a + 2 fused`, `p.renders [4 tasks]`, `p.check_all [chunk 2/3: 5-9]`. */
export function jobLabel(job: PlanJob): string {
  if (job.retry !== undefined) return `retries of ${job.retry.of}${job.id.includes(".") ? ` (after attempt ${job.id.split(".r")[1] ?? "?"})` : ""}`;
  let base: string;
  if (job.shape === "map") base = job.map?.key ?? parentKey(parentKey(job.steps[0] ?? job.id));
  else if (job.shape === "group") {
    const first = job.bodies[0];
    base = parentKey(first?.unitKey ?? first?.steps[0]?.key ?? job.id);
  } else base = job.steps.length > 1 ? `${job.steps[0] ?? job.id} + ${job.steps.length - 1} fused` : (job.steps[0] ?? job.id);
  const a = job.array;
  // A retry the cluster submitted (src/runs/retries.ts): attempt N of some of the job's tasks.
  const retry = /\.r(\d+)$/.exec(job.id);
  if (retry !== null) return `${base} [attempt ${retry[1] ?? "?"}${a === null ? "" : `: ${taskCount(job)} task${taskCount(job) === 1 ? "" : "s"}`}]`;
  if (a === null) return base;
  if (a.chunks > 1) return `${base} [chunk ${a.chunk + 1}/${a.chunks}: tasks ${a.offset}-${a.offset + a.count - 1}]`;
  return `${base} [${a.count} task${a.count === 1 ? "" : "s"}]`;
}

/** The single state shown for a job whose tasks disagree. */
export function aggregateState(tasks: readonly Pick<TaskKind, "state" | "reason" | "phase" | "final">[]): { state: string; reason: string | null } {
  const first = tasks[0];
  if (first === undefined) return { state: "UNKNOWN", reason: null };
  const reasonOf = (state: string): string | null => tasks.find((t) => t.state === state && t.reason !== null)?.reason ?? null;
  if (tasks.every((t) => t.state === first.state)) return { state: first.state, reason: reasonOf(first.state) };
  const running = tasks.find((t) => t.phase === "running");
  if (running) return { state: running.state, reason: reasonOf(running.state) };
  const pending = tasks.find((t) => !t.final);
  if (pending) return { state: pending.state, reason: reasonOf(pending.state) };
  for (const state of FINAL_SEVERITY) if (tasks.some((t) => translateState(t.state).state === state)) {
    const shown = tasks.find((t) => translateState(t.state).state === state)?.state ?? state;
    return { state: shown, reason: reasonOf(shown) };
  }
  return { state: first.state, reason: reasonOf(first.state) };
}

export function countPhases(table: TaskTable): PhaseCounts {
  const counts: PhaseCounts = { pending: 0, running: 0, done: 0, failed: 0 };
  table.kinds.forEach((k, i) => (counts[k.phase] += table.countOf(i)));
  return counts;
}

const NOT_SUBMITTED_KIND: TaskKind = { state: "NOT_SUBMITTED", reason: "submission failed", exitCode: null, signal: null, phase: "failed", final: true };

/** A job's record from its task table: one state for the whole job, counts by phase and by state. */
function jobStatusOf(job: PlanJob, slurmJobId: string | null, tasks: TaskTable): JobStatus {
  const { state, reason } = aggregateState(tasks.kinds);
  const a = job.array;
  return {
    job: job.id,
    label: jobLabel(job),
    slurmJobId,
    steps: [...job.steps],
    array: a === null ? null : { offset: a.offset, count: a.count, total: a.total, chunk: a.chunk, chunks: a.chunks },
    state,
    reason,
    final: tasks.size > 0 && tasks.kinds.every((k) => k.final),
    counts: countPhases(tasks),
    states: tasks.tally(),
    tasks,
  };
}

/** Per SLURM job id, the scheduler's answer: its records, or the same compactly (a TaskAnswer). */
export type StatusAnswers = ReadonlyMap<string, readonly TaskRecord[] | TaskAnswer>;

/**
 * Maps the scheduler's records onto the plan: one JobStatus per plan job,
 * with one TaskStatus per array task (logical index = task id + chunk
 * offset). A task no record mentions is UNKNOWN; a job without a SLURM id
 * (never submitted) is NOT_SUBMITTED, which is final.
 */
export function mapJobStatuses(plan: CompiledPlan, slurmIds: Readonly<Record<string, string>>, status: StatusAnswers, rule?: UnknownJobRule): JobStatus[] {
  return plan.jobs.map((job) => {
    const slurmJobId = slurmIds[job.id] ?? null;
    const size = taskCount(job);
    if (slurmJobId === null) {
      // Never submitted (the submission failed before it): it will never run.
      return jobStatusOf(job, null, TaskTable.build(job.array, null, size, () => NOT_SUBMITTED_KIND));
    }
    const given = status.get(slurmJobId);
    const answer = given === undefined ? TaskAnswer.fromRecords([unknownRecord(slurmJobId)]) : given instanceof TaskAnswer ? given : TaskAnswer.fromRecords(given);
    const whole = answer.whole();
    const fallback = whole ?? (job.array === null ? answer.records()[0] : undefined) ?? unknownRecord(slurmJobId);
    // Most tasks share their state with many others: one kind object per distinct state, reason and exit.
    const kindOfText = new Map<string, TaskKind>();
    // Neighbouring tasks are mostly in the same state: the last record's kind, when its fields are the same, without a key.
    let last: TaskRecord | null = null;
    let lastKind: TaskKind | null = null;
    const kindFor = (r: TaskRecord): TaskKind => {
      if (lastKind !== null && last !== null && (r === last || (r.state === last.state && r.rawState === last.rawState && r.reason === last.reason && r.exitCode === last.exitCode && r.signal === last.signal))) return lastKind;
      const text = `${r.state}\u0000${r.rawState}\u0000${r.reason ?? "\u0001"}\u0000${r.exitCode ?? ""}\u0000${r.signal ?? ""}`;
      let k = kindOfText.get(text);
      if (k === undefined) {
        k = taskKind(r, rule);
        kindOfText.set(text, k);
      }
      last = r;
      lastKind = k;
      return k;
    };
    if (job.array === null) {
      const single = kindFor(fallback);
      return jobStatusOf(job, slurmJobId, TaskTable.build(job.array, slurmJobId, size, () => single));
    }
    // Which segment of the answer names each task id (a range is one segment): no record per task.
    const win = answer.resolve(size);
    const byTemplate: Array<TaskKind | undefined> = [];
    let fallbackKind: TaskKind | undefined;
    const kindOf = (taskId: number): TaskKind => {
      const seg = win[taskId] as number;
      if (seg === -1) return (fallbackKind ??= kindFor(fallback));
      const tpl = answer.templateIndex(seg);
      return (byTemplate[tpl] ??= kindFor(answer.templates[tpl] as TaskRecord));
    };
    return jobStatusOf(job, slurmJobId, TaskTable.build(job.array, slurmJobId, size, kindOf));
  });
}

/**
 * Keeps a task's last final state when a later answer knows nothing of it
 * (purged from slurmctld with accounting off, or sacct lagging): a job that
 * finished does not become unfinished again.
 */
export function carryFinalStates(previous: readonly JobStatus[] | null, next: JobStatus[]): JobStatus[] {
  if (previous === null) return next;
  const before = new Map(previous.map((j) => [j.job, j]));
  return next.map((job) => {
    const old = before.get(job.job);
    if (old === undefined || !job.tasks.kinds.some((k) => k.state === "UNKNOWN")) return job;
    let carried = false;
    const tasks = job.tasks.rebuild((taskId) => {
      const now = job.tasks.kindAt(taskId) as TaskKind;
      if (now.state !== "UNKNOWN") return now;
      const prior = old.tasks.kindAt(taskId);
      if (prior?.final !== true) return now;
      carried = true;
      return prior;
    });
    if (!carried) return job;
    return { ...job, ...aggregateState(tasks.kinds), final: tasks.kinds.every((k) => k.final), counts: countPhases(tasks), states: tasks.tally(), tasks };
  });
}

/** Totals over every task of the run. */
export function totalCounts(jobs: readonly JobStatus[]): PhaseCounts {
  const out: PhaseCounts = { pending: 0, running: 0, done: 0, failed: 0 };
  for (const j of jobs) for (const k of Object.keys(out) as (keyof PhaseCounts)[]) out[k] += j.counts[k];
  return out;
}

/** The merger's job facts: per plan job, its state and each logical task's. */
export function jobFactsOf(jobs: readonly JobStatus[]): Map<string, JobFact> {
  const facts = new Map<string, JobFact>();
  for (const j of jobs) {
    // Looked up per logical task on demand: no object per task of a big array.
    const tasks = {
      get: (task: number): TaskFact | undefined => {
        const t = j.tasks.byTask(task);
        return t === undefined ? undefined : { state: t.state, reason: t.reason, slurmJobId: t.slurmJobId ?? j.slurmJobId };
      },
    };
    facts.set(j.job, { state: j.state, reason: j.reason, slurmJobId: j.slurmJobId, tasks });
  }
  return facts;
}
