/** The environment a SLURM batch job (or array task) sees, for the local executor. */
import type { PlanJob } from "../plan/plan.js";

export interface TaskIdentity {
  /** This task's own job id (for a plain job, the job id). */
  jobId: string;
  /** The array's job id, for array tasks. */
  arrayJobId: string | null;
  /** SLURM_ARRAY_TASK_ID (0-based inside the chunk). */
  taskId: number;
  /** Every task id of the array, to derive COUNT/MIN/MAX. */
  taskIds: readonly number[];
}

/** The parent's environment without SLURM or hpcpipe variables (the tool may itself run inside an allocation or a step). */
export function baseEnvironment(parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(parent)) {
    if (!["SLURM_", "SLURMD_", "SBATCH_", "HPCPIPE_"].some((p) => k.startsWith(p))) env[k] = v;
  }
  return env;
}

export function slurmEnvironment(
  job: PlanJob,
  id: TaskIdentity,
  opts: { submitDir: string; cpus: number; node: string },
): Record<string, string> {
  const env: Record<string, string> = {
    SLURM_JOB_ID: id.jobId,
    SLURM_JOBID: id.jobId,
    SLURM_JOB_NAME: job.name,
    SLURM_SUBMIT_DIR: opts.submitDir,
    SLURM_SUBMIT_HOST: opts.node,
    SLURM_CLUSTER_NAME: "local",
    SLURM_CPUS_PER_TASK: String(opts.cpus),
    SLURM_CPUS_ON_NODE: String(opts.cpus),
    SLURM_JOB_PARTITION: "local",
    SLURM_JOB_NUM_NODES: "1",
    SLURM_NNODES: "1",
    SLURM_NTASKS: "1",
    SLURM_JOB_NODELIST: opts.node,
    SLURMD_NODENAME: opts.node,
  };
  if (job.array !== null && id.arrayJobId !== null) {
    const ids = id.taskIds.length > 0 ? id.taskIds : [id.taskId];
    env.SLURM_ARRAY_JOB_ID = id.arrayJobId;
    env.SLURM_ARRAY_TASK_ID = String(id.taskId);
    env.SLURM_ARRAY_TASK_COUNT = String(ids.length);
    env.SLURM_ARRAY_TASK_MIN = String(ids.reduce((a, b) => Math.min(a, b)));
    env.SLURM_ARRAY_TASK_MAX = String(ids.reduce((a, b) => Math.max(a, b)));
    env.SLURM_ARRAY_TASK_STEP = "1";
  }
  return env;
}
