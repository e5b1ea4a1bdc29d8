/**
 * Retries on the cluster, at compile time: a job whose step (or map) has
 * `retries` gets a retry controller job right after it, `afterany` it; the
 * jobs that would have waited on the retried job wait on its controller
 * instead (with the same dependency type), so they run only when the retries
 * succeed (see templates/retry.sh, DESIGN.md section 9).
 */
import { itemsPerTaskOf } from "../plan/plan.js";
import type { Dependency } from "../plan/plan.js";
import { secondsToSlurmTime, slurmTimeToSeconds } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import { retryOnArgument } from "../plan/retry.js";
import type { RetryControl, RetryPolicy } from "../plan/retry.js";
import { taskMapArgument } from "../plan/task-map.js";
import type { JobDraft } from "./drafts.js";
import { memMb } from "./job-resources.js";
import type { CompileTarget } from "./target.js";

/** A controller's own time limit: it reads the scheduler and state files and calls sbatch a few times. */
export const CONTROLLER_TIME = "00:05:00";

/**
 * Adds a controller for each job `deps` names (the jobs just added for one step or map) and returns what
 * their successors wait on instead: the controllers. Nothing changes without a policy.
 */
export function addControllers(jobs: JobDraft[], deps: Dependency[], policy: RetryPolicy | null | undefined, key: string, target: CompileTarget, problems: string[]): Dependency[] {
  if (policy === null || policy === undefined) return deps;
  if (target.retriesAllowed === false) {
    problems.push(
      `${key}: retries run on a SLURM cluster, where a retry controller job resubmits what failed; cluster ${target.name} runs jobs with the local executor, which does not retry (remove retries, or submit to a cluster)`,
    );
    return deps;
  }
  return deps.map((dep) => {
    const job = jobs.find((j) => j.id === dep.job);
    if (job === undefined) return dep;
    const id = `j${String(jobs.length).padStart(3, "0")}`;
    // At most the partition's own limit: a controller needs seconds, not minutes.
    const limit = job.resources.partition === undefined ? undefined : target.partitions?.[job.resources.partition]?.max_time;
    const time = limit !== undefined && slurmTimeToSeconds(limit) < slurmTimeToSeconds(CONTROLLER_TIME) ? secondsToSlurmTime(slurmTimeToSeconds(limit)) : CONTROLLER_TIME;
    const resources: Resources = { time, cpus: 1 };
    for (const name of ["partition", "account", "qos"] as const) if (job.resources[name] !== undefined) resources[name] = job.resources[name];
    jobs.push({
      id,
      name: `hp-${id}-retry-${job.id}`,
      shape: "single",
      bodies: [],
      array: null,
      dependencies: [{ job: job.id, type: "afterany" }],
      resources,
      steps: [],
      fused: null,
      retry: controlOf(job, policy, target),
      scriptPath: `scripts/${id}.sbatch`,
    });
    return { job: id, type: dep.type };
  });
}

function controlOf(job: JobDraft, policy: RetryPolicy, target: CompileTarget): RetryControl {
  const r = job.resources;
  const limits = r.partition === undefined ? undefined : target.partitions?.[r.partition];
  const permille = (f: number | null): number => (f === null ? 0 : Math.round(f * 1000));
  return {
    of: job.id,
    retries: policy.retries,
    on: retryOnArgument(policy.on),
    timeFactorPermille: permille(policy.timeFactor),
    memFactorPermille: permille(policy.memFactor),
    timeS: r.time === undefined ? 0 : slurmTimeToSeconds(r.time),
    memMb: r.mem === undefined ? 0 : Math.ceil(memMb(r.mem)),
    maxTimeS: limits?.max_time === undefined ? 0 : slurmTimeToSeconds(limits.max_time),
    maxMemMb: limits?.max_mem === undefined ? 0 : Math.floor(memMb(limits.max_mem)),
    partition: r.partition ?? "",
    itemsPerTask: itemsPerTaskOf(job),
    script: job.scriptPath,
    name: job.name,
    ...arrayOf(job),
  };
}

function arrayOf(job: JobDraft): Pick<RetryControl, "isArray" | "throttle" | "offset" | "taskMap"> {
  const a = job.array;
  if (a === null) return { isArray: 0, throttle: 0, offset: 0, taskMap: "" };
  return { isArray: 1, throttle: a.throttle ?? 0, offset: a.offset, taskMap: taskMapArgument(a) ?? "" };
}

/** After a resume left tasks out (prune.ts), each controller learns its job's array as it will be submitted. */
export function linkControllers(jobs: readonly JobDraft[]): JobDraft[] {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  return jobs.map((j) => {
    const of = j.retry === undefined ? undefined : byId.get(j.retry.of);
    return j.retry === undefined || of === undefined ? j : { ...j, retry: { ...j.retry, ...arrayOf(of) } };
  });
}
