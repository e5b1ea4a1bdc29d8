/**
 * A run's retries as the client knows them: the jobs its retry controllers
 * submitted on the cluster (read from their records, src/plan/retry.ts) are
 * added to the plan as jobs of their own (`j001.r2` for attempt 2 of j001,
 * a copy of it remapped onto the retried tasks through the one index map;
 * `j002.r2` for the controller that follows it), so status, watch, collect
 * and cancel see them like any other job. Pure.
 */
import { bodyOfItem, concreteKey, itemsOfTask } from "../collect/job-index.js";
import type { CompletedState } from "../core/completed-state.js";
import { slotLogOf } from "../core/log-section.js";
import type { CompiledPlan, PlanJob } from "../plan/plan.js";
import type { RetryRecords } from "../plan/retry.js";
import { remapTasks } from "../plan/task-map.js";
import type { JobStatus } from "./job-status.js";

/** The plan has retry controllers: its retry records are worth reading. */
export function hasRetries(plan: Pick<CompiledPlan, "jobs">): boolean {
  return plan.jobs.some((j) => j.retry !== undefined && !j.id.includes("."));
}

/** The plan and the SLURM ids with every retry and controller the records name; records that do not fit the plan are left out. */
export function withRetryJobs(plan: CompiledPlan, jobs: Readonly<Record<string, string>>, records: RetryRecords): { plan: CompiledPlan; jobs: Record<string, string>; problems: string[] } {
  const extra: PlanJob[] = [];
  const ids: Record<string, string> = { ...jobs };
  const problems: string[] = [];
  for (const [jobId, attempts] of records.attempts) {
    const job = plan.jobs.find((j) => j.id === jobId);
    const controller = plan.jobs.find((j) => j.retry?.of === jobId);
    if (job === undefined || controller === undefined) {
      problems.push(`retries/${jobId}.*.json: the plan has no retried job ${jobId}`);
      continue;
    }
    for (const a of attempts) {
      let array = null;
      if (job.array !== null) {
        try {
          array = remapTasks(job.array, a.tasks, Number.MAX_SAFE_INTEGER);
        } catch (error) {
          problems.push(`retries/${jobId}.${a.attempt}.json: ${(error as Error).message}`);
          continue;
        }
      }
      const retryId = `${job.id}.r${a.attempt}`;
      const controlId = `${controller.id}.r${a.attempt}`;
      extra.push({ ...job, id: retryId, name: job.name.replace(`hp-${job.id}-`, `hp-${retryId}-`), array, dependencies: [] });
      extra.push({ ...controller, id: controlId, name: `hp-${controlId}-retry-${job.id}`, dependencies: [{ job: retryId, type: "afterany" }] });
      ids[retryId] = a.retry_job_id;
      ids[controlId] = a.controller_job_id;
    }
  }
  return { plan: extra.length === 0 ? plan : { ...plan, jobs: [...plan.jobs, ...extra] }, jobs: ids, problems };
}

/**
 * A controller that ended ok but whose chain has neither a next attempt nor an end on record: the record was
 * read just before it ended. It is held open (not final) until the next read shows what it submitted.
 */
export function holdOpenControllers(plan: CompiledPlan, statuses: readonly JobStatus[], records: RetryRecords): JobStatus[] {
  const last = new Map<string, string>();
  for (const job of plan.jobs) {
    const of = job.retry?.of;
    if (of === undefined || records.ends.has(of)) continue;
    const n = records.attempts.get(of)?.at(-1)?.attempt;
    last.set(n === undefined ? job.id.split(".")[0] ?? job.id : `${job.id.split(".")[0] ?? job.id}.r${n}`, of);
  }
  return statuses.map((s) => (last.has(s.job) && s.final && s.state === "COMPLETED" ? { ...s, final: false, state: "COMPLETING", reason: "RetrySubmitted" } : s));
}

/** A controller that has not ended while every job it waits on has: it is about to act (ask the scheduler soon). */
export function controllersDue(plan: CompiledPlan, statuses: readonly JobStatus[]): string[] {
  const byId = new Map(statuses.map((s) => [s.job, s]));
  return plan.jobs
    .filter((j) => j.retry !== undefined && byId.get(j.id)?.final === false && j.dependencies.length > 0 && j.dependencies.every((d) => byId.get(d.job)?.final === true))
    .map((j) => j.id);
}

/**
 * Shows the attempts in the merged result: each step (and unit) of a retried task gets `meta.attempts`, one
 * entry per attempt (1 = the first run), with why it was retried and where that attempt's state and logs
 * were kept; the state itself is the last attempt's.
 */
export function annotateAttempts(state: CompletedState, plan: CompiledPlan, records: RetryRecords): void {
  if (state.step_states !== undefined) attemptsAnnotator(plan, records)(state.step_states);
}

/** One retried task's attempts and the keys of its steps and units. */
interface RetriedTask {
  list: Array<Record<string, unknown>>;
  keys: Array<{ key: string; unit: boolean }>;
}

/**
 * annotateAttempts as a function of any set of states (keyed by step key): the merge of a large map gives it
 * each item's states before the item goes to the lines file, so `meta.attempts` is in the lines too. The
 * retried tasks are gathered once, here.
 */
export function attemptsAnnotator(plan: CompiledPlan, records: RetryRecords): (steps: Record<string, CompletedState>) => void {
  const byKey = new Map<string, RetriedTask>();
  for (const [jobId, attempts] of records.attempts) {
    const job = plan.jobs.find((j) => j.id === jobId);
    if (job === undefined) continue;
    const end = records.ends.get(jobId);
    const byTask = new Map<number, Array<Record<string, unknown>>>();
    for (const a of attempts) {
      for (const task of a.tasks) {
        const list = byTask.get(task) ?? [{ attempt: 1, slurm_job_id: records.firstJobIds?.[jobId] ?? null }];
        // This attempt's record says why the one before it is retried.
        const before = list[list.length - 1];
        if (before !== undefined) before.retried_because = a.reasons[String(task)] ?? null;
        list.push({ attempt: a.attempt, slurm_job_id: a.retry_job_id, time_s: a.time_s || null, mem_mb: a.mem_mb || null, exclude: a.exclude });
        byTask.set(task, list);
      }
    }
    for (const [task, list] of byTask) {
      const failed = end?.failed[String(task)];
      const lastEntry = list[list.length - 1];
      if (lastEntry !== undefined && failed !== undefined) lastEntry.failed_for_good = failed;
      const retried: RetriedTask = { list, keys: taskKeys(plan, job, task) };
      for (const { key } of retried.keys) byKey.set(key, retried);
    }
  }
  return (steps) => {
    if (byKey.size === 0) return;
    for (const key of Object.keys(steps)) {
      const retried = byKey.get(key);
      const s = steps[key];
      // In a packed task, an item done in an earlier attempt was skipped when its task ran again: not retried.
      if (retried === undefined || s === undefined || (s.success && !(typeof s.meta.attempt === "number" && s.meta.attempt > 1))) continue;
      const unit = retried.keys.find((k) => k.key === key)?.unit ?? false;
      // A packed task wrote one pack file: its steps' states name their slot logs.
      const pack = packedTask(retried.keys.map((k) => steps[k.key]?.meta));
      const { list } = retried;
      s.meta.attempts = list.map((entry) => {
        const n = entry.attempt as number;
        if (n === lastAttemptOf(list)) return { ...entry };
        // A packed item's state is a line of its task's pack file, its logs a section of one of the task's slot logs
        // (which slot ran it is in that line's meta.log); the attempt's copies keep the same names.
        if (pack !== null) return { ...entry, state_file: `attempts/${n}/states/${pack}.jsonl`, ...(unit ? {} : { log: `attempts/${n}/logs/${pack}.s*.out` }) };
        // A unit (a map item) has a state but no log of its own.
        return { ...entry, state_file: `attempts/${n}/states/${key}.json`, ...(unit ? {} : { log: `attempts/${n}/logs/${key}.out` }) };
      });
    }
  };
}

function packedTask(metas: ReadonlyArray<Readonly<Record<string, unknown>> | undefined>): string | null {
  for (const meta of metas) {
    const log = slotLogOf(meta);
    if (log !== null) return log.slice("logs/".length, log.lastIndexOf(".s"));
  }
  return null;
}

function lastAttemptOf(list: ReadonlyArray<Record<string, unknown>>): number {
  return (list[list.length - 1]?.attempt as number | undefined) ?? 1;
}

/** The concrete keys (steps and units) of one logical task of a job. */
function taskKeys(plan: CompiledPlan, job: PlanJob, task: number): Array<{ key: string; unit: boolean }> {
  const out: Array<{ key: string; unit: boolean }> = [];
  const taskId = job.array === null ? 0 : job.array.indices === null ? task - job.array.offset : job.array.indices.indexOf(task);
  for (const item of itemsOfTask(plan, job, task)) {
    const body = bodyOfItem(job, taskId, item);
    if (body === undefined) continue;
    if (body.unitKey !== null) out.push({ key: concreteKey(body.unitKey, item), unit: true });
    for (const s of body.steps) out.push({ key: concreteKey(s.key, item), unit: false });
  }
  return out;
}
