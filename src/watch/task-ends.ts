/**
 * What the state files alone say about a run's tasks: which have ended (and
 * whether they failed), which are running. Pure. A state file counts for the
 * current submission only when it carries that submission's SLURM job id, so
 * the stale files of an earlier attempt (resume) never end a task early.
 * A task whose step was killed (reason TERMINATED: a time limit, scancel) is
 * left to the scheduler, which knows why.
 */
import { bodyOfItem, concreteKey, itemsOfTask, mapItemOfKey, taskIdOfItem } from "../collect/job-index.js";
import { itemsPerTaskOf } from "../plan/plan.js";
import type { CompiledPlan, PlanJob, PlanStep } from "../plan/plan.js";
import type { StateFile } from "../plan/state-file.js";
import { arrayTaskIds, logicalTask } from "../plan/task-map.js";
import { aggregateState, countPhases } from "../runs/job-status.js";
import type { JobStatus } from "../runs/job-status.js";
import type { TaskKind } from "../runs/task-table.js";

/** What the watch knows of a state file: its content, or null when it was announced without content. */
export interface KnownFile {
  state: StateFile | null;
  /** Sent after the watcher's first scan: new during this watch. */
  fresh: boolean;
}

/** What a task's files say (see TaskEnds). */
export type FileVerdict =
  | { kind: "none" }
  | { kind: "running" }
  | { kind: "ended"; failed: boolean }
  /** A step was killed: only the scheduler can say how the task ended. */
  | { kind: "killed" };

/*
 * What is kept of each state file: one small integer, not the file. A million-item map's three million
 * files would otherwise be held whole for the length of the watch. Bits 0-7 are the flags below; the rest
 * is the index of the file's SLURM job id (the array job's, else the job's) in `#owners`.
 */
const PRESENT = 1;
const FRESH = 2;
/** Announced without content (too large, or unreadable): it exists, nothing more is known. */
const NO_CONTENT = 4;
const SUCCESS = 8;
/** The state's signature is its step's (so the job skips an earlier success of it). */
const SAME_DEFINITION = 16;
const CACHED = 32;
/** A step killed by a signal (meta.reason TERMINATED). */
const TERMINATED = 64;
const FLAGS = 256;

interface TaskSlot {
  job: PlanJob;
  taskId: number;
  /** The items (map items, a packed group's children) the task runs. */
  items: number[];
  /** One code per (item, position): position < steps is a step, position `width - 1` the item's unit. */
  codes: Int32Array | null;
  /** The verdict of the codes, until one of them changes. */
  verdict: FileVerdict | null;
}

/** Where a key's code lives. */
interface Place {
  slot: TaskSlot;
  at: number;
  /** The step (null: the unit). */
  step: PlanStep | null;
}

interface MapJob {
  job: PlanJob;
  slots: TaskSlot[];
  /** Logical task -> slot index, for remapped arrays (a resume's). */
  byTask: Map<number, number> | null;
  perTask: number;
}

/** Positions per item: every step of the widest body, then the unit. */
function widthOf(job: PlanJob): number {
  return Math.max(0, ...job.bodies.map((b) => b.steps.length)) + 1;
}

/**
 * Pure, and small: one integer per state file and one slot per task. Keys of a
 * map whose key is concrete are found from the map key and the item index in
 * them (nothing is indexed per item); other jobs' keys (plain steps, groups,
 * maps inside maps) are indexed whole. Like the merger, a later job running
 * the same key wins.
 */
export class TaskEnds {
  readonly #slots: TaskSlot[] = [];
  /** Map key -> its map jobs, the latest first. */
  readonly #maps = new Map<string, MapJob[]>();
  /** Keys of the other jobs. */
  readonly #fixed = new Map<string, Place>();
  /** SLURM job ids met in state files; a code holds the index. */
  readonly #owners: string[] = [];
  readonly #ownerIndex = new Map<string, number>();
  constructor(
    plan: CompiledPlan,
    private readonly slurmIds: Readonly<Record<string, string>>,
  ) {
    for (const job of plan.jobs) {
      // A retry controller writes no state files: only the scheduler knows how it ended.
      if (slurmIds[job.id] === undefined || job.retry !== undefined) continue;
      const concreteMap = job.shape === "map" && job.map !== undefined && !job.map.key.includes("{");
      const slots: TaskSlot[] = [];
      for (const taskId of arrayTaskIds(job)) {
        const slot: TaskSlot = { job, taskId, items: itemsOfTask(plan, job, logicalTask(job.array, taskId)), codes: null, verdict: null };
        slots.push(slot);
        this.#slots.push(slot);
        if (!concreteMap) this.#indexSlot(slot);
      }
      if (concreteMap && job.map !== undefined) {
        const array = job.array;
        const byTask = array?.indices == null ? null : new Map(array.indices.map((logical, id) => [logical, id]));
        const list = this.#maps.get(job.map.key) ?? [];
        list.unshift({ job, slots, byTask, perTask: itemsPerTaskOf(job) });
        this.#maps.set(job.map.key, list);
      }
    }
  }

  #indexSlot(slot: TaskSlot): void {
    const width = widthOf(slot.job);
    slot.items.forEach((item, k) => {
      const body = bodyOfItem(slot.job, slot.taskId, item);
      if (body === undefined) return;
      if (body.unitKey !== null) this.#fixed.set(concreteKey(body.unitKey, item), { slot, at: k * width + width - 1, step: null });
      body.steps.forEach((step, p) => this.#fixed.set(concreteKey(step.key, item), { slot, at: k * width + p, step }));
    });
  }

  /** The slot and position of a key of a map job: `<map key>.<item>` (the unit) or one of the item's steps. */
  #placeInMap(key: string): Place | undefined {
    for (const [mapKey, jobs] of this.#maps) {
      const item = mapItemOfKey(mapKey, key);
      if (item === null) continue;
      for (const { job, slots, byTask, perTask } of jobs) {
        const taskId = taskIdOfItem(job, byTask, perTask, item);
        const slot = taskId === undefined ? undefined : slots[taskId];
        if (slot === undefined) continue;
        const k: number = perTask <= 1 ? 0 : item - (slot.items[0] ?? 0);
        if (slot.items[k] !== item) continue;
        const body = bodyOfItem(job, slot.taskId, item);
        if (body === undefined) continue;
        const width = widthOf(job);
        if (body.unitKey !== null && concreteKey(body.unitKey, item) === key) return { slot, at: k * width + width - 1, step: null };
        const p = body.steps.findIndex((s) => concreteKey(s.key, item) === key);
        if (p !== -1) return { slot, at: k * width + p, step: body.steps[p] as PlanStep };
      }
    }
    return undefined;
  }

  #place(key: string): Place | undefined {
    return this.#placeInMap(key) ?? this.#fixed.get(key);
  }

  #owner(id: string): number {
    let n = this.#ownerIndex.get(id);
    if (n === undefined) {
      n = this.#owners.length;
      this.#owners.push(id);
      this.#ownerIndex.set(id, n);
    }
    return n;
  }

  /** Records a state file (by step key); false when it belongs to no task. The task's verdict is judged when asked. */
  apply(key: string, file: KnownFile): boolean {
    const place = this.#place(key);
    if (place === undefined) return false;
    const { slot, at, step } = place;
    const state = file.state;
    let code = PRESENT | (file.fresh ? FRESH : 0);
    if (state === null) code |= NO_CONTENT;
    else {
      if (state.success) code |= SUCCESS;
      if (step !== null && state.signature === step.signature) code |= SAME_DEFINITION;
      if (state.cached !== undefined) code |= CACHED;
      if (state.meta.reason === "TERMINATED") code |= TERMINATED;
      const owner = state.slurm?.array_job_id ?? state.slurm?.job_id;
      code += FLAGS * (owner === undefined ? 0 : this.#owner(owner) + 1);
    }
    slot.codes ??= new Int32Array(slot.items.length * widthOf(slot.job));
    slot.codes[at] = code;
    slot.verdict = null;
    return true;
  }

  /** Every file this tracker knows, as `apply` would take it again: what a tracker of a changed plan starts from. */
  adopt(from: TaskEnds): void {
    for (const slot of from.#slots) {
      if (slot.codes === null) continue;
      const width = widthOf(slot.job);
      slot.items.forEach((item, k) => {
        const body = bodyOfItem(slot.job, slot.taskId, item);
        if (body === undefined) return;
        const keys: Array<[string, number, PlanStep | null]> = body.steps.map((s, p) => [concreteKey(s.key, item), k * width + p, s]);
        if (body.unitKey !== null) keys.push([concreteKey(body.unitKey, item), k * width + width - 1, null]);
        for (const [key, at, oldStep] of keys) {
          const code = slot.codes?.[at] ?? 0;
          if (code === 0) continue;
          const place = this.#place(key);
          if (place === undefined) continue;
          const ownerAt = Math.floor(code / FLAGS);
          const owner = ownerAt === 0 ? 0 : this.#owner(from.#owners[ownerAt - 1] as string) + 1;
          let flags = code % FLAGS;
          // The same definition as the step that runs the key now.
          if (place.step === null || oldStep === null || place.step.signature !== oldStep.signature) flags &= ~SAME_DEFINITION;
          place.slot.codes ??= new Int32Array(place.slot.items.length * widthOf(place.slot.job));
          place.slot.codes[place.at] = flags + FLAGS * owner;
          place.slot.verdict = null;
        }
      });
    }
  }

  /** The code of position `at` when its file was written by the current submission of the slot's job; else 0. */
  #current(slot: TaskSlot, at: number): number {
    const code = slot.codes?.[at] ?? 0;
    if (code === 0) return 0;
    if (code & NO_CONTENT) return code & FRESH ? code : 0;
    const ownerAt = Math.floor(code / FLAGS);
    return ownerAt !== 0 && this.#owners[ownerAt - 1] === this.slurmIds[slot.job.id] ? code : 0;
  }

  /**
   * The file of `key` is a failure of the current submission that fails its task (or fresh and of unknown
   * content): worth asking the scheduler about, since SLURM cancels what depends on a failed job. A failure
   * allowed by continue_on_error (the step's, or its map item's) fails nothing: a map of 100,000 items with
   * 400 tolerated failures must not make 400 queries.
   */
  isFailure(key: string): boolean {
    const place = this.#place(key);
    if (place === undefined) return false;
    const code = this.#current(place.slot, place.at);
    if (code === 0) return false;
    if (code & NO_CONTENT) return true;
    if (code & SUCCESS) return false;
    const width = widthOf(place.slot.job);
    const body = bodyOfItem(place.slot.job, place.slot.taskId, place.slot.items[Math.floor(place.at / width)] as number);
    const unitAllowed = body !== undefined && body.unitKey !== null && body.continue_on_error === true;
    return !(unitAllowed || (place.step?.continue_on_error ?? false));
  }

  /** Every task of a submitted job has ended by its files. */
  allEnded(): boolean {
    return this.#slots.every((t) => this.#verdict(t).kind === "ended");
  }

  /** The jobs with what the files say laid over the scheduler's last answer: a task the files end is final. */
  overlay(jobs: readonly JobStatus[]): JobStatus[] {
    const byJob = new Map<string, TaskSlot[]>();
    for (const t of this.#slots) {
      const list = byJob.get(t.job.id) ?? [];
      list[t.taskId] = t;
      byJob.set(t.job.id, list);
    }
    return jobs.map((job) => {
      const slots = byJob.get(job.job);
      if (slots === undefined) return job;
      let touched = false;
      const tasks = job.tasks.rebuild((taskId): TaskKind => {
        const kind = job.tasks.kindAt(taskId) as TaskKind;
        const slot = slots[taskId];
        if (slot === undefined || kind.final) return kind;
        const v = this.#verdict(slot);
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

  #verdict(slot: TaskSlot): FileVerdict {
    if (slot.verdict !== null) return slot.verdict;
    let seen = false;
    let failed = false;
    let open = false;
    let verdict: FileVerdict | null = null;
    for (let k = 0; k < slot.items.length && verdict === null; k++) {
      const outcome = this.#itemOutcome(slot, k);
      if (outcome === "killed") verdict = { kind: "killed" };
      else if (outcome === "skipped") continue;
      else if (outcome === "open") open = true;
      else if (outcome === "open-started") {
        open = true;
        seen = true;
      } else {
        seen = true;
        if (outcome === "failed") failed = true;
      }
    }
    verdict ??= !open ? { kind: "ended", failed } : seen ? { kind: "running" } : { kind: "none" };
    slot.verdict = verdict;
    return verdict;
  }

  /**
   * The file at `at` is an earlier success the job skips: written before this submission (a resume's
   * earlier attempt, or restored from the step cache), successful, of the same definition.
   */
  #doneBefore(slot: TaskSlot, at: number, step: PlanStep): boolean {
    const code = slot.codes?.[at] ?? 0;
    if (!(code & SUCCESS) || !(code & SAME_DEFINITION) || code & NO_CONTENT) return false;
    if (this.#current(slot, at) !== 0) return false;
    return step.idempotent || (code & CACHED) !== 0;
  }

  /** "skipped": the job skips the whole item (ended, but no sign that the task started). */
  #itemOutcome(slot: TaskSlot, k: number): "open" | "open-started" | "ok" | "skipped" | "failed" | "killed" {
    const body = bodyOfItem(slot.job, slot.taskId, slot.items[k] as number);
    if (body === undefined) return "skipped";
    const width = widthOf(slot.job);
    const base = k * width;
    const steps = body.steps;
    let started = false;
    for (let p = 0; p < steps.length; p++) {
      const code = this.#current(slot, base + p);
      if (code === 0) break;
      started = true;
      if (code & NO_CONTENT) continue;
      if (code & TERMINATED) return "killed";
      if (!(code & SUCCESS) && !(steps[p] as PlanStep).continue_on_error && body.unitKey === null) return "failed";
    }
    // Every step an earlier success the job skips (a packed task's restored or resumed items): nothing of this
    // item will be written, and its unit keeps its earlier state.
    const skipped = steps.length > 0 && steps.every((step, p) => this.#doneBefore(slot, base + p, step));
    if (body.unitKey !== null) {
      const at = base + width - 1;
      const unit = this.#current(slot, at);
      if (unit === 0) {
        if (skipped && ((slot.codes?.[at] ?? 0) & (SUCCESS | NO_CONTENT)) === SUCCESS) return "skipped";
        return started ? "open-started" : "open";
      }
      if (unit & NO_CONTENT) return "ok";
      return unit & SUCCESS || body.continue_on_error === true ? "ok" : "failed";
    }
    if (skipped) return "skipped";
    for (let p = 0; p < steps.length; p++) if (this.#current(slot, base + p) === 0 && !this.#doneBefore(slot, base + p, steps[p] as PlanStep)) return started ? "open-started" : "open";
    return "ok";
  }
}
