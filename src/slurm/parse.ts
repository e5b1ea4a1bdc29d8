// Parsers for the outputs of the argv built in commands.ts: squeue, sacct,
// scontrol show job -o and sbatch --parsable. Each returns per-task records.
import { z } from "zod";
import { SlurmOutputError } from "./errors.js";
import { translateState, type JobState } from "./states.js";
import { dedupe, EXACT, TaskAnswer, taskKey as answerTaskKey } from "./task-answer.js";
import { SACCT_RUNS_TRAILER, SACCT_RUNS_VERSION } from "./sacct-runs.js";

export type RecordSource = "squeue" | "sacct" | "scontrol" | "local" | "none";

/** The state of one job, or of one task of an array job. */
export interface TaskRecord {
  /** The task's own job id (squeue %A, sacct JobIDRaw, scontrol JobId); tasks still pending inside a range share the array job id. */
  jobId: string;
  /** The array job id, or null for a job that is not an array. */
  arrayJobId: string | null;
  /** The array task index, or null for a job that is not an array. */
  taskId: number | null;
  /** The id as SLURM printed it: `44`, `46_3`, `52_[2-9%2]` (shared by the tasks expanded from it). */
  rawId: string;
  state: JobState;
  /** The state text as printed (`CANCELLED by 1001`, an unknown word...). */
  rawState: string;
  /** Why the job is pending or ended (`DependencyNeverSatisfied`, `JobArrayTaskLimit`, `TimeLimit`); null for `None`. */
  reason: string | null;
  /** The exit status of the batch script (ExitCode `3:0` gives 3); null when the source does not report it (squeue). */
  exitCode: number | null;
  /** The signal that ended it (ExitCode `0:9` gives 9); null when not reported. */
  signal: number | null;
  /** The uid that cancelled it, from sacct's `CANCELLED by <uid>`. */
  cancelledBy?: string;
  /** The dependency expression as squeue/scontrol show it (`afterok:45(failed)`); absent when none or not reported. */
  dependency?: string;
  /** The job's `--comment` (`hpcpipe:<runId>`) when the source reports it (squeue %k, scontrol Comment=). */
  comment?: string;
  source: RecordSource;
}

const JOB_ID = /^\d+$/;
// A job id as squeue %i / sacct JobID print it: 44, 46_3, 52_[2-9%2], a hetjob component 7+1.
const PRINTED_ID = /^(\d+)(?:_(\d+)|_\[([^\]]+)\]|\+(\d+))?$/;

interface ParsedId {
  /** The array job id (or the job id of a plain job). */
  baseId: string;
  taskIds: number[] | null;
  isRange: boolean;
}

/** Splits a printed job id into its array job id and task ids (a range is expanded); null when it has another shape. */
export function parsePrintedJobId(rawId: string): ParsedId | null {
  const match = PRINTED_ID.exec(rawId);
  if (!match?.[1]) return null;
  if (match[2] !== undefined) return { baseId: match[1], taskIds: [Number(match[2])], isRange: false };
  if (match[3] !== undefined) {
    const taskIds = expandArrayRange(match[3]);
    return taskIds ? { baseId: match[1], taskIds, isRange: true } : null;
  }
  return { baseId: match[1], taskIds: null, isRange: false };
}

/**
 * An array index expression as SLURM prints pending tasks (`2-9%2`,
 * `1,3,5-7`, `0-15:4%3`) as runs of [first, last, step]. The throttle (`%N`)
 * is dropped. Null when malformed.
 */
export function arrayRanges(expression: string): Array<[number, number, number]> | null {
  const withoutThrottle = expression.replace(/%\d+$/, "");
  const runs: Array<[number, number, number]> = [];
  for (const part of withoutThrottle.split(",")) {
    const match = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!match?.[1]) return null;
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    const step = match[3] === undefined ? 1 : Number(match[3]);
    if (last < first || step < 1) return null;
    runs.push([first, last, step]);
  }
  return runs;
}

/**
 * Expands an array index expression as SLURM prints pending tasks: `2-9%2`,
 * `1,3,5-7`, `0-15:4%3`. The throttle (`%N`) is dropped. Null when malformed.
 */
export function expandArrayRange(expression: string): number[] | null {
  const runs = arrayRanges(expression);
  if (runs === null) return null;
  const ids: number[] = [];
  for (const [first, last, step] of runs) for (let id = first; id <= last; id += step) ids.push(id);
  return ids;
}

/** `3:0` -> exit 3, signal 0; `0:9` -> exit 0, signal 9; anything else -> nulls. */
export function parseExitCode(text: string | undefined): { exitCode: number | null; signal: number | null } {
  const match = /^(\d+):(\d+)$/.exec(text?.trim() ?? "");
  if (!match?.[1] || !match[2]) return { exitCode: null, signal: null };
  return { exitCode: Number(match[1]), signal: Number(match[2]) };
}

function nullable(text: string | undefined): string | null {
  const value = text?.trim() ?? "";
  return value === "" || value === "None" || value === "(null)" || value === "N/A" ? null : value;
}

/**
 * Calls `each` with the bounds of every line that is not blank (a trailing CR
 * left out) and its 1-based number; no string per line is made.
 */
function forEachLineAt(stdout: string, each: (start: number, end: number, lineNumber: number) => void): void {
  let start = 0;
  let lineNumber = 0;
  const length = stdout.length;
  while (start < length) {
    let next = stdout.indexOf("\n", start);
    if (next === -1) next = length;
    lineNumber++;
    const end = stdout.charCodeAt(next - 1) === 13 && next > start ? next - 1 : next;
    const from = start;
    start = next + 1;
    if (end === from || (stdout.charCodeAt(from) <= 32 && stdout.slice(from, end).trim() === "")) continue;
    each(from, end, lineNumber);
  }
}

/** Calls `each` for every line that is not blank (a trailing CR dropped), with its 1-based number; no array of lines is made. */
function forEachLine(stdout: string, each: (line: string, lineNumber: number) => void): void {
  forEachLineAt(stdout, (start, end, lineNumber) => each(stdout.slice(start, end), lineNumber));
}

/** The first `|` at or after `from` and before `end`, or -1. */
function bar(text: string, from: number, end: number): number {
  const at = text.indexOf("|", from);
  return at === -1 || at >= end ? -1 : at;
}

/** The `|` after the one at `previous` (-1: none) and before `end`, or -1. */
function nextBar(text: string, previous: number, end: number): number {
  return previous === -1 ? -1 : bar(text, previous + 1, end);
}

/** The whole number written at `text[start..end)` (digits only, at most 15), or -1. */
function numberAt(text: string, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

/** The lines that are not blank, with their numbers (for the answers that stay small: report's sacct). */
function lines(stdout: string): Array<{ line: string; lineNumber: number }> {
  const out: Array<{ line: string; lineNumber: number }> = [];
  forEachLine(stdout, (line, lineNumber) => out.push({ line, lineNumber }));
  return out;
}

function invalid(error: z.ZodError, line: string, lineNumber: number, what: string): SlurmOutputError {
  return new SlurmOutputError(`unexpected ${what} line: ${z.prettifyError(error)}`, line, lineNumber);
}

interface RecordBase {
  rawId: string;
  /** The job id SLURM reports for the row (the task's own id once it has started). */
  ownJobId: string;
  state: string;
  reason: string | null;
  exitCode: number | null;
  signal: number | null;
  dependency?: string;
  comment?: string;
  source: RecordSource;
}

/** The record a row gives (its task id and job id are set per task from the segment). */
function rowTemplate(row: RecordBase, taskId: number | null, jobId: string, arrayJobId: string | null): TaskRecord {
  const translated = translateState(row.state);
  return {
    jobId: copied(jobId),
    arrayJobId: arrayJobId === null ? null : copied(arrayJobId),
    taskId,
    rawId: copied(row.rawId),
    state: translated.state,
    rawState: copied(translated.raw),
    reason: row.reason === null ? null : copied(row.reason),
    exitCode: row.exitCode,
    signal: row.signal,
    ...(translated.cancelledBy !== undefined ? { cancelledBy: copied(translated.cancelledBy) } : {}),
    ...(row.dependency !== undefined ? { dependency: copied(row.dependency) } : {}),
    ...(row.comment !== undefined ? { comment: copied(row.comment) } : {}),
    source: row.source,
  };
}

/**
 * A string of its own: a piece cut from the answer may share the whole
 * answer's memory (tens of MB for a big sacct), and a record kept from one
 * poll to the next (a task's last final state) would keep it all. Once per
 * template, not per row.
 */
function copied(text: string): string {
  return text.length < 13 ? text : Buffer.from(text, "utf8").toString("utf8");
}

// One row: a range row is one segment per run of its indices, all sharing the array job id; a task's row one exact record.
function addRow(answer: TaskAnswer, row: RecordBase, parsed: ParsedId, arrayJobIdHint: string | null, ranges: Array<[number, number, number]> | null): void {
  if (parsed.taskIds === null && ranges === null) {
    answer.addWhole(answer.template(rowTemplate(row, null, row.ownJobId, arrayJobIdHint)));
    return;
  }
  const arrayJobId = arrayJobIdHint ?? parsed.baseId;
  if (ranges !== null) {
    const tpl = answer.template(rowTemplate(row, ranges[0]?.[0] ?? 0, arrayJobId, arrayJobId));
    for (const [first, last, step] of ranges) answer.add(tpl, first, last, step, -1, true);
    return;
  }
  for (const taskId of parsed.taskIds ?? []) {
    const record = rowTemplate(row, taskId, parsed.isRange ? arrayJobId : row.ownJobId, arrayJobId);
    answer.add(answer.template(record), taskId, taskId, 1, EXACT, parsed.isRange);
  }
}

/**
 * The rows of the common shape (`46_3` with a numeric own id and array id),
 * compactly: rows of one array whose remaining fields (the "tail") are the
 * same text share one template, validated once; neighbouring tasks extend one
 * segment. The tail is compared in place: no string per row.
 */
class RowInterner {
  private readonly byKey = new Map<string, number>();
  /** Per distinct tail, the record it gave (validated once, whatever the array). */
  private readonly byTail = new Map<string, TaskRecord>();
  private lastArray = -1;
  private lastTail = "";
  private lastTpl = -1;
  constructor(
    private readonly answer: TaskAnswer,
    private readonly text: string,
  ) {}

  /** The text from `start` is the last tail (its length already checked): a loop, faster here than startsWith with a position. */
  private sameTail(start: number): boolean {
    const tail = this.lastTail;
    const text = this.text;
    for (let i = tail.length - 1; i >= 0; i--) if (text.charCodeAt(start + i) !== tail.charCodeAt(i)) return false;
    return true;
  }

  /**
   * The template of the row of task `taskId` (own job id `own`) of array
   * `arrayJobId` whose tail is `text[start..end)`; `make` checks the whole
   * row and builds its record the first time a tail is seen.
   */
  templateOf(arrayJobId: number, taskId: number, own: number, start: number, end: number, make: () => TaskRecord): number {
    if (this.lastTpl !== -1 && arrayJobId === this.lastArray && end - start === this.lastTail.length && this.sameTail(start)) return this.lastTpl;
    const tail = this.text.slice(start, end);
    const key = `${arrayJobId}|${tail}`;
    let tpl = this.byKey.get(key);
    if (tpl === undefined) {
      const seen = this.byTail.get(tail);
      let record: TaskRecord;
      if (seen === undefined) {
        record = make();
        this.byTail.set(tail, record);
      } else {
        // The same text for another array: the same record but for its ids (a task's are set per task).
        const array = String(arrayJobId);
        record = { ...seen, jobId: String(own), arrayJobId: array, taskId, rawId: `${array}_${taskId}` };
      }
      tpl = this.answer.template(record);
      this.byKey.set(key, tpl);
    }
    this.lastArray = arrayJobId;
    this.lastTail = tail;
    this.lastTpl = tpl;
    return tpl;
  }
}

/** The squeue format hpcpipe asks for; the comment is last because it may contain `|`. */
export const SQUEUE_FORMAT = "%i|%A|%F|%K|%T|%r|%E|%k";

const SqueueRow = z.object({
  rawId: z.string().regex(PRINTED_ID),
  jobId: z.string().regex(JOB_ID),
  arrayJobId: z.string().regex(JOB_ID),
  taskField: z.string().min(1),
  state: z.string().min(1),
  reason: z.string(),
  dependency: z.string(),
  comment: z.string().optional(),
});

/** Parses `squeue -h -o '%i|%A|%F|%K|%T|%r|%E|%k'` (with or without -r; the trailing %k is optional): one record per task. */
export function parseSqueue(stdout: string): TaskRecord[] {
  return parseSqueueAnswer(stdout).expand();
}

/**
 * Parses `squeue -h -o '%i|%A|%F|%K|%T|%r|%E|%k'` (with or without -r; the
 * trailing %k is optional) into a TaskAnswer: a pending range stays one
 * segment, and tasks in order with the same state, reason, dependency and
 * comment share one, so a million rows are not a million records. Every row
 * is checked as SqueueRow says; a row's state, reason, dependency and comment
 * text is validated once per distinct text.
 */
export function parseSqueueAnswer(stdout: string): TaskAnswer {
  const answer = new TaskAnswer();
  const interner = new RowInterner(answer, stdout);
  forEachLineAt(stdout, (start, end, lineNumber) => {
    // The common row: a task's own row `46_3|50|46|3|STATE|...`, every id numeric, the array id as in %i.
    const p1 = bar(stdout, start, end);
    const p2 = nextBar(stdout, p1, end);
    const p3 = nextBar(stdout, p2, end);
    const p4 = nextBar(stdout, p3, end);
    const p6 = nextBar(stdout, nextBar(stdout, p4, end), end);
    if (p6 !== -1) {
      const under = stdout.indexOf("_", start);
      const arrayJobId = numberAt(stdout, p2 + 1, p3);
      if (under !== -1 && under < p1 && under - start === p3 - p2 - 1 && arrayJobId !== -1 && numberAt(stdout, start, under) === arrayJobId && !(p4 === p3 + 4 && stdout.startsWith("N/A", p3 + 1))) {
        const taskId = numberAt(stdout, under + 1, p1);
        const own = numberAt(stdout, p1 + 1, p2);
        if (taskId !== -1 && own !== -1 && p4 > p3 + 1) {
          const tpl = interner.templateOf(arrayJobId, taskId, own, p4 + 1, end, () => squeueRecord(stdout.slice(start, end), lineNumber).template);
          answer.addTask(tpl, taskId, own);
          return;
        }
      }
    }
    const line = stdout.slice(start, end);
    if (p6 === -1) throw new SlurmOutputError("squeue line has fewer than 7 fields", line, lineNumber);
    const { row, parsedId, isArray, ranges } = squeueRecord(line, lineNumber);
    addRow(answer, row, isArray ? parsedId : { ...parsedId, taskIds: null }, isArray ? row.arrayJobIdField : null, isArray ? ranges : null);
  });
  return answer;
}

/** One squeue line checked in full (SqueueRow) and read: its record, as the first task of the row. */
function squeueRecord(line: string, lineNumber: number): { row: RecordBase & { arrayJobIdField: string }; parsedId: ParsedId; isArray: boolean; ranges: Array<[number, number, number]> | null; template: TaskRecord } {
  const fields = line.split("|");
  const [rawId, jobId, arrayJobId, taskField, state, reason, dependency, ...comment] = fields;
  const parsedRow = SqueueRow.safeParse({
    rawId,
    jobId,
    arrayJobId,
    taskField,
    state,
    reason,
    dependency,
    comment: comment.length > 0 ? comment.join("|") : undefined,
  });
  if (!parsedRow.success) throw invalid(parsedRow.error, line, lineNumber, "squeue");
  const data = parsedRow.data;
  const parsedId = parseRowId(data.rawId);
  if (!parsedId) throw new SlurmOutputError("squeue job id has an unknown shape", line, lineNumber);
  const isArray = data.taskField !== "N/A";
  const dependencyText = nullable(data.dependency);
  const commentText = data.comment === undefined ? null : nullable(data.comment);
  const row = {
    rawId: data.rawId,
    ownJobId: data.jobId,
    arrayJobIdField: data.arrayJobId,
    state: data.state,
    reason: nullable(data.reason),
    exitCode: null,
    signal: null,
    ...(dependencyText !== null ? { dependency: dependencyText } : {}),
    ...(commentText !== null ? { comment: commentText } : {}),
    source: "squeue" as const,
  };
  const first = parsedId.ranges?.[0]?.[0] ?? null;
  const template = rowTemplate(row, isArray ? first : null, data.jobId, isArray ? data.arrayJobId : null);
  return { row, parsedId: parsedId.id, isArray, ranges: parsedId.ranges, template };
}

/** A printed id split into its array job id and, for a range, runs of task ids (not expanded). */
function parseRowId(rawId: string): { id: ParsedId; ranges: Array<[number, number, number]> | null } | null {
  const match = PRINTED_ID.exec(rawId);
  if (!match?.[1]) return null;
  if (match[2] !== undefined) return { id: { baseId: match[1], taskIds: [Number(match[2])], isRange: false }, ranges: null };
  if (match[3] !== undefined) {
    const ranges = arrayRanges(match[3]);
    return ranges ? { id: { baseId: match[1], taskIds: [], isRange: true }, ranges } : null;
  }
  return { id: { baseId: match[1], taskIds: null, isRange: false }, ranges: null };
}

/** The sacct fields hpcpipe asks for, in this order (all exist in 22.05: `sacct --helpformat`). */
export const SACCT_FIELDS = ["JobID", "JobIDRaw", "State", "ExitCode", "Reason"] as const;

const SacctRow = z.object({
  rawId: z.string().min(1),
  jobIdRaw: z.string().min(1),
  state: z.string().min(1),
  exitCode: z.string(),
  reason: z.string(),
});

/**
 * Parses `sacct -n -P -o JobID,JobIDRaw,State,ExitCode,Reason`. Step rows
 * (`45.batch`, present without -X) are skipped; a pending range such as
 * `52_[2-9%2]` becomes one record per task.
 */
export function parseSacct(stdout: string): TaskRecord[] {
  return parseSacctAnswer(stdout).expand();
}

/**
 * Parses `sacct -n -P -o JobID,JobIDRaw,State,ExitCode,Reason` into a
 * TaskAnswer (see parseSqueueAnswer): step rows are skipped, a pending range
 * stays one segment, tasks in order in the same state share one.
 */
export function parseSacctAnswer(stdout: string): TaskAnswer {
  return readSacct(stdout, false).answer;
}

/** The largest array task index SLURM allows (MaxArraySize is at most 4,000,001). */
const MAX_TASK_ID = 4_000_000;

/** The filter's trailer line (src/slurm/sacct-runs.ts): `~hpcpipe-sacct|<version>|<rows read>`. */
const SacctRunsTrailer = z.tuple([z.literal(SACCT_RUNS_TRAILER), z.literal(String(SACCT_RUNS_VERSION)), z.string().regex(/^\d{1,15}$/)]);

/**
 * Parses sacct's answer as the cluster's filter sends it (src/slurm/sacct-runs.ts,
 * SACCT_RUNS_AWK): sacct's own rows, read as parseSacctAnswer reads them, and
 * run lines `~A|first|last|own|mode|TAIL`, each standing for the rows
 * `A_t|own_t|TAIL` of tasks t = first..last (own_t = own + t - first for mode
 * `s`, own for mode `e`; for mode `a`, own is A: sacctRunsArgv's
 * `taskJobIds: false`, the tasks' own ids were not sent), in their place. The answer is the same, segment for
 * segment, as parseSacctAnswer's of the rows the filter read. The last line
 * must be the trailer `~hpcpipe-sacct|1|N` (checked with zod) and N the number
 * of rows the lines stand for: an answer cut short, or not from the filter,
 * is refused (SlurmOutputError), as is a run line of another shape. A run
 * line's ids are checked here; its TAIL, like a row's, once per distinct text
 * with zod (SacctRow).
 */
export function parseSacctRunsAnswer(stdout: string): TaskAnswer {
  let end = stdout.length;
  while (end > 0 && stdout.charCodeAt(end - 1) <= 32) end--;
  const from = stdout.lastIndexOf("\n", end - 1) + 1;
  const last = stdout.slice(from, end);
  const lineCount = (): number => {
    let n = 1;
    for (let i = stdout.indexOf("\n"); i !== -1 && i < from; i = stdout.indexOf("\n", i + 1)) n++;
    return n;
  };
  const trailer = SacctRunsTrailer.safeParse(last.split("|"));
  if (!trailer.success) throw new SlurmOutputError(`the sacct filter's answer does not end with its trailer ${SACCT_RUNS_TRAILER}|${SACCT_RUNS_VERSION}|<rows>`, last, lineCount());
  const { answer, rows } = readSacct(stdout.slice(0, from), true);
  const read = Number(trailer.data[2]);
  if (rows !== read) throw new SlurmOutputError(`the sacct filter read ${read} rows but its answer stands for ${rows}`, last, lineCount());
  return answer;
}

/** The sacct rows of `stdout` (with `runs`, the filter's run lines too) and how many rows they stand for. */
function readSacct(stdout: string, runs: boolean): { answer: TaskAnswer; rows: number } {
  const answer = new TaskAnswer();
  const interner = new RowInterner(answer, stdout);
  let rows = 0;
  forEachLineAt(stdout, (start, end, lineNumber) => {
    if (runs && stdout.charCodeAt(start) === 126 /* ~ */) {
      rows += runLine(answer, interner, stdout, start, end, lineNumber);
      return;
    }
    rows++;
    const p1 = bar(stdout, start, end);
    const p2 = nextBar(stdout, p1, end);
    const p3 = nextBar(stdout, p2, end);
    const p4 = nextBar(stdout, p3, end);
    // The common row: an array task's own row `46_3|50|STATE|...` with a numeric JobIDRaw and a state.
    if (p4 !== -1 && p3 > p2 + 1) {
      const under = stdout.indexOf("_", start);
      const arrayJobId = under !== -1 && under < p1 ? numberAt(stdout, start, under) : -1;
      const taskId = arrayJobId !== -1 ? numberAt(stdout, under + 1, p1) : -1;
      const own = taskId !== -1 ? numberAt(stdout, p1 + 1, p2) : -1;
      if (own !== -1) {
        const tpl = interner.templateOf(arrayJobId, taskId, own, p2 + 1, end, () => sacctRecord(stdout.slice(start, end), lineNumber)?.template as TaskRecord);
        answer.addTask(tpl, taskId, own);
        return;
      }
    }
    const line = stdout.slice(start, end);
    if (p4 === -1) throw new SlurmOutputError("sacct line has too few fields", line, lineNumber);
    const read = sacctRecord(line, lineNumber);
    if (read === null) return; // a job step, not the allocation
    addRow(answer, read.row, read.parsedId, read.isArray ? read.parsedId.baseId : null, read.ranges);
  });
  return { answer, rows };
}

/**
 * One run line of the filter, `~A|first|last|own|mode|TAIL`, as one segment
 * (the rows it stands for would have made the same one); returns how many rows
 * it stands for. Every id is 1-15 digits, first < last <= 4,000,000, mode `s`,
 * `e` or `a` (own = A) (so own ids stay below 2^53); the row of its first task is checked in full the first time its TAIL is seen.
 */
function runLine(answer: TaskAnswer, interner: RowInterner, text: string, start: number, end: number, lineNumber: number): number {
  const bad = (what: string): SlurmOutputError => new SlurmOutputError(`sacct filter run line ${what}`, text.slice(start, end), lineNumber);
  const p1 = bar(text, start + 1, end);
  const p2 = nextBar(text, p1, end);
  const p3 = nextBar(text, p2, end);
  const p4 = nextBar(text, p3, end);
  const p5 = nextBar(text, p4, end);
  if (p5 === -1) throw bad("has fewer than 6 fields (~A|first|last|own|mode|...)");
  const arrayJobId = numberAt(text, start + 1, p1);
  const first = numberAt(text, p1 + 1, p2);
  const last = numberAt(text, p2 + 1, p3);
  const own = numberAt(text, p3 + 1, p4);
  if (arrayJobId === -1 || first === -1 || last === -1 || own === -1) throw bad("has an array job id, task id or own job id that is not 1-15 digits");
  if (first >= last || last > MAX_TASK_ID) throw bad(`has tasks ${first}-${last} (first below last, at most ${MAX_TASK_ID})`);
  const mode = p5 === p4 + 2 ? text.charCodeAt(p4 + 1) : -1;
  if (mode !== 115 /* s */ && mode !== 101 /* e */ && mode !== 97 /* a */) throw bad("has a mode that is not s, e or a");
  if (mode === 97 && own !== arrayJobId) throw bad("of mode a has an own job id that is not its array job id");
  const seq = mode === 115;
  const tpl = interner.templateOf(arrayJobId, first, own, p5 + 1, end, () => {
    // The row of the run's first task, as sacct printed it.
    const row = `${text.slice(start + 1, p1)}_${text.slice(p1 + 1, p2)}|${text.slice(p3 + 1, p4)}|${text.slice(p5 + 1, end)}`;
    return sacctRecord(row, lineNumber)?.template as TaskRecord;
  });
  answer.add(tpl, first, last, 1, own, false, false, seq);
  return last - first + 1;
}

/** One sacct line checked in full (SacctRow) and read; null for a job step (`45.batch`). */
function sacctRecord(line: string, lineNumber: number): { row: RecordBase; parsedId: ParsedId; isArray: boolean; ranges: Array<[number, number, number]> | null; template: TaskRecord } | null {
  const [rawId, jobIdRaw, state, exitCode, ...reason] = line.split("|");
  const parsedRow = SacctRow.safeParse({ rawId, jobIdRaw, state, exitCode, reason: reason.join("|") });
  if (!parsedRow.success) throw invalid(parsedRow.error, line, lineNumber, "sacct");
  const data = parsedRow.data;
  if (data.rawId.includes(".")) return null;
  const parsed = parseRowId(data.rawId);
  if (!parsed) throw new SlurmOutputError("sacct JobID has an unknown shape", line, lineNumber);
  const isArray = parsed.id.taskIds !== null;
  const row: RecordBase = {
    rawId: data.rawId,
    ownJobId: JOB_ID.test(data.jobIdRaw) ? data.jobIdRaw : parsed.id.baseId,
    state: data.state,
    reason: nullable(data.reason),
    ...parseExitCode(data.exitCode),
    source: "sacct",
  };
  const first = parsed.ranges?.[0]?.[0] ?? parsed.id.taskIds?.[0] ?? null;
  return { row, parsedId: parsed.id, isArray, ranges: parsed.ranges, template: rowTemplate(row, isArray ? first : null, row.ownJobId, isArray ? parsed.id.baseId : null) };
}

/**
 * The fields of the one-query timing lookup (`hpcpipe report`), in this order.
 * Asked for with SLURM_TIME_FORMAT=%s, so the times are epoch seconds and no
 * time zone of the cluster has to be guessed.
 */
export const SACCT_TIME_FIELDS = ["JobID", "JobIDRaw", "State", "Submit", "Eligible", "Start", "End", "NodeList"] as const;

/** When one job or array task was submitted, became eligible (its dependencies met), started and ended, and where it ran. */
export interface JobTimesRecord {
  /** The task's own job id (JobIDRaw); for a pending range, the array job id. */
  jobId: string;
  arrayJobId: string | null;
  taskId: number | null;
  /** The id as sacct printed it (`44`, `46_3`, `52_[2-9%2]`). */
  rawId: string;
  state: JobState;
  rawState: string;
  /** Epoch seconds; null when SLURM does not know it (`Unknown`, `None`). */
  submit: number | null;
  eligible: number | null;
  start: number | null;
  end: number | null;
  /** The nodes it ran on (`node01`, `node[01-04]`); null when none was assigned. */
  nodes: string | null;
}

const EPOCH_OR_UNKNOWN = z.union([z.string().regex(/^\d{1,12}$/), z.enum(["Unknown", "None", ""])]);

const SacctTimesRow = z.object({
  rawId: z.string().regex(PRINTED_ID),
  jobIdRaw: z.string().regex(JOB_ID),
  state: z.string().min(1).max(128),
  submit: EPOCH_OR_UNKNOWN,
  eligible: EPOCH_OR_UNKNOWN,
  start: EPOCH_OR_UNKNOWN,
  end: EPOCH_OR_UNKNOWN,
  nodes: z.string().max(4096),
});

function epoch(text: string): number | null {
  return /^\d+$/.test(text) ? Number(text) : null;
}

/**
 * Parses `SLURM_TIME_FORMAT=%s sacct -X -n -P -o JobID,JobIDRaw,State,Submit,Eligible,Start,End,NodeList`.
 * Step rows are skipped; a pending range (`52_[2-9%2]`) becomes one record per
 * task, without start, end or node. Times that are not epoch seconds (the
 * query was run without SLURM_TIME_FORMAT=%s) are refused: local wall-clock
 * times without a zone could be hours off.
 */
export function parseSacctTimes(stdout: string): JobTimesRecord[] {
  const records: JobTimesRecord[] = [];
  for (const { line, lineNumber } of lines(stdout)) {
    const fields = line.split("|");
    if (fields.length !== SACCT_TIME_FIELDS.length) {
      throw new SlurmOutputError(`sacct line has ${fields.length} fields, expected ${SACCT_TIME_FIELDS.length}`, line, lineNumber);
    }
    const [rawId, jobIdRaw, state, submit, eligible, start, end, nodes] = fields;
    if (rawId?.includes(".")) continue; // a job step (`45.batch`), not the allocation
    const parsedRow = SacctTimesRow.safeParse({ rawId, jobIdRaw, state, submit, eligible, start, end, nodes });
    if (!parsedRow.success) throw invalid(parsedRow.error, line, lineNumber, "sacct");
    const row = parsedRow.data;
    const parsedId = parsePrintedJobId(row.rawId);
    if (!parsedId) throw new SlurmOutputError("sacct JobID has an unknown shape", line, lineNumber);
    const translated = translateState(row.state);
    const nodeText = nullable(row.nodes);
    const common = {
      rawId: row.rawId,
      state: translated.state,
      rawState: translated.raw,
      submit: epoch(row.submit),
      eligible: epoch(row.eligible),
      start: epoch(row.start),
      end: epoch(row.end),
      nodes: nodeText === null || nodeText === "None assigned" ? null : nodeText,
    };
    if (parsedId.taskIds === null) {
      records.push({ jobId: row.jobIdRaw, arrayJobId: null, taskId: null, ...common });
      continue;
    }
    for (const taskId of parsedId.taskIds) {
      records.push({ jobId: parsedId.isRange ? parsedId.baseId : row.jobIdRaw, arrayJobId: parsedId.baseId, taskId, ...common });
    }
  }
  return records;
}

/** Keys of `scontrol show job -o` whose values are free text and may contain spaces and `=`. */
const FREE_TEXT_KEYS = new Set([
  "JobName",
  "Reason",
  "Comment",
  "AdminComment",
  "SystemComment",
  "Command",
  "WorkDir",
  "StdErr",
  "StdIn",
  "StdOut",
  "Features",
  "Prefer",
  "Reservation",
  "Licenses",
  "Network",
  "Dependency",
]);

/** Keys scontrol 22.05 prints for a job (seen in test/fixtures/slurm/scontrol-*.json). */
const KNOWN_KEYS = new Set([
  "JobId", "ArrayJobId", "ArrayTaskId", "ArrayTaskThrottle", "HetJobId", "HetJobOffset", "HetJobIdSet",
  "JobName", "UserId", "GroupId", "MCS_label", "Priority", "Nice", "Account", "QOS", "JobState", "Reason",
  "Dependency", "Requeue", "Restarts", "BatchFlag", "Reboot", "ExitCode", "DerivedExitCode", "RunTime",
  "TimeLimit", "TimeMin", "SubmitTime", "EligibleTime", "AccrueTime", "StartTime", "EndTime", "Deadline",
  "PreemptEligibleTime", "PreemptTime", "SuspendTime", "SecsPreSuspend", "LastSchedEval", "ResizeTime",
  "Scheduler", "Partition", "AllocNode:Sid", "ReqNodeList", "ExcNodeList", "NodeList", "BatchHost", "NumNodes",
  "NumCPUs", "NumTasks", "CPUs/Task", "ReqB:S:C:T", "TRES", "Socks/Node", "NtasksPerN:B:S:C", "CoreSpec",
  "MinCPUsNode", "MinMemoryNode", "MinMemoryCPU", "MinTmpDiskNode", "Features", "Prefer", "DelayBoot",
  "OverSubscribe", "Contiguous", "Licenses", "Network", "Command", "WorkDir", "StdErr", "StdIn", "StdOut",
  "Power", "Comment", "AdminComment", "SystemComment", "Reservation", "MailUser", "MailType", "TresPerNode",
  "TresPerTask", "CpusPerTres", "MemPerTres", "TresBind", "TresFreq", "NtasksPerTRES", "Container",
  "ContainerID", "KillOInInvalidDependent", "OverTimeLimit", "Partitions", "BurstBuffer", "BurstBufferState",
  "CPU_Bind", "Mem_Bind", "CpuFreqMin", "CpuFreqMax", "CpuFreqGov", "Switches", "Wait-for-Switch",
]);

/**
 * Parses one `scontrol show job -o` line of `Key=Value` pairs separated by
 * spaces. A value may contain spaces (`Reason=ReqNodeNotAvail, UnavailableNodes:n1`,
 * `WorkDir=/my dir`): text up to the next ` Key=` belongs to the value, and a
 * ` word=` that is not a key scontrol prints is kept inside a free-text value.
 */
export function parseScontrolLine(line: string): Map<string, string> {
  const pairs = new Map<string, string>();
  const tokens = line.trim().split(/ (?=[A-Za-z][\w:/+-]*=)/);
  let lastKey: string | null = null;
  for (const token of tokens) {
    const equals = token.indexOf("=");
    const key = equals > 0 ? token.slice(0, equals) : "";
    const continuesFreeText = lastKey !== null && FREE_TEXT_KEYS.has(lastKey) && !KNOWN_KEYS.has(key);
    if (equals <= 0 || continuesFreeText) {
      if (lastKey !== null) pairs.set(lastKey, `${pairs.get(lastKey) ?? ""} ${token}`);
      continue;
    }
    pairs.set(key, token.slice(equals + 1));
    lastKey = key;
  }
  // scontrol pads some values with a trailing space (`Comment=x  StdErr=`).
  for (const [key, value] of pairs) pairs.set(key, value.trimEnd());
  return pairs;
}

const ScontrolJob = z.object({
  JobId: z.string().regex(JOB_ID),
  JobState: z.string().min(1),
  ArrayJobId: z.string().regex(JOB_ID).optional(),
  ArrayTaskId: z.string().min(1).optional(),
  Reason: z.string().optional(),
  Dependency: z.string().optional(),
  ExitCode: z.string().optional(),
  Comment: z.string().optional(),
});

/** Parses `scontrol show job -o [id]`: one line per job or array task (a pending range expands to its tasks). */
export function parseScontrol(stdout: string): TaskRecord[] {
  return parseScontrolAnswer(stdout).expand();
}

/** Parses `scontrol show job -o [id]` into a TaskAnswer: a pending range (`ArrayTaskId=2-199999%50`) stays one segment. */
export function parseScontrolAnswer(stdout: string): TaskAnswer {
  const answer = new TaskAnswer();
  forEachLine(stdout, (line, lineNumber) => {
    if (!line.startsWith("JobId=")) {
      if (/^No jobs in the system/i.test(line.trim())) return;
      throw new SlurmOutputError("scontrol line does not start with JobId=", line, lineNumber);
    }
    const parsedJob = ScontrolJob.safeParse(Object.fromEntries(parseScontrolLine(line)));
    if (!parsedJob.success) throw invalid(parsedJob.error, line, lineNumber, "scontrol");
    const job = parsedJob.data;
    const arrayJobId = job.ArrayJobId ?? null;
    let parsedId: ParsedId = { baseId: job.JobId, taskIds: null, isRange: false };
    let ranges: Array<[number, number, number]> | null = null;
    let rawId = job.JobId;
    if (arrayJobId !== null && job.ArrayTaskId !== undefined) {
      const single = /^\d+$/.test(job.ArrayTaskId);
      if (!single) {
        ranges = arrayRanges(job.ArrayTaskId);
        if (!ranges) throw new SlurmOutputError("scontrol ArrayTaskId has an unknown shape", line, lineNumber);
      }
      parsedId = { baseId: arrayJobId, taskIds: single ? [Number(job.ArrayTaskId)] : [], isRange: !single };
      rawId = single ? `${arrayJobId}_${job.ArrayTaskId}` : `${arrayJobId}_[${job.ArrayTaskId}]`;
    }
    const dependency = nullable(job.Dependency);
    const comment = nullable(job.Comment);
    addRow(
      answer,
      {
        rawId,
        ownJobId: job.JobId,
        state: job.JobState,
        reason: nullable(job.Reason),
        ...parseExitCode(job.ExitCode),
        ...(dependency !== null ? { dependency } : {}),
        ...(comment !== null ? { comment } : {}),
        source: "scontrol",
      },
      parsedId,
      arrayJobId,
      ranges,
    );
  });
  return answer;
}

/** `sbatch --parsable` prints `<jobid>` or `<jobid>;<cluster>` and a newline. */
export function parseSbatchParsable(stdout: string): { jobId: string; cluster: string | null } {
  const line = stdout.trim().split("\n").pop()?.trim() ?? "";
  const match = /^(\d+)(?:;(\S+))?$/.exec(line);
  if (!match?.[1]) throw new SlurmOutputError("sbatch --parsable did not print a job id", line, 1);
  return { jobId: match[1], cluster: match[2] ?? null };
}

/** The task a record describes: `46_3` for an array task, `44` for a plain job. */
export const taskKey = answerTaskKey;

/**
 * One record per task. sacct can list a task both inside a pending range and
 * on its own row (it lags slurmctld), and `sacct -D` lists every run of a
 * requeued job: a task's own row beats a range, and a later row beats an earlier one.
 */
export const dedupeTasks = dedupe;
