// The SLURM scheduler: status of many jobs in a bounded number of queries,
// one scancel for many jobs, one sbatch per job. Commands go through an
// injected executor (the SSH transport, or a local one in tests).
import { sacctArgv, sacctRunsArgv, sacctTimesArgv, sbatchArgv, scancelArgv, scontrolArgv, squeueArgv, type SbatchOptions } from "./commands.js";
import {
  AccountingDisabledError,
  InvalidJobIdError,
  SchedulerError,
  SlurmOutputError,
  checkResult,
  type CommandExecutor,
  type CommandResult,
} from "./errors.js";
import {
  parsePrintedJobId,
  parseSacctAnswer,
  parseSacctRunsAnswer,
  parseSacctTimes,
  parseSbatchParsable,
  parseScontrolAnswer,
  parseSqueueAnswer,
  type JobTimesRecord,
  type TaskRecord,
} from "./parse.js";
import { EXACT, TaskAnswer, taskKey } from "./task-answer.js";

/** Per requested job id, the records of its tasks (one for a plain job). */
export type JobStatusMap = Map<string, TaskRecord[]>;

/** Per requested job id, its tasks' records compactly (see TaskAnswer). */
export type JobAnswerMap = Map<string, TaskAnswer>;

export interface SlurmSchedulerOptions {
  /**
   * How jobs that left squeue are looked up:
   * - `auto` (default): sacct; after the first "accounting storage is disabled", scontrol for good.
   * - `on`: sacct only (AccountingDisabledError is thrown).
   * - `off`: scontrol only, sacct is never run.
   */
  accounting?: "auto" | "on" | "off";
  /** Pass `--me` to squeue (default true): see squeueArgv. */
  onlyMine?: boolean;
  /**
   * Send sacct's answer through the cluster-side filter that folds neighbouring
   * tasks of an array in the same state into one line (src/slurm/sacct-runs.ts;
   * default true). When the filter cannot run there (no bash or awk, awk
   * killed) or its answer cannot be read, the same poll asks plain sacct and
   * this scheduler keeps to plain sacct from then on.
   */
  sacctFilter?: boolean;
}

export interface StatusOptions {
  /**
   * Per array job id, the task ids the caller still waits for: an array that
   * squeue shows without some of them is asked of sacct (or scontrol) too.
   */
  expect?: ReadonlyMap<string, readonly number[]>;
  /**
   * The caller reads array tasks' own job ids (default true). With false (the
   * status poll: it asks for the ids sbatch printed, array and plain job ids,
   * and maps tasks by their index), sacct's filter folds an array's tasks in
   * the same state whatever their own ids (on a busy cluster they are seldom
   * consecutive), and the tasks it folded carry the array's job id as `jobId`,
   * as a pending range's do. The tasks' states are the same either way.
   */
  taskJobIds?: boolean;
}

/** A record for a job no source knows: purged from slurmctld and absent from accounting (or sacct lagging). */
export function unknownRecord(id: string): TaskRecord {
  const parsed = parsePrintedJobId(id);
  const taskId = parsed?.taskIds?.[0] ?? null;
  return {
    jobId: id,
    arrayJobId: taskId !== null && parsed ? parsed.baseId : null,
    taskId,
    rawId: id,
    state: "UNKNOWN",
    rawState: "",
    reason: null,
    exitCode: null,
    signal: null,
    source: "none",
  };
}

/**
 * Which requested ids each segment of an answer answers: its array job id
 * (or a plain job's id), a task's own job id, or the task itself (`46_3`),
 * as one segment, or one task of it, in that id's answer. `fill`: the
 * segments come from the fallback query (sacct, scontrol).
 */
function assign(answer: TaskAnswer, wanted: readonly string[], fill: boolean): JobAnswerMap {
  const into: JobAnswerMap = new Map();
  const wantedSet = new Set(wanted);
  // Own job ids asked for (sorted, for a search per segment) and tasks asked for as `46_3`.
  const numeric = wanted.filter((id) => /^\d+$/.test(id)).map(Number).sort((a, b) => a - b);
  const tasksOf = new Map<string, Set<number>>();
  for (const id of wanted) {
    const m = /^(\d+)_(\d+)$/.exec(id);
    if (m?.[1] !== undefined && m[2] !== undefined) tasksOf.set(m[1], (tasksOf.get(m[1]) ?? new Set()).add(Number(m[2])));
  }
  const templateMaps = new Map<TaskAnswer, Map<number, number>>();
  const put = (id: string, i: number, only?: number): void => {
    let target = into.get(id);
    if (target === undefined) {
      target = new TaskAnswer();
      into.set(id, target);
    }
    let map = templateMaps.get(target);
    if (map === undefined) {
      map = new Map();
      templateMaps.set(target, map);
    }
    target.copyFrom(answer, i, map, fill, only);
  };
  const firstAtLeast = (v: number): number => {
    let lo = 0;
    let hi = numeric.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((numeric[mid] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  for (let i = 0; i < answer.size; i++) {
    const s = answer.segment(i);
    const r = s.template;
    if (answer.isWhole(i)) {
      for (const key of new Set([r.arrayJobId ?? r.jobId, r.jobId, taskKey(r)])) if (wantedSet.has(key)) put(key, i);
      continue;
    }
    const base = r.arrayJobId ?? r.jobId;
    if (wantedSet.has(base)) put(base, i);
    // A task's own job id, when asked for by itself (not the array's id: that is the segment above).
    if (!s.range && numeric.length > 0) {
      if (s.own === EXACT) {
        if (r.jobId !== base && wantedSet.has(r.jobId)) put(r.jobId, i);
      } else {
        const count = Math.floor((s.last - s.first) / s.step) + 1;
        const lo = s.own;
        const hi = s.seq ? s.own + count - 1 : s.own;
        for (let k = firstAtLeast(lo); k < numeric.length && (numeric[k] as number) <= hi; k++) {
          const id = numeric[k] as number;
          if (String(id) === base) continue;
          if (s.seq) put(String(id), i, s.first + (id - s.own) * s.step);
          else for (const t of answer.taskIds(i)) put(String(id), i, t);
        }
      }
    } else if (s.range && wantedSet.has(r.jobId) && r.jobId !== base) put(r.jobId, i);
    const asked = tasksOf.get(base);
    if (asked !== undefined) {
      for (const t of asked) if (t >= s.first && t <= s.last && (t - s.first) % s.step === 0) put(`${base}_${t}`, i, t);
    }
  }
  return into;
}

export class SlurmScheduler {
  private queryCount = 0;
  private accountingOff: boolean;
  private readonly accountingMode: "auto" | "on" | "off";
  private readonly onlyMine: boolean;
  private sacctFilter: boolean;

  constructor(
    private readonly execute: CommandExecutor,
    options: SlurmSchedulerOptions = {},
  ) {
    this.accountingMode = options.accounting ?? "auto";
    this.accountingOff = this.accountingMode === "off";
    this.onlyMine = options.onlyMine ?? true;
    this.sacctFilter = options.sacctFilter ?? true;
  }

  /** True while sacct is asked through the cluster-side filter (false after it failed once, or by the option). */
  get sacctFiltered(): boolean {
    return this.sacctFilter;
  }

  /** Scheduler queries run so far (squeue, sacct, scontrol): the polling budget. */
  get queries(): number {
    return this.queryCount;
  }

  /** True once the cluster said its accounting storage is disabled (or the option said so). */
  get accountingDisabled(): boolean {
    return this.accountingOff;
  }

  /**
   * The state of every task of the given jobs. ONE squeue for all ids; for the
   * ids squeue no longer shows, ONE sacct, or ONE scontrol when accounting is
   * disabled. Ids no source knows get a single UNKNOWN record, never an error.
   * Throws AccountingUnavailableError when slurmdbd or its database is down.
   *
   * `expect` names, per array job id, the task ids the caller still waits for:
   * an array that squeue shows without some of them (finished long ago, or an
   * answer cut short while slurmctld restarts) is asked of sacct (or
   * scontrol) in the same fallback query, and only the tasks squeue left out
   * are taken from it (squeue is live; sacct lags).
   */
  async status(jobIds: readonly string[], options: { expect?: ReadonlyMap<string, readonly number[]> } = {}): Promise<JobStatusMap> {
    const answers = await this.statusAnswers(jobIds, options);
    const result: JobStatusMap = new Map();
    for (const [id, answer] of answers) result.set(id, answer.records());
    return result;
  }

  /**
   * `status`, compactly: per id, a TaskAnswer (a pending range, and tasks in
   * order in the same state, are one segment each), so a million-task answer
   * makes no record per task. The same queries and the same answer task for
   * task: `status` is this, expanded (with `taskJobIds: false`, tasks sacct's
   * filter folded carry the array's job id as their `jobId`; see StatusOptions).
   */
  async statusAnswers(jobIds: readonly string[], options: StatusOptions = {}): Promise<JobAnswerMap> {
    const ids = [...new Set(jobIds)];
    const found: JobAnswerMap = new Map();
    if (ids.length === 0) return found;

    for (const [id, answer] of assign(await this.query(squeueArgv(ids, { onlyMine: this.onlyMine }), parseSqueueAnswer), ids, false)) found.set(id, answer);

    const incomplete = ids.filter((id) => {
      const wanted = options.expect?.get(id);
      const seen = found.get(id);
      if (wanted === undefined || wanted.length === 0 || seen === undefined) return false;
      return !seen.covers(wanted);
    });
    const fill = (answer: TaskAnswer, asked: readonly string[]): void => {
      for (const [id, extra] of assign(answer, asked, true)) {
        const have = found.get(id);
        if (have === undefined) found.set(id, extra);
        else {
          // After squeue's segments: a task squeue named keeps squeue's record (squeue is live; sacct lags).
          const map = new Map<number, number>();
          for (let i = 0; i < extra.size; i++) have.copyFrom(extra, i, map, true);
        }
      }
    };
    let asked = [...ids.filter((id) => !found.has(id)), ...incomplete];
    if (asked.length > 0 && !this.accountingOff) {
      try {
        fill(await this.sacct(asked, options.taskJobIds ?? true), asked);
        asked = [];
      } catch (error) {
        if (!(error instanceof AccountingDisabledError) || this.accountingMode === "on") throw error;
        this.accountingOff = true;
      }
    }
    if (asked.length > 0 && this.accountingOff) fill(await this.query(scontrolArgv(asked), parseScontrolAnswer), asked);

    const result: JobAnswerMap = new Map();
    for (const id of ids) result.set(id, found.get(id) ?? TaskAnswer.fromRecords([unknownRecord(id)], "dedupe"));
    return result;
  }

  /**
   * When and where every task of the given jobs ran: ONE sacct (accounting
   * only; scontrol forgets finished jobs). Throws AccountingDisabledError
   * without accounting (also when this scheduler already knows it is off,
   * without running anything) and AccountingUnavailableError when slurmdbd is down.
   */
  async jobTimes(jobIds: readonly string[]): Promise<JobTimesRecord[]> {
    const ids = [...new Set(jobIds)];
    if (ids.length === 0) return [];
    const argv = sacctTimesArgv(ids);
    if (this.accountingOff) {
      throw new AccountingDisabledError(argv, { code: null, stdout: "", stderr: "accounting is off for this scheduler (accounting: off, or sacct said so earlier)" });
    }
    this.queryCount += 1;
    const result = await this.execute(argv);
    try {
      checkResult(argv, result);
    } catch (error) {
      if (error instanceof AccountingDisabledError && this.accountingMode !== "on") this.accountingOff = true;
      throw error;
    }
    return this.parsed(argv, result, parseSacctTimes);
  }

  /** Cancels every given job (all tasks of an array) with ONE scancel; ids that already finished are fine. */
  async cancel(jobIds: readonly string[]): Promise<void> {
    if (jobIds.length === 0) return;
    const argv = scancelArgv(jobIds);
    checkResult(argv, await this.execute(argv));
  }

  /** Submits one job with `sbatch --parsable`; returns its job id (an array's job id for an array). */
  async submit(options: SbatchOptions): Promise<string> {
    const argv = sbatchArgv(options);
    const result = checkResult(argv, await this.execute(argv));
    return this.parsed(argv, result, (stdout) => parseSbatchParsable(stdout).jobId);
  }

  /**
   * sacct's answer for `ids`: through the filter while it works, else plain.
   * sacct's own failures (accounting disabled or down, a busy controller) come
   * through the filter as they are and are thrown. Any other failure of the
   * filtered command, or an answer parseSacctRunsAnswer refuses, is taken for
   * the filter's: plain sacct is asked at once (one more query) and from then
   * on; if plain sacct fails (or is refused) too, the fault was sacct's and the
   * filter stays.
   */
  private async sacct(ids: readonly string[], taskJobIds: boolean): Promise<TaskAnswer> {
    if (this.sacctFilter) {
      const argv = sacctRunsArgv(ids, { taskJobIds });
      this.queryCount += 1;
      const result = await this.execute(argv);
      let failed = false;
      try {
        checkResult(argv, result);
      } catch (error) {
        if (error instanceof InvalidJobIdError) return new TaskAnswer();
        // A typed SLURM failure, or a transient one: sacct's, as without the filter.
        if (!(error instanceof SchedulerError) || error.constructor !== SchedulerError || error.transient) throw error;
        failed = true;
      }
      if (!failed) {
        try {
          return parseSacctRunsAnswer(result.stdout);
        } catch (error) {
          if (!(error instanceof SlurmOutputError)) throw error;
        }
      }
      this.sacctFilter = false;
      try {
        return await this.query(sacctArgv(ids), parseSacctAnswer);
      } catch (error) {
        this.sacctFilter = true;
        throw error;
      }
    }
    return this.query(sacctArgv(ids), parseSacctAnswer);
  }

  // Runs one status query. "Invalid job id specified" only comes back when a
  // single asked-for id is unknown to slurmctld: that is an empty answer.
  private async query(argv: string[], parse: (stdout: string) => TaskAnswer): Promise<TaskAnswer> {
    this.queryCount += 1;
    const result = await this.execute(argv);
    try {
      checkResult(argv, result);
    } catch (error) {
      if (error instanceof InvalidJobIdError) return new TaskAnswer();
      throw error;
    }
    return this.parsed(argv, result, parse);
  }

  private parsed<T>(argv: string[], result: CommandResult, parse: (stdout: string) => T): T {
    try {
      return parse(result.stdout);
    } catch (error) {
      if (error instanceof SlurmOutputError) {
        throw new SchedulerError(`could not read the output of ${argv[0] ?? "command"}: ${error.message}`, argv, result, {
          cause: error,
        });
      }
      throw error;
    }
  }
}
