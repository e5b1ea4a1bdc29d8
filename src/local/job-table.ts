/**
 * The job table of a local run on disk (`<run dir>/local-jobs.json`): what a
 * local run's supervisor knows of its jobs and tasks, written atomically as
 * they change, read by `status`, `collect` and `logs` from any later shell,
 * the way squeue answers for a cluster. Pure apart from the file helpers.
 *
 * Format 2 (issue 16) keeps a job's tasks compact, whatever their number: the
 * distinct task states ("kinds": state, reason, exit code), the tasks' kinds
 * run-length encoded (`runs`: kind, count, kind, count, ... in task id order),
 * and the tasks' own SLURM-like job ids as runs of consecutive ids (`ids`:
 * first task, count, first id, ...; a task not started yet has none). A
 * million pending tasks are `"runs": [0, 1000000]`. In memory a job's tasks are
 * one number per task (JobTasks). Format 1 files (one object per task, written
 * by hpcpipe before format 2) are still read.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { arrayTaskIds } from "../collect/job-index.js";
import { writeJsonAtomic } from "../core/atomic-json.js";
import { issuesText, preview } from "../core/preview.js";
import type { CompiledPlan } from "../plan/plan.js";
import { TaskAnswer } from "../slurm/index.js";
import type { TaskRecord } from "../slurm/index.js";
import type { LocalRunEvent } from "./types.js";

/** The table's file name inside the run directory. */
export const JOB_TABLE_FILE = "local-jobs.json";

const LOCAL_STATES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"] as const;
export type LocalTaskState = (typeof LOCAL_STATES)[number];

/** Most tasks one job of the table may have (a map has at most 1,000,000 items). */
const TASKS_MAX = 10_000_000;
/** Most distinct kinds in one job (a kind is a 16-bit code per task). */
const KINDS_MAX = 0xffff;

const kindSchema = z.object({
  state: z.enum(LOCAL_STATES),
  reason: z.string().max(4096).nullable(),
  exitCode: z.number().int().nullable(),
});

/** What tasks in the same state share. */
export type LocalTaskKind = z.infer<typeof kindSchema>;

const countSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const jobRowSchemaV2 = z.object({
  slurmJobId: z.string().regex(/^\d+$/),
  size: z.number().int().min(0).max(TASKS_MAX),
  kinds: z.array(kindSchema).min(1).max(KINDS_MAX),
  /** kind, count, kind, count, ... covering task ids 0..size-1 in order. */
  runs: z.array(countSchema),
  /** first task id, count, first own job id, ...: runs of tasks whose own ids are consecutive. */
  ids: z.array(countSchema),
});

const headSchema = {
  run_id: z.string().max(64),
  attempt: z.number().int().min(1),
  /** The supervisor ended every job (and wrote the merged result). */
  finished: z.boolean(),
  /** The run was cancelled (`hpcpipe cancel`, or Ctrl-C on `hpcpipe run`). */
  cancelled: z.boolean(),
};

const jobTableSchemaV2 = z.object({ format: z.literal(2), ...headSchema, jobs: z.record(z.string(), jobRowSchemaV2) });

/** Format 1 (before issue 16): one object per task. */
const taskRowSchemaV1 = z.object({
  taskId: z.number().int().nonnegative().max(TASKS_MAX - 1),
  slurmJobId: z.string().regex(/^\d+$/).nullable(),
  state: z.enum(LOCAL_STATES),
  reason: z.string().max(4096).nullable(),
  exitCode: z.number().int().nullable(),
});
const jobTableSchemaV1 = z.object({
  format: z.literal(1),
  ...headSchema,
  jobs: z.record(z.string(), z.object({ slurmJobId: z.string().regex(/^\d+$/), tasks: z.array(taskRowSchemaV1) })),
});

/** The table as written to disk (format 2). */
export type JobTableFile = z.infer<typeof jobTableSchemaV2>;

const kindKey = (k: LocalTaskKind): string => `${k.state}\u0000${k.reason ?? "\u0001"}\u0000${k.exitCode ?? ""}`;

/** Every task of one job: its kind (one 16-bit code per task) and its own job id (0: none yet). */
export class JobTasks {
  readonly kinds: LocalTaskKind[] = [];
  private readonly index = new Map<string, number>();
  readonly codes: Uint16Array;
  readonly own: Float64Array;

  constructor(size: number, initial: LocalTaskKind = { state: "PENDING", reason: null, exitCode: null }) {
    this.codes = new Uint16Array(size);
    this.own = new Float64Array(size);
    this.codeOf(initial);
  }

  get size(): number {
    return this.codes.length;
  }

  /** The code of a kind, interned. */
  codeOf(kind: LocalTaskKind): number {
    const key = kindKey(kind);
    let code = this.index.get(key);
    if (code === undefined) {
      if (this.kinds.length >= KINDS_MAX) throw new RangeError(`more than ${KINDS_MAX} distinct task states in one job`);
      code = this.kinds.length;
      this.kinds.push({ state: kind.state, reason: kind.reason, exitCode: kind.exitCode });
      this.index.set(key, code);
    }
    return code;
  }

  kindAt(taskId: number): LocalTaskKind | undefined {
    if (!Number.isInteger(taskId) || taskId < 0 || taskId >= this.codes.length) return undefined;
    return this.kinds[this.codes[taskId] as number];
  }

  /** The task's own job id, or null before it started. */
  ownAt(taskId: number): string | null {
    const id = this.own[taskId];
    return id === undefined || id === 0 ? null : String(id);
  }

  /** Sets task `taskId`'s kind (and own id, when given); false outside the job. */
  set(taskId: number, kind: LocalTaskKind, ownJobId?: string | null): boolean {
    if (!Number.isInteger(taskId) || taskId < 0 || taskId >= this.codes.length) return false;
    this.codes[taskId] = this.codeOf(kind);
    if (ownJobId != null) this.own[taskId] = Number(ownJobId);
    return true;
  }

  /** A copy with each kind replaced by `map(kind)`. */
  mapKinds(map: (kind: LocalTaskKind) => LocalTaskKind): JobTasks {
    const copy = new JobTasks(this.codes.length, this.kinds[0]);
    const remap = this.kinds.map((k) => copy.codeOf(map(k)));
    for (let t = 0; t < this.codes.length; t++) copy.codes[t] = remap[this.codes[t] as number] as number;
    copy.own.set(this.own);
    return copy;
  }

  /** The on-disk runs: kind, count, ... in task order. */
  encodeRuns(): number[] {
    const runs: number[] = [];
    const n = this.codes.length;
    let t = 0;
    while (t < n) {
      const code = this.codes[t] as number;
      let end = t + 1;
      while (end < n && this.codes[end] === code) end++;
      runs.push(code, end - t);
      t = end;
    }
    return runs;
  }

  /** The on-disk own ids: first task, count, first id, ... for runs of consecutive ids. */
  encodeIds(): number[] {
    const ids: number[] = [];
    const n = this.own.length;
    let t = 0;
    while (t < n) {
      const id = this.own[t] as number;
      if (id === 0) {
        t++;
        continue;
      }
      let end = t + 1;
      while (end < n && this.own[end] === id + (end - t)) end++;
      ids.push(t, end - t, id);
      t = end;
    }
    return ids;
  }
}

export interface JobRow {
  slurmJobId: string;
  tasks: JobTasks;
}

/** The table in memory. */
export interface JobTable {
  run_id: string;
  attempt: number;
  finished: boolean;
  cancelled: boolean;
  jobs: Record<string, JobRow>;
}

/** A fresh table: every job of the plan with its local id (handed out in plan order, as LocalRun does) and every task pending. */
export function newJobTable(plan: CompiledPlan, attempt: number): JobTable {
  const jobs: JobTable["jobs"] = {};
  plan.jobs.forEach((job, i) => {
    jobs[job.id] = { slurmJobId: String(i + 1), tasks: new JobTasks(arrayTaskIds(job).length) };
  });
  return { run_id: plan.runId, attempt, finished: false, cancelled: false, jobs };
}

/** The SLURM-like job ids of the table, per plan job (what a run record's `jobs` holds). */
export function tableJobIds(table: JobTable): Record<string, string> {
  return Object.fromEntries(Object.entries(table.jobs).map(([job, row]) => [job, row.slurmJobId]));
}

/** Applies one executor event to the table; returns whether anything changed. */
export function applyEvent(table: JobTable, event: LocalRunEvent): boolean {
  const job = table.jobs[event.job];
  if (job === undefined) return false;
  if (event.type === "job-submitted") {
    job.slurmJobId = event.slurmJobId;
    return true;
  }
  if (event.type !== "task-started" && event.type !== "task-finished") return false;
  const before = job.tasks.kindAt(event.taskId);
  if (before === undefined) return false;
  if (event.type === "task-started") return job.tasks.set(event.taskId, { ...before, state: "RUNNING" }, event.slurmJobId);
  return job.tasks.set(event.taskId, { state: event.state, reason: event.reason, exitCode: event.exitCode }, event.slurmJobId);
}

/**
 * A table whose supervisor is gone before finishing: every task that had
 * not ended is FAILED with that reason (nothing will ever run it).
 */
export function orphanedTable(table: JobTable, reason: string): JobTable {
  const jobs: JobTable["jobs"] = {};
  for (const [id, row] of Object.entries(table.jobs)) {
    jobs[id] = { slurmJobId: row.slurmJobId, tasks: row.tasks.mapKinds((k) => (k.state === "PENDING" || k.state === "RUNNING" ? { ...k, state: "FAILED", reason } : k)) };
  }
  return { ...table, jobs };
}

/**
 * The table as the scheduler's answer: per job id, its tasks as runs of
 * one shared record (a TaskAnswer), for the same mapping onto the plan as a
 * cluster run, without an object per task.
 */
export function tableToStatusMap(table: JobTable, plan: CompiledPlan): Map<string, TaskAnswer> {
  const out = new Map<string, TaskAnswer>();
  for (const job of plan.jobs) {
    const row = table.jobs[job.id];
    if (row === undefined) continue;
    const answer = new TaskAnswer();
    const tasks = row.tasks;
    const recordOf = (kind: LocalTaskKind, jobId: string, taskId: number | null): TaskRecord => ({
      jobId,
      arrayJobId: taskId === null ? null : row.slurmJobId,
      taskId,
      rawId: taskId === null ? row.slurmJobId : `${row.slurmJobId}_${taskId}`,
      state: kind.state,
      rawState: kind.state,
      reason: kind.reason,
      exitCode: kind.exitCode,
      signal: null,
      source: "local",
    });
    if (job.array === null) {
      for (let t = 0; t < tasks.size; t++) answer.addWhole(answer.template(recordOf(tasks.kindAt(t) as LocalTaskKind, tasks.ownAt(t) ?? row.slurmJobId, null)));
      out.set(row.slurmJobId, answer);
      continue;
    }
    // A task not started yet goes by the array's id, as SLURM shows a pending task.
    const arrayId = Number(row.slurmJobId);
    const templates = tasks.kinds.map((k) => answer.template(recordOf(k, row.slurmJobId, 0)));
    const n = tasks.size;
    let t = 0;
    while (t < n) {
      const code = tasks.codes[t] as number;
      const own = tasks.own[t] as number;
      let end = t + 1;
      if (own === 0) while (end < n && tasks.codes[end] === code && tasks.own[end] === 0) end++;
      else while (end < n && tasks.codes[end] === code && tasks.own[end] === own + (end - t)) end++;
      answer.add(templates[code] as number, t, end - 1, 1, own === 0 ? arrayId : own, false, false, own !== 0);
      t = end;
    }
    out.set(row.slurmJobId, answer);
  }
  return out;
}

/** The table as written to disk (format 2). */
export function encodeJobTable(table: JobTable): JobTableFile {
  const jobs: JobTableFile["jobs"] = {};
  for (const [id, row] of Object.entries(table.jobs)) {
    jobs[id] = { slurmJobId: row.slurmJobId, size: row.tasks.size, kinds: row.tasks.kinds.map((k) => ({ ...k })), runs: row.tasks.encodeRuns(), ids: row.tasks.encodeIds() };
  }
  return { format: 2, run_id: table.run_id, attempt: table.attempt, finished: table.finished, cancelled: table.cancelled, jobs };
}

/** Thrown for a job table that cannot be read; the message names the file and the field. */
export class JobTableError extends Error {
  override name = "JobTableError";
}

/** The table from a parsed format-2 file; throws JobTableError naming the job and field that do not add up. */
export function decodeJobTable(file: JobTableFile, path: string): JobTable {
  const jobs: JobTable["jobs"] = {};
  for (const [id, row] of Object.entries(file.jobs)) {
    const where = `${path}: jobs.${id}`;
    const tasks = new JobTasks(row.size, row.kinds[0]);
    for (const k of row.kinds) tasks.codeOf(k);
    if (tasks.kinds.length !== row.kinds.length) throw new JobTableError(`${where}.kinds: the same state is listed twice`);
    if (row.runs.length % 2 !== 0) throw new JobTableError(`${where}.runs: not pairs of kind and count (${row.runs.length} numbers)`);
    let t = 0;
    for (let i = 0; i < row.runs.length; i += 2) {
      const code = row.runs[i] as number;
      const count = row.runs[i + 1] as number;
      if (code >= row.kinds.length) throw new JobTableError(`${where}.runs[${i}]: kind ${code} is not one of the ${row.kinds.length} kinds`);
      if (count === 0 || t + count > row.size) throw new JobTableError(`${where}.runs[${i + 1}]: a run of ${count} tasks from task ${t} does not fit the job's ${row.size} tasks`);
      tasks.codes.fill(code, t, t + count);
      t += count;
    }
    if (t !== row.size) throw new JobTableError(`${where}.runs: cover ${t} tasks, the job has ${row.size}`);
    if (row.ids.length % 3 !== 0) throw new JobTableError(`${where}.ids: not triples of first task, count and first id (${row.ids.length} numbers)`);
    for (let i = 0; i < row.ids.length; i += 3) {
      const first = row.ids[i] as number;
      const count = row.ids[i + 1] as number;
      const ownId = row.ids[i + 2] as number;
      if (count === 0 || first + count > row.size) throw new JobTableError(`${where}.ids[${i}]: ${count} tasks from task ${first} do not fit the job's ${row.size} tasks`);
      if (ownId < 1 || ownId + count - 1 > Number.MAX_SAFE_INTEGER) throw new JobTableError(`${where}.ids[${i + 2}]: job id ${ownId} is out of range`);
      for (let k = 0; k < count; k++) tasks.own[first + k] = ownId + k;
    }
    jobs[id] = { slurmJobId: row.slurmJobId, tasks };
  }
  return { run_id: file.run_id, attempt: file.attempt, finished: file.finished, cancelled: file.cancelled, jobs };
}

/** The table from a format-1 file (one object per task). */
function fromFormat1(file: z.infer<typeof jobTableSchemaV1>): JobTable {
  const jobs: JobTable["jobs"] = {};
  for (const [id, row] of Object.entries(file.jobs)) {
    let size = row.tasks.length;
    for (const t of row.tasks) size = Math.max(size, t.taskId + 1);
    const tasks = new JobTasks(size);
    for (const t of row.tasks) tasks.set(t.taskId, { state: t.state, reason: t.reason, exitCode: t.exitCode }, t.slurmJobId);
    jobs[id] = { slurmJobId: row.slurmJobId, tasks };
  }
  return { run_id: file.run_id, attempt: file.attempt, finished: file.finished, cancelled: file.cancelled, jobs };
}

/** The table from the text of a job table file (format 2, or 1); errors name `path`. */
export function parseJobTable(text: string, path: string): JobTable {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new JobTableError(`${path}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const format = typeof json === "object" && json !== null && "format" in json ? (json as { format: unknown }).format : undefined;
  if (format === 1) {
    const v1 = jobTableSchemaV1.safeParse(json);
    if (!v1.success) throw new JobTableError(`${path}: not a valid job table (format 1): ${issuesText(v1.error.issues, 3)}`);
    return fromFormat1(v1.data);
  }
  if (format !== 2) throw new JobTableError(`${path}: not a job table this hpcpipe reads (format ${format === undefined ? "missing" : preview(format)}; it reads formats 1 and 2)`);
  const parsed = jobTableSchemaV2.safeParse(json);
  if (!parsed.success) throw new JobTableError(`${path}: not a valid job table: ${issuesText(parsed.error.issues, 3)}`);
  return decodeJobTable(parsed.data, path);
}

export async function writeJobTable(runDir: string, table: JobTable | JobTableFile): Promise<void> {
  const file = "format" in table ? table : encodeJobTable(table);
  await writeJsonAtomic(join(runDir, JOB_TABLE_FILE), file, { mode: 0o600, indent: 0 });
}

/** The table, or null when the supervisor has not written it yet; a damaged file is an error naming it. */
export async function readJobTable(runDir: string): Promise<JobTable | null> {
  const path = join(runDir, JOB_TABLE_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  return parseJobTable(text, path);
}
