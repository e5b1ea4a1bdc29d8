/**
 * What the state files alone say about a run's tasks: which have ended (and
 * whether they failed), which are running. Pure. A state file counts for the
 * current submission only when it carries that submission's SLURM job id, so
 * the stale files of an earlier attempt (resume) never end a task early.
 * A task whose step was killed (reason TERMINATED: a time limit, scancel) is
 * left to the scheduler, which knows why.
 */
import { bodyOfItem, concreteKey, itemsOfTask } from "../collect/job-index.js";
import type { CompiledPlan, PlanJob } from "../plan/plan.js";
import type { StateFile } from "../plan/state-file.js";
import { arrayTaskIds, logicalTask } from "../plan/task-map.js";
import { aggregateState, countPhases } from "../runs/job-status.js";
import type { JobStatus } from "../runs/job-status.js";
import type { TaskKind } from "../runs/task-table.js";

/** One item of a task: what has to be there for it to have ended. */
interface ItemCheck {
  unitKey: string | null;
  /** The unit may fail without failing the task. */
  unitAllowed: boolean;
  steps: Array<{ key: string; allowed: boolean; signature: string; skippable: boolean }>;
}

interface TaskSlot {
  job: PlanJob;
  jobIndex: number;
  taskId: number;
  items: ItemCheck[];
}

/** What the files say about one task. */
export type FileVerdict =
  | { kind: "none" }
  | { kind: "running" }
  | { kind: "ended"; failed: boolean }
  /** A step was killed: only the scheduler can say how the task ended. */
  | { kind: "killed" };

/** A state file as the watch knows it: its content, or null when it was announced without content. */
export interface KnownFile {
  state: StateFile | null;
  /** Sent after the watcher's first scan: new during this watch. */
  fresh: boolean;
}

export class TaskEnds {
  readonly #tasks: TaskSlot[] = [];
  /** Step key → the tasks whose verdict it can change. */
  readonly #byKey = new Map<string, TaskSlot>();
  readonly #files = new Map<string, KnownFile>();
  /** Keys whose failure does not fail their task (continue_on_error on the step, its item allowed to fail). */
  readonly #allowed = new Set<string>();

  constructor(
    plan: CompiledPlan,
    private readonly slurmIds: Readonly<Record<string, string>>,
  ) {
    plan.jobs.forEach((job, jobIndex) => {
      // A retry controller writes no state files: only the scheduler knows how it ended.
      if (slurmIds[job.id] === undefined || job.retry !== undefined) return;
      for (const taskId of arrayTaskIds(job)) {
        const task = logicalTask(job.array, taskId);
        const items: ItemCheck[] = [];
        for (const item of itemsOfTask(plan, job, task)) {
          const body = bodyOfItem(job, taskId, item);
          if (body === undefined) continue;
          items.push({
            unitKey: body.unitKey === null ? null : concreteKey(body.unitKey, item),
            unitAllowed: body.continue_on_error === true,
            // An idempotent step is skipped by the job when an earlier success of its definition is there; a
            // step restored from the step cache always is (templates/lib.sh _hp_already_done, _hp_restored).
            steps: body.steps.map((s) => ({ key: concreteKey(s.key, item), allowed: s.continue_on_error, signature: s.signature, skippable: s.idempotent })),
          });
        }
        const slot: TaskSlot = { job, jobIndex, taskId, items };
        this.#tasks.push(slot);
        for (const it of items) {
          if (it.unitKey !== null) this.#byKey.set(it.unitKey, slot);
          if (it.unitKey !== null && it.unitAllowed) this.#allowed.add(it.unitKey);
          for (const s of it.steps) {
            this.#byKey.set(s.key, slot);
            if (s.allowed || (it.unitKey !== null && it.unitAllowed)) this.#allowed.add(s.key);
          }
        }
      }
    });
  }

  /** Records a state file (by step key); returns the verdict of the task it belongs to, or null when it belongs to none. */
  apply(key: string, file: KnownFile): FileVerdict | null {
    this.#files.set(key, file);
    const slot = this.#byKey.get(key);
    return slot === undefined ? null : this.#verdict(slot);
  }

  /**
   * The file of `key` is a failure of the current submission that fails its task (or fresh and of unknown
   * content): worth asking the scheduler about, since SLURM cancels what depends on a failed job. A failure
   * allowed by continue_on_error (the step's, or its map item's) fails nothing: a map of 100,000 items with
   * 400 tolerated failures must not make 400 queries.
   */
  isFailure(key: string): boolean {
    const slot = this.#byKey.get(key);
    if (slot === undefined) return false;
    const file = this.#current(key, slot.job);
    if (file === null) return false;
    return file.state === null || (!file.state.success && !this.#allowed.has(key));
  }

  /** Every task of a submitted job has ended by its files. */
  allEnded(): boolean {
    return this.#tasks.every((t) => this.#verdict(t).kind === "ended");
  }

  /** The jobs with what the files say laid over the scheduler's last answer: a task the files end is final. */
  overlay(jobs: readonly JobStatus[]): JobStatus[] {
    const verdicts = new Map<string, Map<number, FileVerdict>>();
    for (const t of this.#tasks) {
      const byTask = verdicts.get(t.job.id) ?? new Map<number, FileVerdict>();
      byTask.set(t.taskId, this.#verdict(t));
      verdicts.set(t.job.id, byTask);
    }
    return jobs.map((job) => {
      const byTask = verdicts.get(job.job);
      if (byTask === undefined) return job;
      let touched = false;
      const tasks = job.tasks.rebuild((taskId): TaskKind => {
        const kind = job.tasks.kindAt(taskId) as TaskKind;
        const v = byTask.get(taskId);
        if (v === undefined || kind.final) return kind;
        if (v.kind === "ended") {
          touched = true;
          return { ...kind, state: v.failed ? "FAILED" : "COMPLETED", reason: null, phase: v.failed ? "failed" : "done", final: true };
        }
        if ((v.kind === "running" || v.kind === "killed") && kind.phase === "pending") {
          touched = true;
          return { ...kind, state: "RUNNING", reason: null, phase: "running" };
        }
        return kind;
      });
      if (!touched) return job;
      return { ...job, ...aggregateState(tasks.kinds), final: tasks.kinds.length > 0 && tasks.kinds.every((k) => k.final), counts: countPhases(tasks), states: tasks.tally(), tasks };
    });
  }

  /** The file of `key` when it was written by the current submission of its job. */
  #current(key: string, job: PlanJob): { state: StateFile | null } | null {
    const file = this.#files.get(key);
    if (file === undefined) return null;
    if (file.state === null) return file.fresh ? { state: null } : null;
    const slurm = file.state.slurm;
    const id = job.array === null ? slurm?.job_id : slurm?.array_job_id;
    return id !== undefined && id === this.slurmIds[job.id] ? { state: file.state } : null;
  }

  #verdict(slot: TaskSlot): FileVerdict {
    let seen = false;
    let failed = false;
    let open = false;
    for (const item of slot.items) {
      const outcome = this.#itemOutcome(slot.job, item);
      if (outcome === "killed") return { kind: "killed" };
      if (outcome === "skipped") continue;
      if (outcome === "open") open = true;
      else if (outcome === "open-started") {
        open = true;
        seen = true;
      } else {
        seen = true;
        if (outcome === "failed") failed = true;
      }
    }
    if (!open) return { kind: "ended", failed };
    return seen ? { kind: "running" } : { kind: "none" };
  }

  /**
   * The file of `step` is an earlier success the job skips: written before this submission (a resume's
   * earlier attempt, or restored from the step cache), successful, of the same definition.
   */
  #doneBefore(step: ItemCheck["steps"][number], job: PlanJob): boolean {
    const state = this.#files.get(step.key)?.state;
    if (state === undefined || state === null || !state.success || state.signature !== step.signature) return false;
    if (this.#current(step.key, job) !== null) return false;
    return step.skippable || state.cached !== undefined;
  }

  /** "skipped": the job skips the whole item (ended, but no sign that the task started). */
  #itemOutcome(job: PlanJob, item: ItemCheck): "open" | "open-started" | "ok" | "skipped" | "failed" | "killed" {
    let started = false;
    for (const step of item.steps) {
      const file = this.#current(step.key, job);
      if (file === null) break;
      started = true;
      const state = file.state;
      if (state === null) continue;
      if (state.meta.reason === "TERMINATED") return "killed";
      if (!state.success && !step.allowed && item.unitKey === null) return "failed";
    }
    // Every step an earlier success the job skips (a packed task's restored or resumed items): nothing of this
    // item will be written, and its unit keeps its earlier state.
    const skipped = item.steps.length > 0 && item.steps.every((step) => this.#doneBefore(step, job));
    if (item.unitKey !== null) {
      const unit = this.#current(item.unitKey, job);
      if (unit === null) {
        if (skipped && this.#files.get(item.unitKey)?.state?.success === true) return "skipped";
        return started ? "open-started" : "open";
      }
      if (unit.state === null) return "ok";
      return unit.state.success || item.unitAllowed ? "ok" : "failed";
    }
    if (skipped) return "skipped";
    for (const step of item.steps) if (this.#current(step.key, job) === null && !this.#doneBefore(step, job)) return started ? "open-started" : "open";
    return "ok";
  }
}
