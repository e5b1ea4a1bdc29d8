/**
 * A scheduler's answer about jobs and array tasks, compactly (issue 16): rows
 * ("segments") that each stand for ONE record shared by a set of task ids (a
 * pending range `52_[2-9%2]`, or one task's own row), in typed columns, with
 * the record fields interned as "templates". A million-row sacct answer is a
 * few columns of numbers and a handful of templates, not a million objects;
 * `records()` expands it to one TaskRecord per task for small answers and tests.
 */
import type { TaskRecord } from "./parse.js";

/** Bits of a segment's flags. */
const RANGE = 1;
/** The segment came from the fallback query (sacct/scontrol): squeue's own rows and ranges win over it. */
const FILL = 2;
/** The tasks of a segment of own rows have consecutive own job ids from `own` (else they share `own`). */
const SEQ = 4;

/** A segment with `first` WHOLE is a record without a task id (a plain job). */
const WHOLE = -1;
/** A segment with `own` EXACT is one task whose template is its whole record (an answer made of records). */
export const EXACT = -2;

export interface SegmentView {
  /** First task id, or -1 for a record without a task id. */
  first: number;
  last: number;
  step: number;
  /** The task's own job id (a task's own row), or -1 when the tasks share the array job id (a range). */
  own: number;
  /** The tasks' own ids count up from `own`. */
  seq: boolean;
  range: boolean;
  fill: boolean;
  template: TaskRecord;
}

/** How task ids in several segments are resolved: `dedupe` is the scheduler's (own row over range, later over earlier, squeue over the fallback); `first` takes the first segment. */
export type ResolveOrder = "dedupe" | "first";

export class TaskAnswer {
  private n = 0;
  private firsts = new Float64Array(8);
  private lasts = new Float64Array(8);
  private steps = new Float64Array(8);
  private owns = new Float64Array(8);
  private tpls = new Int32Array(8);
  private flags = new Uint8Array(8);
  /** Records shared by segments; a task's record is its template with its task id, own job id and printed id. */
  readonly templates: TaskRecord[] = [];

  constructor(readonly order: ResolveOrder = "dedupe") {}

  /** Number of segments. */
  get size(): number {
    return this.n;
  }

  /** Adds a template; returns its index for `add`. */
  template(record: TaskRecord): number {
    this.templates.push(record);
    return this.templates.length - 1;
  }

  private grow(): void {
    const cap = this.firsts.length * 2;
    const f64 = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.firsts = f64(this.firsts);
    this.lasts = f64(this.lasts);
    this.steps = f64(this.steps);
    this.owns = f64(this.owns);
    const t = new Int32Array(cap);
    t.set(this.tpls);
    this.tpls = t;
    const g = new Uint8Array(cap);
    g.set(this.flags);
    this.flags = g;
  }

  /**
   * One segment: task ids first..last by step sharing template `tpl` (first -1: a record without a task id).
   * `own`: the tasks' own job id (with `seq`, the first task's, the next ones counting up), unused for a range.
   */
  add(tpl: number, first: number, last: number, step: number, own: number, range: boolean, fill = false, seq = false): void {
    if (this.n === this.firsts.length) this.grow();
    const i = this.n++;
    this.firsts[i] = first;
    this.lasts[i] = last;
    this.steps[i] = step;
    this.owns[i] = own;
    this.tpls[i] = tpl;
    this.flags[i] = (range ? RANGE : 0) | (fill ? FILL : 0) | (seq ? SEQ : 0);
  }

  /**
   * One task's own row (own job id `own`), extending the last segment when it
   * continues it: the same template, the next task id, and the same own id (a
   * pending task of `squeue -r`) or the next one (tasks started in order).
   */
  addTask(tpl: number, taskId: number, own: number, fill = false): void {
    const i = this.n - 1;
    if (i >= 0 && this.tpls[i] === tpl && this.lasts[i] === taskId - 1 && this.steps[i] === 1) {
      const flags = this.flags[i] as number;
      if ((flags & (RANGE | FILL)) === (fill ? FILL : 0) && this.firsts[i] !== WHOLE && this.owns[i] !== EXACT) {
        const first = this.firsts[i] as number;
        const ownFirst = this.owns[i] as number;
        const single = first === taskId - 1;
        if ((flags & SEQ) !== 0 || single) {
          if (own === ownFirst + (taskId - first)) {
            this.lasts[i] = taskId;
            this.flags[i] = flags | SEQ;
            return;
          }
        }
        if ((flags & SEQ) === 0 || single) {
          if (own === ownFirst) {
            this.lasts[i] = taskId;
            this.flags[i] = flags & ~SEQ;
            return;
          }
        }
      }
    }
    this.add(tpl, taskId, taskId, 1, own, false, fill, false);
  }

  /** Adds a record without a task id. */
  addWhole(tpl: number, fill = false): void {
    this.add(tpl, WHOLE, WHOLE, 1, -1, false, fill);
  }

  /** Copies segment `i` of `from` (its template too, once per template) into this answer. */
  copyFrom(from: TaskAnswer, i: number, tplMap: Map<number, number>, fill = false, only?: number): void {
    const src = from.tpls[i] as number;
    let tpl = tplMap.get(src);
    if (tpl === undefined) {
      tpl = this.template(from.templates[src] as TaskRecord);
      tplMap.set(src, tpl);
    }
    const first = only ?? (from.firsts[i] as number);
    const last = only ?? (from.lasts[i] as number);
    const flags = from.flags[i] as number;
    const step = from.steps[i] as number;
    const own = (flags & SEQ) !== 0 && first !== WHOLE ? (from.owns[i] as number) + (first - (from.firsts[i] as number)) / step : (from.owns[i] as number);
    this.add(tpl, first, last, step, own, (flags & RANGE) !== 0, fill || (flags & FILL) !== 0, (flags & SEQ) !== 0);
  }

  segment(i: number): SegmentView {
    const flags = this.flags[i] as number;
    return {
      first: this.firsts[i] as number,
      last: this.lasts[i] as number,
      step: this.steps[i] as number,
      own: this.owns[i] as number,
      seq: (flags & SEQ) !== 0,
      range: (flags & RANGE) !== 0,
      fill: (flags & FILL) !== 0,
      template: this.templates[this.tpls[i] as number] as TaskRecord,
    };
  }

  isWhole(i: number): boolean {
    return this.firsts[i] === WHOLE;
  }

  templateIndex(i: number): number {
    return this.tpls[i] as number;
  }

  /** The task ids of segment i, in order (none for a record without a task id). */
  *taskIds(i: number): Generator<number> {
    const first = this.firsts[i] as number;
    if (first === WHOLE) return;
    const last = this.lasts[i] as number;
    const step = this.steps[i] as number;
    for (let t = first; t <= last; t += step) yield t;
  }

  /** The first record without a task id, as `records()` would list it; undefined when there is none. */
  whole(): TaskRecord | undefined {
    // As records() lists them: squeue's, then (when squeue named nothing, or in `first` order) the fallback's.
    const primary = this.hasPrimary();
    const wholes: TaskRecord[] = [];
    const fills: TaskRecord[] = [];
    for (let i = 0; i < this.n; i++) {
      if (this.firsts[i] !== WHOLE) continue;
      const into = ((this.flags[i] as number) & FILL) !== 0 ? fills : wholes;
      into.push(this.templates[this.tpls[i] as number] as TaskRecord);
    }
    if (this.order === "first") return wholes[0] ?? fills[0];
    return dedupe(primary ? wholes : fills)[0];
  }

  /** Whether any segment comes from squeue (not the fallback). */
  hasPrimary(): boolean {
    for (let i = 0; i < this.n; i++) if (((this.flags[i] as number) & FILL) === 0) return true;
    return false;
  }

  /** Marks which of task ids 0..size-1 some non-fallback segment names. */
  primaryCover(size: number): Uint8Array {
    const seen = new Uint8Array(size);
    for (let i = 0; i < this.n; i++) {
      if (((this.flags[i] as number) & FILL) !== 0 || this.firsts[i] === WHOLE) continue;
      const last = Math.min(this.lasts[i] as number, size - 1);
      const step = this.steps[i] as number;
      for (let t = this.firsts[i] as number; t <= last; t += step) seen[t] = 1;
    }
    return seen;
  }

  /** Every given task id is named by some non-fallback segment. */
  covers(taskIds: readonly number[]): boolean {
    let max = -1;
    for (const t of taskIds) if (t > max) max = t;
    if (max < 0) return true;
    const seen = this.primaryCover(max + 1);
    for (const t of taskIds) if (t >= 0 && seen[t] !== 1) return false;
    return true;
  }

  /**
   * For task ids 0..size-1, the segment that answers each (-1: none), by
   * this answer's order. `dedupe`: squeue's segments before the fallback's,
   * within each a task's own row before a range, a later row before an earlier one.
   */
  resolve(size: number): Int32Array {
    const win = new Int32Array(size).fill(-1);
    const pass = (fill: boolean, range: boolean): void => {
      for (let i = this.n - 1; i >= 0; i--) {
        const flags = this.flags[i] as number;
        if (this.firsts[i] === WHOLE || ((flags & FILL) !== 0) !== fill || ((flags & RANGE) !== 0) !== range) continue;
        const last = Math.min(this.lasts[i] as number, size - 1);
        const step = this.steps[i] as number;
        for (let t = this.firsts[i] as number; t <= last; t += step) if (win[t] === -1) win[t] = i;
      }
    };
    if (this.order === "first") {
      for (let i = 0; i < this.n; i++) {
        if (this.firsts[i] === WHOLE) continue;
        const last = Math.min(this.lasts[i] as number, size - 1);
        const step = this.steps[i] as number;
        for (let t = this.firsts[i] as number; t <= last; t += step) if (win[t] === -1) win[t] = i;
      }
      return win;
    }
    pass(false, false);
    pass(false, true);
    pass(true, false);
    pass(true, true);
    return win;
  }

  /** The record of task `taskId` in segment i (or of the job, for a record without a task id). */
  recordAt(i: number, taskId: number | null): TaskRecord {
    const s = this.segment(i);
    if (s.first === WHOLE || taskId === null || s.own === EXACT) return s.template;
    const arrayJobId = s.template.arrayJobId ?? s.template.jobId;
    if (s.range) return { ...s.template, jobId: arrayJobId, taskId };
    const own = s.seq ? s.own + (taskId - s.first) / s.step : s.own;
    return { ...s.template, jobId: String(own), taskId, rawId: `${arrayJobId}_${taskId}` };
  }

  /** Every segment's records, one per task, in the answer's order (no task named twice is left out). */
  expand(): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (let i = 0; i < this.n; i++) {
      if (this.firsts[i] === WHOLE) out.push(this.recordAt(i, null));
      else for (const t of this.taskIds(i)) out.push(this.recordAt(i, t));
    }
    return out;
  }

  /**
   * One record per task as the scheduler always gave them: squeue's records,
   * then the fallback's for tasks squeue did not name (for `dedupe` answers,
   * one per task: a task's own row over a range, a later row over an earlier one).
   */
  records(): TaskRecord[] {
    const primary: TaskRecord[] = [];
    const fallback: TaskRecord[] = [];
    for (let i = 0; i < this.n; i++) {
      const into = ((this.flags[i] as number) & FILL) !== 0 ? fallback : primary;
      if (this.firsts[i] === WHOLE) into.push(this.recordAt(i, null));
      else for (const t of this.taskIds(i)) into.push(this.recordAt(i, t));
    }
    if (this.order === "first") return [...primary, ...fallback];
    const out = primary;
    if (out.length === 0) {
      for (const r of fallback) out.push(r);
    } else {
      const tasks = new Set(out.map((r) => r.taskId));
      for (const r of fallback) if (r.taskId !== null && !tasks.has(r.taskId)) out.push(r);
    }
    return dedupe(out);
  }

  /** An answer of the given records, one segment each (a printed range `N_[...]` counts as a range row). */
  static fromRecords(records: readonly TaskRecord[], order: ResolveOrder = "first"): TaskAnswer {
    const answer = new TaskAnswer(order);
    for (const r of records) {
      const tpl = answer.template(r);
      if (r.taskId === null) answer.addWhole(tpl);
      else answer.add(tpl, r.taskId, r.taskId, 1, EXACT, r.rawId.includes("["));
    }
    return answer;
  }
}

/** The task a record describes: `46_3` for an array task, `44` for a plain job. */
export function taskKey(record: Pick<TaskRecord, "jobId" | "arrayJobId" | "taskId">): string {
  return record.arrayJobId !== null && record.taskId !== null ? `${record.arrayJobId}_${record.taskId}` : record.jobId;
}

/**
 * One record per task. sacct can list a task both inside a pending range and
 * on its own row (it lags slurmctld), and `sacct -D` lists every run of a
 * requeued job: a task's own row beats a range, and a later row beats an earlier one.
 */
export function dedupe(records: readonly TaskRecord[]): TaskRecord[] {
  const byTask = new Map<string, TaskRecord>();
  for (const record of records) {
    const key = taskKey(record);
    const previous = byTask.get(key);
    const isRange = record.rawId.includes("[");
    if (previous && isRange && !previous.rawId.includes("[")) continue;
    byTask.delete(key); // keep output order = order of the winning rows
    byTask.set(key, record);
  }
  return [...byTask.values()];
}
