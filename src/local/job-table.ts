/**
 * The job table of a local run on disk (`<run dir>/local-jobs.json`): what a
 * local run's supervisor knows of its jobs and tasks, written atomically as
 * they change, read by `status`, `collect` and `logs` from any later shell,
 * the way squeue answers for a cluster. Pure apart from the file helpers.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { arrayTaskIds } from "../collect/job-index.js";
import { writeJsonAtomic } from "../core/atomic-json.js";
import { issuesText } from "../core/preview.js";
import type { CompiledPlan } from "../plan/plan.js";
import type { JobStatusMap, TaskRecord } from "../slurm/index.js";
import type { LocalRunEvent } from "./types.js";

/** The table's file name inside the run directory. */
export const JOB_TABLE_FILE = "local-jobs.json";

const LOCAL_STATES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"] as const;
export type LocalTaskState = (typeof LOCAL_STATES)[number];

const taskRowSchema = z.object({
  taskId: z.number().int().nonnegative(),
  slurmJobId: z.string().regex(/^\d+$/).nullable(),
  state: z.enum(LOCAL_STATES),
  reason: z.string().max(4096).nullable(),
  exitCode: z.number().int().nullable(),
});

export const jobTableSchema = z.object({
  format: z.literal(1),
  run_id: z.string().max(64),
  attempt: z.number().int().min(1),
  /** The supervisor ended every job (and wrote the merged result). */
  finished: z.boolean(),
  /** The run was cancelled (`hpcpipe cancel`, or Ctrl-C on `hpcpipe run`). */
  cancelled: z.boolean(),
  jobs: z.record(z.string(), z.object({ slurmJobId: z.string().regex(/^\d+$/), tasks: z.array(taskRowSchema) })),
});

export type JobTable = z.infer<typeof jobTableSchema>;
export type TaskRow = z.infer<typeof taskRowSchema>;

/** A fresh table: every job of the plan with its local id (handed out in plan order, as LocalRun does) and every task pending. */
export function newJobTable(plan: CompiledPlan, attempt: number): JobTable {
  const jobs: JobTable["jobs"] = {};
  plan.jobs.forEach((job, i) => {
    jobs[job.id] = { slurmJobId: String(i + 1), tasks: arrayTaskIds(job).map((taskId) => ({ taskId, slurmJobId: null, state: "PENDING", reason: null, exitCode: null })) };
  });
  return { format: 1, run_id: plan.runId, attempt, finished: false, cancelled: false, jobs };
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
  const row = job.tasks.find((t) => t.taskId === event.taskId);
  if (row === undefined) return false;
  if (event.type === "task-started") {
    row.state = "RUNNING";
    row.slurmJobId = event.slurmJobId;
  } else {
    row.state = event.state;
    row.reason = event.reason;
    row.exitCode = event.exitCode;
    if (event.slurmJobId !== null) row.slurmJobId = event.slurmJobId;
  }
  return true;
}

/**
 * A table whose supervisor is gone before finishing: every task that had
 * not ended is FAILED with that reason (nothing will ever run it).
 */
export function orphanedTable(table: JobTable, reason: string): JobTable {
  const copy = structuredClone(table);
  for (const job of Object.values(copy.jobs)) {
    for (const t of job.tasks) {
      if (t.state !== "PENDING" && t.state !== "RUNNING") continue;
      t.state = "FAILED";
      t.reason = reason;
    }
  }
  return copy;
}

/** The table as the scheduler's answer: per job id, one record per task, for the same mapping onto the plan as a cluster run. */
export function tableToStatusMap(table: JobTable, plan: CompiledPlan): JobStatusMap {
  const out: JobStatusMap = new Map();
  for (const job of plan.jobs) {
    const row = table.jobs[job.id];
    if (row === undefined) continue;
    const isArray = job.array !== null;
    out.set(
      row.slurmJobId,
      row.tasks.map(
        (t): TaskRecord => ({
          jobId: t.slurmJobId ?? row.slurmJobId,
          arrayJobId: isArray ? row.slurmJobId : null,
          taskId: isArray ? t.taskId : null,
          rawId: isArray ? `${row.slurmJobId}_${t.taskId}` : row.slurmJobId,
          state: t.state,
          rawState: t.state,
          reason: t.reason,
          exitCode: t.exitCode,
          signal: null,
          source: "local",
        }),
      ),
    );
  }
  return out;
}

export async function writeJobTable(runDir: string, table: JobTable): Promise<void> {
  await writeJsonAtomic(join(runDir, JOB_TABLE_FILE), table, { mode: 0o600 });
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
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = jobTableSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${path}: not a valid job table: ${issuesText(parsed.error.issues, 3)}`);
  return parsed.data;
}
