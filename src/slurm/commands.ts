// argv builders for every SLURM command hpcpipe runs. Each returns an array of
// words (never a shell string); the transport quotes them for the remote shell.
import { SACCT_FIELDS, SACCT_TIME_FIELDS, SQUEUE_FORMAT } from "./parse.js";
import { preview } from "../core/preview.js";
import { SACCT_RUNS_ANY_OWN, SACCT_RUNS_NAME, SACCT_RUNS_SCRIPT } from "./sacct-runs.js";

/** A job id as hpcpipe stores it: `123`, or one array task `123_4`. Anything else could change the meaning of an id list. */
const JOB_ID = /^\d+(?:_\d+)?$/;

export function assertJobIds(ids: readonly string[]): void {
  if (ids.length === 0) throw new Error("no job ids given");
  for (const id of ids) {
    if (!JOB_ID.test(id)) throw new Error(`not a SLURM job id: ${preview(id)}`);
  }
}

function unique(ids: readonly string[]): string[] {
  return [...new Set(ids)];
}

export interface SqueueOptions {
  /**
   * Add `--me` (default true). With two or more ids squeue loads jobs with
   * slurm_load_job_user for the caller only, instead of every job on the
   * cluster, and never shows another user's job behind a recycled id.
   */
  onlyMine?: boolean;
}

/**
 * One squeue for many jobs: `squeue --me -h -t all -o '%i|%A|%F|%K|%T|%r|%E|%k' -j 44,45,46`.
 * `-t all` keeps finished jobs (for MinJobAge); an array job id selects all
 * its tasks. Without `-r` an array's tasks still pending together are ONE
 * line (`173_[2-9%2]|...`, test/fixtures/slurm/squeue-throttled-array-unexpanded.json),
 * not a line per task: a 1,000-task array waiting to start is one row, not
 * 1,000 (issue 16); tasks that started have a line each either way. With ONE id that slurmctld no
 * longer holds, squeue exits 1 "Invalid job id specified"; with several ids
 * it prints the rows it has and exits 0 (test/fixtures/slurm/squeue-*.json).
 */
export function squeueArgv(ids: readonly string[], options: SqueueOptions = {}): string[] {
  assertJobIds(ids);
  const mine = (options.onlyMine ?? true) ? ["--me"] : [];
  return ["squeue", ...mine, "-h", "-t", "all", "-o", SQUEUE_FORMAT, "-j", unique(ids).join(",")];
}

/**
 * One sacct for many jobs: `sacct -X -n -P -o JobID,JobIDRaw,State,ExitCode,Reason -j 44,45`.
 * `-X` leaves out the step rows (`45.batch`); with `-j` and no `-S` sacct
 * searches from the epoch, so old jobs are found; an array job id lists every task.
 */
export function sacctArgv(ids: readonly string[]): string[] {
  assertJobIds(ids);
  return ["sacct", "-X", "-n", "-P", "-o", SACCT_FIELDS.join(","), "-j", unique(ids).join(",")];
}

/**
 * sacct through the cluster-side filter that shortens its answer (src/slurm/sacct-runs.ts):
 * `bash -c SCRIPT hpcpipe-sacct sacct -X -n -P -o JobID,JobIDRaw,State,ExitCode,Reason -j 44,45`,
 * sacctArgv's words after the script's name. parseSacctRunsAnswer reads what it prints.
 * `taskJobIds: false` (`--any-own-ids` before the sacct words): the caller needs no array
 * task's own job id, so tasks in the same state fold whatever their own ids, and carry the
 * array's job id instead.
 */
export function sacctRunsArgv(ids: readonly string[], options: { taskJobIds?: boolean } = {}): string[] {
  return sacctRunsArgvOf(sacctArgv(ids), options);
}

/** The filter around any command printing sacct's rows (bench/poll-parse.ts prints a million with awk). */
export function sacctRunsArgvOf(command: readonly string[], options: { taskJobIds?: boolean } = {}): string[] {
  if (command.length === 0 || command[0] === SACCT_RUNS_ANY_OWN) throw new Error("no command to filter");
  return ["bash", "-c", SACCT_RUNS_SCRIPT, SACCT_RUNS_NAME, ...(options.taskJobIds === false ? [SACCT_RUNS_ANY_OWN] : []), ...command];
}

/**
 * One sacct for when and where every job ran (`hpcpipe report`):
 * `env SLURM_TIME_FORMAT=%s sacct -X -n -P -o JobID,JobIDRaw,State,Submit,Eligible,Start,End,NodeList -j 44,45`.
 * SLURM_TIME_FORMAT=%s makes every time epoch seconds (sacct otherwise prints
 * the cluster's local time without a zone); `env` sets it for sacct alone.
 */
export function sacctTimesArgv(ids: readonly string[]): string[] {
  assertJobIds(ids);
  return ["env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-n", "-P", "-o", SACCT_TIME_FIELDS.join(","), "-j", unique(ids).join(",")];
}

/**
 * scontrol when accounting is off: for one id `scontrol show job -o <id>`,
 * for several ONE `scontrol show job -o` listing every job slurmctld holds
 * (scontrol takes a single id, so asking per id would be a loop of calls).
 */
export function scontrolArgv(ids: readonly string[]): string[] {
  assertJobIds(ids);
  const wanted = unique(ids);
  return wanted.length === 1 ? ["scontrol", "show", "job", "-o", wanted[0] as string] : ["scontrol", "show", "job", "-o"];
}

/** One scancel for many jobs; an array job id cancels every task. Unknown or finished ids are accepted silently (exit 0). */
export function scancelArgv(ids: readonly string[]): string[] {
  assertJobIds(ids);
  return ["scancel", ...unique(ids)];
}

export type DependencyType = "afterok" | "afterany" | "afternotok" | "aftercorr" | "after";

export interface SbatchOptions {
  /** Path of the job script on the cluster. */
  script: string;
  jobName?: string;
  /** Tags the job with its run (`hpcpipe:<runId>`); squeue shows it as %k. */
  comment?: string;
  /** Jobs this one waits for; several entries are joined with `,` (all must hold). */
  dependencies?: ReadonlyArray<{ type: DependencyType; jobIds: readonly string[] }>;
  /**
   * `--kill-on-invalid-dep=yes` (default true when there are dependencies): a job
   * whose dependency can never be satisfied becomes CANCELLED/DependencyNeverSatisfied
   * instead of PENDING forever.
   */
  killOnInvalidDep?: boolean;
  /** `--array` index expression, e.g. `0-9%2` or `1,4,7`. */
  array?: string;
  partition?: string;
  account?: string;
  qos?: string;
  /** `--time`, e.g. `10`, `1:00:00`, `1-00:00:00`. */
  time?: string;
  output?: string;
  error?: string;
  chdir?: string;
  /** Further options, one argv word each (`--mem=4G`). */
  extra?: readonly string[];
}

function option(name: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  if (/[\n\r\0]/.test(value)) throw new Error(`sbatch --${name} value contains a line break or NUL: ${preview(value)}`);
  return [`--${name}=${value}`];
}

/** `sbatch --parsable [options] <script>`: each option is one `--name=value` word, so no value can become another option. */
export function sbatchArgv(options: SbatchOptions): string[] {
  if (options.script === "" || options.script.startsWith("-")) {
    throw new Error(`sbatch script path must not be empty or start with '-': ${preview(options.script)}`);
  }
  const dependencies = options.dependencies?.filter((dependency) => dependency.jobIds.length > 0) ?? [];
  for (const dependency of dependencies) assertJobIds(dependency.jobIds);
  const dependencyText =
    dependencies.length > 0
      ? dependencies.map((dependency) => `${dependency.type}:${unique(dependency.jobIds).join(":")}`).join(",")
      : undefined;
  const killOnInvalidDep = options.killOnInvalidDep ?? dependencies.length > 0;
  if (options.array !== undefined && !/^[\d,\-:%]+$/.test(options.array)) {
    throw new Error(`not an sbatch --array expression: ${preview(options.array)}`);
  }
  for (const word of options.extra ?? []) {
    if (/[\n\r\0]/.test(word)) throw new Error(`sbatch option contains a line break or NUL: ${preview(word)}`);
  }
  return [
    "sbatch",
    "--parsable",
    ...option("job-name", options.jobName),
    ...option("comment", options.comment),
    ...option("array", options.array),
    ...option("dependency", dependencyText),
    ...(killOnInvalidDep ? ["--kill-on-invalid-dep=yes"] : []),
    ...option("partition", options.partition),
    ...option("account", options.account),
    ...option("qos", options.qos),
    ...option("time", options.time),
    ...option("output", options.output),
    ...option("error", options.error),
    ...option("chdir", options.chdir),
    ...(options.extra ?? []),
    options.script,
  ];
}
