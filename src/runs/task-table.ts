/**
 * Every task of one plan job in ONE record: the few distinct states its
 * tasks are in ("kinds": state, reason, exit code, phase) and one small
 * number per task naming its kind. A 200,000-task array costs 400 KB here,
 * not 200,000 objects, and a task's full status is built only when asked.
 */
import type { ArraySpec } from "../plan/plan.js";
import { logicalTask } from "../plan/task-map.js";

/** How a task counts in the per-step view. */
export type TaskPhase = "pending" | "running" | "done" | "failed";

export interface TaskStatus {
  /** Logical task index (SLURM array task id + chunk offset); what `{i}` stands for. 0 for a plain job. */
  task: number;
  /** SLURM array task id (0 for a plain job). */
  taskId: number;
  /** The task's own SLURM job id once known. */
  slurmJobId: string | null;
  /** SLURM state by name (PENDING, RUNNING, COMPLETED, CANCELLED, ...). */
  state: string;
  /** SLURM's reason (Dependency, DependencyNeverSatisfied, TimeLimit, ...), or null. */
  reason: string | null;
  exitCode: number | null;
  signal: number | null;
  phase: TaskPhase;
  final: boolean;
}

/** What tasks in the same state share: a task's status less its ids. */
export type TaskKind = Omit<TaskStatus, "task" | "taskId" | "slurmJobId">;

/** How many tasks of a job are in one kind. */
export interface StateCount {
  state: string;
  reason: string | null;
  phase: TaskPhase;
  final: boolean;
  exitCode: number | null;
  count: number;
}

/** Up to this many tasks, `status --json` lists every task; above it, only the tasks that are failed or running. */
export const JSON_TASKS_MAX = 1000;

const kindKey = (k: TaskKind): string => `${k.state}\u0000${k.reason ?? "\u0001"}\u0000${k.exitCode ?? ""}\u0000${k.signal ?? ""}\u0000${k.phase}\u0000${k.final ? 1 : 0}`;

export class TaskTable implements Iterable<TaskStatus> {
  private constructor(
    private readonly array: ArraySpec | null,
    /** The job's SLURM id (an array's), or null when it was never submitted. */
    private readonly slurmJobId: string | null,
    /** The distinct kinds, in the order of their first task. */
    readonly kinds: readonly TaskKind[],
    private readonly codes: Uint16Array,
    /** Tasks per kind, same order as `kinds`. */
    private readonly perKind: readonly number[],
  ) {}

  /** Builds the table of `size` tasks (ids 0..size-1) from each task's kind, interning equal kinds. */
  static build(array: ArraySpec | null, slurmJobId: string | null, size: number, kindOf: (taskId: number) => TaskKind): TaskTable {
    const kinds: TaskKind[] = [];
    const perKind: number[] = [];
    const index = new Map<string, number>();
    const byObject = new Map<TaskKind, number>();
    const codes = new Uint16Array(size);
    let lastKind: TaskKind | null = null;
    let lastCode = 0;
    for (let t = 0; t < size; t++) {
      const kind = kindOf(t);
      let code: number;
      if (kind === lastKind) code = lastCode;
      else if (byObject.has(kind)) {
        code = byObject.get(kind) as number;
        lastKind = kind;
        lastCode = code;
      } else {
        const key = kindKey(kind);
        const known = index.get(key);
        if (known !== undefined) code = known;
        else {
          if (kinds.length === 0xffff) throw new RangeError(`more than ${0xffff} distinct task states in one job`);
          code = kinds.length;
          index.set(key, code);
          kinds.push({ state: kind.state, reason: kind.reason, exitCode: kind.exitCode, signal: kind.signal, phase: kind.phase, final: kind.final });
          perKind.push(0);
        }
        byObject.set(kind, code);
        lastKind = kind;
        lastCode = code;
      }
      codes[t] = code;
      perKind[code] = (perKind[code] ?? 0) + 1;
    }
    return new TaskTable(array, slurmJobId, kinds, codes, perKind);
  }

  /** The same job's table with each task's kind from `kindOf`. */
  rebuild(kindOf: (taskId: number) => TaskKind): TaskTable {
    return TaskTable.build(this.array, this.slurmJobId, this.codes.length, kindOf);
  }

  /** Number of tasks. */
  get size(): number {
    return this.codes.length;
  }

  /** The kind of task id `taskId`; undefined outside the job. */
  kindAt(taskId: number): TaskKind | undefined {
    if (!Number.isInteger(taskId) || taskId < 0 || taskId >= this.codes.length) return undefined;
    return this.kinds[this.codes[taskId] as number];
  }

  /** The whole status of task id `taskId` (built on demand); undefined outside the job. */
  at(taskId: number): TaskStatus | undefined {
    const kind = this.kindAt(taskId);
    if (kind === undefined) return undefined;
    const slurmJobId = this.slurmJobId === null ? null : this.array === null ? this.slurmJobId : `${this.slurmJobId}_${taskId}`;
    return { task: logicalTask(this.array, taskId), taskId, slurmJobId, ...kind };
  }

  /** The task id that runs logical task `task`, or undefined when this job does not run it. */
  taskIdOf(task: number): number | undefined {
    const a = this.array;
    if (a === null) return task === 0 ? 0 : undefined;
    if (a.indices === null) {
      const id = task - a.offset;
      return id >= 0 && id < this.codes.length ? id : undefined;
    }
    // Remapped ids list their logical tasks in ascending order (task-map.ts remapTasks).
    let lo = 0;
    let hi = a.indices.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = a.indices[mid] as number;
      if (v === task) return mid;
      if (v < task) lo = mid + 1;
      else hi = mid - 1;
    }
    const linear = a.indices.indexOf(task);
    return linear === -1 ? undefined : linear;
  }

  /** The status of logical task `task`; undefined when this job does not run it. */
  byTask(task: number): TaskStatus | undefined {
    const id = this.taskIdOf(task);
    return id === undefined ? undefined : this.at(id);
  }

  *[Symbol.iterator](): Iterator<TaskStatus> {
    for (let t = 0; t < this.codes.length; t++) yield this.at(t) as TaskStatus;
  }

  /** Every task as an object: for small jobs and tests. */
  list(): TaskStatus[] {
    return [...this];
  }

  /** The task ids whose kind passes `test`, without building a status per task. */
  taskIdsWhere(test: (kind: TaskKind) => boolean): number[] {
    const hit = this.kinds.map(test);
    const out: number[] = [];
    for (let t = 0; t < this.codes.length; t++) if (hit[this.codes[t] as number]) out.push(t);
    return out;
  }

  /** The tasks whose kind passes `test` (at most `limit`), in task id order. */
  where(test: (kind: TaskKind) => boolean, limit = Infinity): TaskStatus[] {
    const hit = this.kinds.map(test);
    const out: TaskStatus[] = [];
    if (!hit.some(Boolean)) return out;
    for (let t = 0; t < this.codes.length && out.length < limit; t++) if (hit[this.codes[t] as number]) out.push(this.at(t) as TaskStatus);
    return out;
  }

  /** Tasks per kind, most first. */
  tally(): StateCount[] {
    return this.kinds
      .map((k, i) => ({ state: k.state, reason: k.reason, phase: k.phase, final: k.final, exitCode: k.exitCode, count: this.perKind[i] ?? 0 }))
      .sort((a, b) => b.count - a.count);
  }

  /** Tasks per kind, in the order of `kinds`. */
  countOf(kindIndex: number): number {
    return this.perKind[kindIndex] ?? 0;
  }

  /** A text that changes exactly when some task's kind changes (kinds, plus a hash of every task's kind). */
  fingerprint(): string {
    let h = 0x811c9dc5;
    for (let t = 0; t < this.codes.length; t++) {
      h ^= this.codes[t] as number;
      h = Math.imul(h, 0x01000193);
    }
    return `${this.kinds.map((k) => `${k.state}/${k.reason ?? ""}`).join(",")}#${this.codes.length}:${(h >>> 0).toString(36)}`;
  }

  /**
   * What `status --json` shows: every task of a job with at most
   * JSON_TASKS_MAX tasks; for a bigger one only its failed and running tasks
   * (at most JSON_TASKS_MAX; the job's `states` counts the rest).
   */
  toJSON(): TaskStatus[] {
    if (this.codes.length <= JSON_TASKS_MAX) return this.list();
    return this.where((k) => k.phase === "failed" || k.phase === "running", JSON_TASKS_MAX);
  }
}
