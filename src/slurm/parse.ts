// Parsers for the outputs of the argv built in commands.ts: squeue, sacct,
// scontrol show job -o and sbatch --parsable. Each returns per-task records.
import { z } from "zod";
import { SlurmOutputError } from "./errors.js";
import { translateState, type JobState } from "./states.js";

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
 * Expands an array index expression as SLURM prints pending tasks: `2-9%2`,
 * `1,3,5-7`, `0-15:4%3`. The throttle (`%N`) is dropped. Null when malformed.
 */
export function expandArrayRange(expression: string): number[] | null {
  const withoutThrottle = expression.replace(/%\d+$/, "");
  const ids: number[] = [];
  for (const part of withoutThrottle.split(",")) {
    const match = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!match?.[1]) return null;
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    const step = match[3] === undefined ? 1 : Number(match[3]);
    if (last < first || step < 1) return null;
    for (let id = first; id <= last; id += step) ids.push(id);
  }
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

function lines(stdout: string): Array<{ line: string; lineNumber: number }> {
  return stdout
    .split("\n")
    .map((line, index) => ({ line: line.replace(/\r$/, ""), lineNumber: index + 1 }))
    .filter(({ line }) => line.trim() !== "");
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

/** Appends one at a time: a spread of a big range (125,000+ tasks) into push() overflows the stack. */
function appendAll<T>(into: T[], items: readonly T[]): void {
  for (const item of items) into.push(item);
}

// One row per task: a range row becomes one record per index, all sharing the array job id.
function toRecords(row: RecordBase, parsed: ParsedId, arrayJobIdHint: string | null): TaskRecord[] {
  const translated = translateState(row.state);
  const common = {
    rawId: row.rawId,
    state: translated.state,
    rawState: translated.raw,
    reason: row.reason,
    exitCode: row.exitCode,
    signal: row.signal,
    ...(translated.cancelledBy !== undefined ? { cancelledBy: translated.cancelledBy } : {}),
    ...(row.dependency !== undefined ? { dependency: row.dependency } : {}),
    ...(row.comment !== undefined ? { comment: row.comment } : {}),
    source: row.source,
  };
  if (parsed.taskIds === null) {
    return [{ jobId: row.ownJobId, arrayJobId: arrayJobIdHint, taskId: null, ...common }];
  }
  const arrayJobId = arrayJobIdHint ?? parsed.baseId;
  return parsed.taskIds.map((taskId) => ({
    jobId: parsed.isRange ? arrayJobId : row.ownJobId,
    arrayJobId,
    taskId,
    ...common,
  }));
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

/** Parses `squeue -h -o '%i|%A|%F|%K|%T|%r|%E|%k'` (with or without -r; the trailing %k is optional). */
export function parseSqueue(stdout: string): TaskRecord[] {
  const records: TaskRecord[] = [];
  for (const { line, lineNumber } of lines(stdout)) {
    const fields = line.split("|");
    if (fields.length < 7) throw new SlurmOutputError("squeue line has fewer than 7 fields", line, lineNumber);
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
    const row = parsedRow.data;
    const parsedId = parsePrintedJobId(row.rawId);
    if (!parsedId) throw new SlurmOutputError("squeue job id has an unknown shape", line, lineNumber);
    const isArray = row.taskField !== "N/A";
    const dependencyText = nullable(row.dependency);
    const commentText = row.comment === undefined ? null : nullable(row.comment);
    appendAll(
      records,
      toRecords(
        {
          rawId: row.rawId,
          ownJobId: row.jobId,
          state: row.state,
          reason: nullable(row.reason),
          exitCode: null,
          signal: null,
          ...(dependencyText !== null ? { dependency: dependencyText } : {}),
          ...(commentText !== null ? { comment: commentText } : {}),
          source: "squeue",
        },
        isArray ? parsedId : { ...parsedId, taskIds: null },
        isArray ? row.arrayJobId : null,
      ),
    );
  }
  return records;
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
  const records: TaskRecord[] = [];
  for (const { line, lineNumber } of lines(stdout)) {
    const fields = line.split("|");
    if (fields.length < SACCT_FIELDS.length) throw new SlurmOutputError("sacct line has too few fields", line, lineNumber);
    const [rawId, jobIdRaw, state, exitCode, ...reason] = fields;
    const parsedRow = SacctRow.safeParse({ rawId, jobIdRaw, state, exitCode, reason: reason.join("|") });
    if (!parsedRow.success) throw invalid(parsedRow.error, line, lineNumber, "sacct");
    const row = parsedRow.data;
    if (row.rawId.includes(".")) continue; // a job step, not the allocation
    const parsedId = parsePrintedJobId(row.rawId);
    if (!parsedId) throw new SlurmOutputError("sacct JobID has an unknown shape", line, lineNumber);
    const isArray = parsedId.taskIds !== null;
    appendAll(
      records,
      toRecords(
        {
          rawId: row.rawId,
          ownJobId: JOB_ID.test(row.jobIdRaw) ? row.jobIdRaw : parsedId.baseId,
          state: row.state,
          reason: nullable(row.reason),
          ...parseExitCode(row.exitCode),
          source: "sacct",
        },
        parsedId,
        isArray ? parsedId.baseId : null,
      ),
    );
  }
  return records;
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
  const records: TaskRecord[] = [];
  for (const { line, lineNumber } of lines(stdout)) {
    if (!line.startsWith("JobId=")) {
      if (/^No jobs in the system/i.test(line.trim())) continue;
      throw new SlurmOutputError("scontrol line does not start with JobId=", line, lineNumber);
    }
    const parsedJob = ScontrolJob.safeParse(Object.fromEntries(parseScontrolLine(line)));
    if (!parsedJob.success) throw invalid(parsedJob.error, line, lineNumber, "scontrol");
    const job = parsedJob.data;
    const arrayJobId = job.ArrayJobId ?? null;
    let parsedId: ParsedId = { baseId: job.JobId, taskIds: null, isRange: false };
    let rawId = job.JobId;
    if (arrayJobId !== null && job.ArrayTaskId !== undefined) {
      const single = /^\d+$/.test(job.ArrayTaskId);
      const taskIds = single ? [Number(job.ArrayTaskId)] : expandArrayRange(job.ArrayTaskId);
      if (!taskIds) throw new SlurmOutputError("scontrol ArrayTaskId has an unknown shape", line, lineNumber);
      parsedId = { baseId: arrayJobId, taskIds, isRange: !single };
      rawId = single ? `${arrayJobId}_${job.ArrayTaskId}` : `${arrayJobId}_[${job.ArrayTaskId}]`;
    }
    const dependency = nullable(job.Dependency);
    const comment = nullable(job.Comment);
    appendAll(
      records,
      toRecords(
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
      ),
    );
  }
  return records;
}

/** `sbatch --parsable` prints `<jobid>` or `<jobid>;<cluster>` and a newline. */
export function parseSbatchParsable(stdout: string): { jobId: string; cluster: string | null } {
  const line = stdout.trim().split("\n").pop()?.trim() ?? "";
  const match = /^(\d+)(?:;(\S+))?$/.exec(line);
  if (!match?.[1]) throw new SlurmOutputError("sbatch --parsable did not print a job id", line, 1);
  return { jobId: match[1], cluster: match[2] ?? null };
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
export function dedupeTasks(records: readonly TaskRecord[]): TaskRecord[] {
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
