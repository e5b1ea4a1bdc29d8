// The SLURM scheduler: status of many jobs in a bounded number of queries,
// one scancel for many jobs, one sbatch per job. Commands go through an
// injected executor (the SSH transport, or a local one in tests).
import { sacctArgv, sacctTimesArgv, sbatchArgv, scancelArgv, scontrolArgv, squeueArgv, type SbatchOptions } from "./commands.js";
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
  dedupeTasks,
  parsePrintedJobId,
  parseSacct,
  parseSacctTimes,
  parseSbatchParsable,
  parseScontrol,
  parseSqueue,
  taskKey,
  type JobTimesRecord,
  type TaskRecord,
} from "./parse.js";

/** Per requested job id, the records of its tasks (one for a plain job). */
export type JobStatusMap = Map<string, TaskRecord[]>;

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

// Which requested ids a record answers: its array job id, its own job id, or the task itself (`46_3`).
function assign(records: readonly TaskRecord[], wanted: ReadonlySet<string>, into: JobStatusMap): void {
  for (const record of records) {
    const keys = new Set([record.arrayJobId ?? record.jobId, record.jobId, taskKey(record)]);
    for (const key of keys) {
      if (!wanted.has(key)) continue;
      const list = into.get(key);
      if (list) list.push(record);
      else into.set(key, [record]);
    }
  }
}

export class SlurmScheduler {
  private queryCount = 0;
  private accountingOff: boolean;
  private readonly accountingMode: "auto" | "on" | "off";
  private readonly onlyMine: boolean;

  constructor(
    private readonly execute: CommandExecutor,
    options: SlurmSchedulerOptions = {},
  ) {
    this.accountingMode = options.accounting ?? "auto";
    this.accountingOff = this.accountingMode === "off";
    this.onlyMine = options.onlyMine ?? true;
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
    const ids = [...new Set(jobIds)];
    const found: JobStatusMap = new Map();
    if (ids.length === 0) return found;

    assign(await this.query(squeueArgv(ids, { onlyMine: this.onlyMine }), parseSqueue), new Set(ids), found);

    const incomplete = ids.filter((id) => {
      const wanted = options.expect?.get(id);
      const seen = found.get(id);
      if (wanted === undefined || wanted.length === 0 || seen === undefined) return false;
      const tasks = new Set(seen.map((r) => r.taskId));
      return wanted.some((t) => !tasks.has(t));
    });
    const fill = (records: readonly TaskRecord[], asked: readonly string[]): void => {
      const extra: JobStatusMap = new Map();
      assign(records, new Set(asked), extra);
      for (const [id, list] of extra) {
        const have = found.get(id);
        if (have === undefined) found.set(id, list);
        else {
          const tasks = new Set(have.map((r) => r.taskId));
          // One at a time: a spread of an array job's records (100,000 tasks) into push() overflows the stack.
          for (const r of list) if (r.taskId !== null && !tasks.has(r.taskId)) have.push(r);
        }
      }
    };
    let asked = [...ids.filter((id) => !found.has(id)), ...incomplete];
    if (asked.length > 0 && !this.accountingOff) {
      try {
        fill(await this.query(sacctArgv(asked), parseSacct), asked);
        asked = [];
      } catch (error) {
        if (!(error instanceof AccountingDisabledError) || this.accountingMode === "on") throw error;
        this.accountingOff = true;
      }
    }
    if (asked.length > 0 && this.accountingOff) fill(await this.query(scontrolArgv(asked), parseScontrol), asked);

    const result: JobStatusMap = new Map();
    for (const id of ids) result.set(id, dedupeTasks(found.get(id) ?? [unknownRecord(id)]));
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

  // Runs one status query. "Invalid job id specified" only comes back when a
  // single asked-for id is unknown to slurmctld: that is an empty answer.
  private async query(argv: string[], parse: (stdout: string) => TaskRecord[]): Promise<TaskRecord[]> {
    this.queryCount += 1;
    const result = await this.execute(argv);
    try {
      checkResult(argv, result);
    } catch (error) {
      if (error instanceof InvalidJobIdError) return [];
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
