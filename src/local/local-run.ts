/**
 * The job table of one local run: SLURM ids handed out at submission,
 * dependencies settled with afterok/afterany and --kill-on-invalid-dep,
 * tasks started first come first served under the array throttles and the
 * CPU cap, cancellation on abort.
 */
import { mkdirSync } from "node:fs";
import { availableParallelism, hostname, userInfo } from "node:os";
import { dirname, relative, resolve, sep } from "node:path";
import { silentLogger } from "../core/logger.js";
import type { Logger } from "../core/logger.js";
import type { CompiledPlan, PlanJob } from "../plan/plan.js";
import { slurmTimeToSeconds } from "../plan/resources.js";
import { arrayTaskIds, logicalTask } from "../plan/task-map.js";
import { bundlePath } from "./bundle.js";
import { expandFilenamePattern, parseSbatchDirectives, parseSbatchOptions } from "./sbatch-directives.js";
import type { WarnSignal } from "./sbatch-directives.js";
import { baseEnvironment, slurmEnvironment } from "./slurm-env.js";
import { TaskProcess } from "./task-process.js";
import type { TaskOutcome } from "./task-process.js";
import type { LocalJobResult, LocalJobState, LocalRunEvent, LocalRunOptions } from "./types.js";
import { attemptFiles, keepAttempt, retryable, writeRecord } from "./retries.js";

type Status = "PENDING" | "RUNNING" | LocalJobState;
const FINAL = new Set<Status>(["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"]);

interface TaskRec {
  taskId: number;
  task: number;
  slurmJobId: string | null;
  status: Status;
  reason: string | null;
  exitCode: number | null;
  signal: string | null;
  proc?: TaskProcess;
  /** Retries: the attempts this task used before its current run (HPCPIPE_ATTEMPT_BASE), and the attempt of the chain it last ran in. */
  attemptBase?: number;
  ranIn?: number;
}

interface JobRec {
  job: PlanJob;
  slurmJobId: string;
  status: "PENDING" | "READY" | Status;
  cpus: number;
  throttle: number | null;
  next: number;
  running: number;
  tasks: TaskRec[];
  taskIds: number[];
  limitS: number | null;
  warn: WarnSignal | null;
  output: string | undefined;
  error: string | undefined;
  reason: string | null;
  exitCode: number | null;
  /** Tasks to run again (a retry), before the ones not started yet. */
  again: TaskRec[];
}

function timeLimitOf(job: PlanJob, directiveTime: string | undefined): number | null {
  const time = job.resources.time ?? directiveTime;
  if (time === undefined) return null;
  const s = slurmTimeToSeconds(time);
  return s > 0 ? s : null; // SLURM: a time limit of 0 means none
}

function stateOf(outcome: TaskOutcome): { status: LocalJobState; reason: string | null } {
  // The time limit came first when both happened: the job was already being killed for it.
  if (outcome.timedOut) return { status: "TIMEOUT", reason: "TimeLimit" };
  if (outcome.cancelled) return { status: "CANCELLED", reason: null };
  if (outcome.launchError !== null) return { status: "FAILED", reason: `LaunchFailed: ${outcome.launchError}` };
  if (outcome.exitCode === 0) return { status: "COMPLETED", reason: null };
  if (outcome.exitCode !== null) return { status: "FAILED", reason: "NonZeroExitCode" };
  return { status: "FAILED", reason: `RaisedSignal:${outcome.signal ?? "unknown"}` };
}

/** An array's state as one word: COMPLETED only when every task completed; else the worst task state. */
function aggregate(tasks: TaskRec[]): { state: LocalJobState; reason: string | null; exitCode: number | null } {
  for (const s of ["FAILED", "TIMEOUT", "CANCELLED"] as const) {
    const t = tasks.find((x) => x.status === s);
    if (t !== undefined) {
      const nonZero = tasks.find((x) => x.exitCode !== null && x.exitCode !== 0);
      return { state: s, reason: t.reason, exitCode: nonZero?.exitCode ?? t.exitCode };
    }
  }
  return { state: "COMPLETED", reason: null, exitCode: tasks.length > 0 ? 0 : null };
}

export class LocalRun {
  private readonly recs: JobRec[] = [];
  private readonly byId = new Map<string, JobRec>();
  private readonly logger: Logger;
  private readonly cap: number;
  private readonly killWaitS: number;
  private readonly node = hostname();
  private readonly user = safeUser();
  private readonly baseEnv = baseEnvironment(process.env);
  private cpusFree: number;
  private counter = 0;
  private aborted = false;
  private pumping = false;
  private pumpAgain = false;
  private finished: (() => void) | undefined;
  private crashed: ((err: unknown) => void) | undefined;

  constructor(
    private readonly plan: CompiledPlan,
    private readonly runDir: string,
    private readonly opts: LocalRunOptions,
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.cap = opts.cpus ?? availableParallelism();
    this.cpusFree = this.cap;
    this.killWaitS = opts.killWaitS ?? 5;
  }

  private emit(event: LocalRunEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch (err) {
      this.logger.warn({ err }, "local executor: onEvent handler threw");
    }
  }

  private nextId(): string {
    this.counter += 1;
    return String(this.counter);
  }

  /** Like submit.sh: every job gets its id up front, in plan order. */
  private submit(): void {
    for (const job of this.plan.jobs) {
      const d = parseSbatchOptions(job.resources.sbatch ?? [], parseSbatchDirectives(job.script));
      const limitS = timeLimitOf(job, d.time);
      const warn: WarnSignal | null =
        limitS === null ? null : (d.signal ?? { signal: "SIGUSR1", seconds: Math.min(60, limitS / 10), batchOnly: true });
      const taskIds = arrayTaskIds(job);
      const slurmJobId = this.nextId();
      const lastTask = taskIds.reduce((a, b) => Math.max(a, b), -1);
      const rec: JobRec = {
        job,
        slurmJobId,
        status: "PENDING",
        cpus: Math.min(this.cap, Math.max(1, job.resources.cpus ?? 1)),
        throttle: job.array?.throttle ?? null,
        next: 0,
        running: 0,
        taskIds,
        // SLURM runs an array's last task under the array's own job id; the others get fresh ids when they start.
        tasks: taskIds.map((taskId) => ({
          taskId,
          task: logicalTask(job.array, taskId),
          slurmJobId: job.array === null || taskId === lastTask ? slurmJobId : null,
          status: "PENDING",
          reason: null,
          exitCode: null,
          signal: null,
        })),
        limitS,
        warn,
        output: d.output,
        error: d.error,
        reason: null,
        exitCode: null,
        again: [],
      };
      this.recs.push(rec);
      this.byId.set(job.id, rec);
      this.emit({ type: "job-submitted", job: job.id, slurmJobId, tasks: taskIds.length, time: Date.now() });
    }
  }

  async execute(): Promise<Map<string, LocalJobResult>> {
    this.submit();
    const done = new Promise<void>((resolveDone, rejectDone) => {
      this.finished = resolveDone;
      this.crashed = rejectDone;
    });
    const onAbort = (): void => this.abort();
    this.opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (this.opts.signal?.aborted) this.abort();
      this.pump();
      await done;
    } finally {
      this.opts.signal?.removeEventListener("abort", onAbort);
    }
    return this.results();
  }

  private results(): Map<string, LocalJobResult> {
    const out = new Map<string, LocalJobResult>();
    for (const r of this.recs) {
      out.set(r.job.id, {
        state: r.status as LocalJobState,
        reason: r.reason,
        exitCode: r.exitCode,
        slurmJobId: r.slurmJobId,
        tasks: r.tasks.map((t) => ({
          task: t.task,
          taskId: t.taskId,
          slurmJobId: t.slurmJobId,
          state: t.status as LocalJobState,
          reason: t.reason,
          exitCode: t.exitCode,
          signal: t.signal,
        })),
      });
    }
    return out;
  }

  private finishJob(rec: JobRec): void {
    const agg = aggregate(rec.tasks);
    rec.status = agg.state;
    rec.reason = agg.reason;
    rec.exitCode = agg.exitCode;
    this.logger.info({ job: rec.job.id, slurm_job_id: rec.slurmJobId, state: agg.state, reason: agg.reason }, "job finished");
    this.emit({ type: "job-finished", job: rec.job.id, slurmJobId: rec.slurmJobId, state: agg.state, reason: agg.reason, exitCode: agg.exitCode, time: Date.now() });
  }

  /** Ends every task that has not started with `reason`; the job is final once its running tasks end. */
  private cancelPending(rec: JobRec, reason: string | null): void {
    for (const t of rec.tasks) {
      if (t.status !== "PENDING") continue;
      t.status = "CANCELLED";
      t.reason = reason;
      this.emit({ type: "task-finished", job: rec.job.id, task: t.task, taskId: t.taskId, slurmJobId: t.slurmJobId, started: false, state: "CANCELLED", reason, exitCode: null, time: Date.now() });
    }
    rec.next = rec.tasks.length;
    rec.again = [];
    if (rec.running === 0) this.finishJob(rec);
  }

  private abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.logger.info("local run aborted: cancelling every job");
    for (const rec of this.recs) {
      if (FINAL.has(rec.status as Status)) continue;
      // A retry controller waiting for its job's retry has no process: it ends cancelled with the run.
      if (rec.job.retry !== undefined && rec.status === "RUNNING") {
        for (const t of rec.tasks) {
          t.status = "CANCELLED";
          this.emit({ type: "task-finished", job: rec.job.id, task: t.task, taskId: t.taskId, slurmJobId: t.slurmJobId, started: true, state: "CANCELLED", reason: null, exitCode: null, time: Date.now() });
        }
        this.finishJob(rec);
        continue;
      }
      for (const t of rec.tasks) if (t.status === "RUNNING") t.proc?.cancel();
      this.cancelPending(rec, null);
    }
    this.pump();
  }

  /** Settles dependencies (transitively), then starts what fits; re-entrant calls are folded into the running one. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.settleDependencies();
        if (!this.aborted) this.startTasks();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
    if (this.recs.every((r) => FINAL.has(r.status as Status))) this.finished?.();
  }

  private settleDependencies(): void {
    let changed = true;
    while (changed) {
      changed = false;
      for (const rec of this.recs) {
        if (rec.status !== "PENDING") continue;
        let ready = true;
        for (const dep of rec.job.dependencies) {
          const up = this.byId.get(dep.job) as JobRec;
          if (!FINAL.has(up.status as Status)) {
            ready = false;
            continue;
          }
          if (dep.type === "afterok" && up.status !== "COMPLETED") {
            // --kill-on-invalid-dep=yes: the job can never run.
            this.logger.info({ job: rec.job.id, upstream: dep.job, upstream_state: up.status }, "job cancelled: dependency never satisfied");
            this.cancelPending(rec, "DependencyNeverSatisfied");
            changed = true;
            ready = false;
            break;
          }
        }
        if (ready && rec.status === "PENDING") {
          rec.status = "READY";
          if (rec.tasks.length === 0) this.finishJob(rec);
        }
      }
    }
  }

  private startTasks(): void {
    for (const rec of this.recs) {
      // A retry controller is run by this table (see control), not as a process: it needs no scheduler here.
      if (rec.job.retry !== undefined) {
        if (rec.status === "READY") this.control(rec);
        continue;
      }
      if (rec.status !== "READY" && rec.status !== "RUNNING") continue;
      while (rec.again.length > 0) {
        if (rec.throttle !== null && rec.running >= rec.throttle) break;
        if (rec.cpus > this.cpusFree) return;
        this.startTask(rec, rec.again.shift() as TaskRec);
      }
      while (rec.next < rec.tasks.length) {
        if (rec.throttle !== null && rec.running >= rec.throttle) break;
        // First come, first served: a task that does not fit holds back everything after it.
        if (rec.cpus > this.cpusFree) return;
        const t = rec.tasks[rec.next++] as TaskRec;
        this.startTask(rec, t);
      }
    }
  }

  private outputPaths(rec: JobRec, t: TaskRec, jobId: string): { stdout: string; stderr: string } {
    const isArray = rec.job.array !== null;
    const fallback = isArray ? "logs/slurm-%A_%a.out" : "logs/slurm-%j.out";
    const vars = {
      arrayJobId: isArray ? rec.slurmJobId : jobId,
      taskId: isArray ? String(t.taskId) : "4294967294",
      jobId,
      jobName: rec.job.name,
      user: this.user,
      node: this.node,
    };
    const place = (pattern: string | undefined): string | undefined => {
      if (pattern === undefined) return undefined;
      const full = resolve(this.runDir, expandFilenamePattern(pattern, vars));
      const back = relative(this.runDir, full);
      // The plan's own output paths stay inside the run directory; anything else falls back to logs/.
      return back === "" || back.startsWith(`..${sep}`) || back === ".." ? undefined : full;
    };
    const stdout = place(rec.output) ?? resolve(this.runDir, expandFilenamePattern(fallback, vars));
    const stderr = place(rec.error) ?? stdout;
    for (const p of new Set([stdout, stderr])) mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
    return { stdout, stderr };
  }

  private startTask(rec: JobRec, t: TaskRec): void {
    const job = rec.job;
    t.slurmJobId ??= this.nextId();
    const jobId = t.slurmJobId;
    t.status = "RUNNING";
    rec.running += 1;
    this.cpusFree -= rec.cpus;
    if (rec.status === "READY") {
      rec.status = "RUNNING";
      this.logger.info({ job: job.id, slurm_job_id: rec.slurmJobId }, "job started");
      this.emit({ type: "job-started", job: job.id, slurmJobId: rec.slurmJobId, time: Date.now() });
    }
    const env = {
      ...this.baseEnv,
      ...(t.attemptBase !== undefined ? { HPCPIPE_ATTEMPT_BASE: String(t.attemptBase) } : {}),
      ...slurmEnvironment(
        job,
        { jobId, arrayJobId: job.array === null ? null : rec.slurmJobId, taskId: t.taskId, taskIds: rec.taskIds },
        { submitDir: this.runDir, cpus: rec.cpus, node: this.node },
      ),
    };
    let proc: TaskProcess | undefined;
    try {
      const { stdout, stderr } = this.outputPaths(rec, t, jobId);
      proc = new TaskProcess({
        script: bundlePath(this.runDir, job.scriptPath),
        cwd: this.runDir,
        env,
        stdoutPath: stdout,
        stderrPath: stderr,
        timeLimitS: rec.limitS,
        warn: rec.warn,
        killWaitS: this.killWaitS,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      queueMicrotask(() => this.taskEnded(rec, t, { exitCode: null, signal: null, timedOut: false, cancelled: false, launchError: message }, false));
      return;
    }
    t.proc = proc;
    this.emit({ type: "task-started", job: job.id, task: t.task, taskId: t.taskId, slurmJobId: jobId, pid: proc.pid ?? null, time: Date.now() });
    proc.done.then((outcome) => this.taskEnded(rec, t, outcome)).catch((err: unknown) => this.crash(err));
  }

  /** A bug in the executor itself: stop every job rather than hang or leave processes behind. */
  private crash(err: unknown): void {
    this.logger.error({ err }, "local executor failed; cancelling every running job");
    for (const rec of this.recs) for (const t of rec.tasks) t.proc?.cancel();
    this.crashed?.(err);
  }

  private taskEnded(rec: JobRec, t: TaskRec, outcome: TaskOutcome, started = true): void {
    const { status, reason } = stateOf(outcome);
    t.status = status;
    t.reason = reason;
    t.exitCode = outcome.exitCode;
    t.signal = outcome.signal;
    t.proc = undefined;
    rec.running -= 1;
    this.cpusFree += rec.cpus;
    this.emit({ type: "task-finished", job: rec.job.id, task: t.task, taskId: t.taskId, slurmJobId: t.slurmJobId, started, state: status, reason, exitCode: outcome.exitCode, time: Date.now() });
    if (rec.running === 0 && rec.next >= rec.tasks.length && rec.again.length === 0) {
      this.finishJob(rec);
      // Its retry controller decides what runs again.
      const controller = this.recs.find((c) => c.job.retry?.of === rec.job.id && c.status === "RUNNING");
      if (controller !== undefined && !this.aborted) this.control(controller);
    }
    this.pump();
  }

  // ---- retries: the attempts loop of a retry controller job (templates/retry.sh does this on a cluster) ----
  private readonly used = new Map<string, Map<number, number>>();
  private readonly failedForGood = new Map<string, Map<number, string>>();
  private readonly attemptOf = new Map<string, number>();

  /**
   * The job the controller retries has ended (attempt n): its tasks whose failure `retry_on` names and that
   * have attempts left run again (in place, with more time after a time limit, bounded by the partition's);
   * when none is left the controller ends ok, or failed when a task failed for good (its dependents are then
   * cancelled, as on a cluster).
   */
  private control(c: JobRec): void {
    const r = c.job.retry;
    const j = r === undefined ? undefined : this.byId.get(r.of);
    const ct = c.tasks[0];
    if (r === undefined || j === undefined || ct === undefined) return;
    if (c.status === "READY") {
      c.status = "RUNNING";
      ct.status = "RUNNING";
      ct.slurmJobId ??= this.nextId();
      this.emit({ type: "job-started", job: c.job.id, slurmJobId: c.slurmJobId, time: Date.now() });
      this.emit({ type: "task-started", job: c.job.id, task: ct.task, taskId: ct.taskId, slurmJobId: ct.slurmJobId, pid: null, time: Date.now() });
    }
    const attempt = this.attemptOf.get(j.job.id) ?? 1;
    const used = this.used.get(j.job.id) ?? new Map<number, number>();
    const failed = this.failedForGood.get(j.job.id) ?? new Map<number, string>();
    this.used.set(j.job.id, used);
    this.failedForGood.set(j.job.id, failed);
    const ran = j.tasks.filter((t) => (t.ranIn ?? 1) === attempt);
    for (const t of ran) used.set(t.task, (used.get(t.task) ?? 0) + 1);
    const files = attemptFiles(this.runDir, j.slurmJobId, j.job.array !== null, r.itemsPerTask, (task) => used.get(task));
    const again: Array<{ t: TaskRec; verdict: string }> = [];
    for (const t of ran) {
      const verdict = t.status === "COMPLETED" ? (files.failure.get(t.task) ?? "ok") : t.status === "TIMEOUT" ? "TIMEOUT" : t.status === "FAILED" ? (files.failure.get(t.task) ?? `exit ${t.exitCode ?? 1}`) : t.status;
      if (verdict === "ok") continue;
      const n = used.get(t.task) ?? 1;
      if (!retryable(verdict, r.on)) failed.set(t.task, `${verdict} (not retried)`);
      else if (n > r.retries) failed.set(t.task, `${verdict} (retries used up after ${n} attempts)`);
      else again.push({ t, verdict });
    }
    if (again.length === 0) {
      const ok = failed.size === 0;
      writeRecord(this.runDir, `${j.job.id}.end.json`, { job: j.job.id, attempts: attempt, ok, by: c.slurmJobId, failed: Object.fromEntries([...failed].map(([t, why]) => [String(t), why])) });
      ct.status = ok ? "COMPLETED" : "FAILED";
      ct.exitCode = ok ? 0 : 1;
      ct.reason = ok ? null : "NonZeroExitCode";
      this.emit({ type: "task-finished", job: c.job.id, task: ct.task, taskId: ct.taskId, slurmJobId: ct.slurmJobId, started: true, state: ct.status, reason: ct.reason, exitCode: ct.exitCode, time: Date.now() });
      this.finishJob(c);
      this.pumpAgain = true;
      return;
    }
    const next = attempt + 1;
    keepAttempt(this.runDir, attempt, again.flatMap(({ t }) => files.keys.get(t.task) ?? []));
    if (again.some((a) => a.verdict === "TIMEOUT") && r.timeFactorPermille > 0 && j.limitS !== null) {
      const grown = Math.ceil(Math.ceil((j.limitS * r.timeFactorPermille) / 1000) / 60) * 60;
      j.limitS = r.maxTimeS > 0 ? Math.min(grown, r.maxTimeS) : grown;
    }
    const tasks = again.map(({ t }) => t.task).sort((a, b) => a - b);
    writeRecord(this.runDir, `${j.job.id}.${next}.json`, {
      job: j.job.id,
      attempt: next,
      by: c.slurmJobId,
      retry_job_id: j.slurmJobId,
      controller_job_id: c.slurmJobId,
      tasks,
      reasons: Object.fromEntries(again.map(({ t, verdict }) => [String(t.task), verdict])),
      time_s: j.limitS ?? 0,
      mem_mb: 0,
      exclude: [],
    });
    this.attemptOf.set(j.job.id, next);
    for (const { t } of again.sort((a, b) => a.t.taskId - b.t.taskId)) {
      t.status = "PENDING";
      t.reason = null;
      t.exitCode = null;
      t.signal = null;
      t.attemptBase = used.get(t.task) ?? 1;
      t.ranIn = next;
      j.again.push(t);
    }
    j.status = "RUNNING";
    this.pumpAgain = true;
    this.logger.info({ job: j.job.id, attempt: next, tasks }, "retrying failed tasks");
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? "user";
  }
}
