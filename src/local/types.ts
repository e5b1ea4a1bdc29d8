/** What the local executor reports: job and task results (SLURM-like states), events, options. */
import type { CompletedState } from "../core/completed-state.js";
import type { StateProblem } from "../collect/read-states.js";
import type { Logger } from "../core/logger.js";

export type LocalJobState = "COMPLETED" | "FAILED" | "TIMEOUT" | "CANCELLED";

export interface LocalTaskResult {
  /** Logical task index (SLURM_ARRAY_TASK_ID + chunk offset; 0 for a plain job). */
  task: number;
  /** SLURM_ARRAY_TASK_ID (0 for a plain job). */
  taskId: number;
  /** The task's own SLURM_JOB_ID, or null when it never started. */
  slurmJobId: string | null;
  state: LocalJobState;
  reason: string | null;
  exitCode: number | null;
  signal: string | null;
}

export interface LocalJobResult {
  state: LocalJobState;
  reason: string | null;
  exitCode: number | null;
  /** The job's id (the array job id for an array). */
  slurmJobId: string;
  tasks: LocalTaskResult[];
}

export type LocalRunEvent =
  | { type: "job-submitted"; job: string; slurmJobId: string; tasks: number; time: number }
  | { type: "job-started"; job: string; slurmJobId: string; time: number }
  | { type: "task-started"; job: string; task: number; taskId: number; slurmJobId: string; pid: number | null; time: number }
  | {
      type: "task-finished";
      job: string;
      task: number;
      taskId: number;
      slurmJobId: string | null;
      /** False for a task cancelled before it started. */
      started: boolean;
      state: LocalJobState;
      reason: string | null;
      exitCode: number | null;
      time: number;
    }
  | { type: "job-finished"; job: string; slurmJobId: string; state: LocalJobState; reason: string | null; exitCode: number | null; time: number };

export interface LocalRunOptions {
  /** The run directory; must be the one the plan was compiled for (`plan.layout.runDir`). */
  runDir: string;
  /** Most CPUs in use at once (a task uses `resources.cpus ?? 1`); default: os.availableParallelism(). */
  cpus?: number;
  /** Seconds between TERM and KILL (SLURM's KillWait); default 5. */
  killWaitS?: number;
  /** Aborting cancels the run: running jobs get TERM (then KILL), nothing new starts. */
  signal?: AbortSignal;
  logger?: Logger;
  onEvent?: (event: LocalRunEvent) => void;
}

export interface LocalRunResult {
  state: CompletedState;
  jobs: Map<string, LocalJobResult>;
  runDir: string;
  /** State files that could not be used (each is also a failed step in `state`). */
  problems: StateProblem[];
}
