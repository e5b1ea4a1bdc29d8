import { secondsToSlurmTime, slurmTimeToSeconds } from "../plan/resources.js";
import type { JobDraft } from "./drafts.js";
import type { CompileTarget } from "./target.js";

/** One way to write a time limit everywhere (plan, #SBATCH, messages): HH:MM:SS, or D-HH:MM:SS past a day. */
export function withSlurmTimes(jobs: readonly JobDraft[]): JobDraft[] {
  return jobs.map((d) => (d.resources.time === undefined ? d : { ...d, resources: { ...d.resources, time: secondsToSlurmTime(slurmTimeToSeconds(d.resources.time)) } }));
}

/** The jobs whose time limit is not above the cluster's signal grace, in job order (see graceProblem). */
export function timeLimitProblems(jobs: readonly JobDraft[], target: CompileTarget): string[] {
  return jobs.map((d) => graceProblem(d, target)).filter((p): p is string => p !== null);
}

/** SLURM sends the warning signal `signal_grace_s` before the limit: at or past the start, it stops the job at once. */
function graceProblem(job: JobDraft, target: CompileTarget): string | null {
  const grace = target.signalGraceS;
  const time = job.resources.time;
  if (grace <= 0 || time === undefined) return null;
  const limit = slurmTimeToSeconds(time);
  if (grace < limit) return null;
  const who = job.steps.length === 1 ? `step ${job.steps[0] ?? job.id}` : `steps ${job.steps.join(", ")} (job ${job.id})`;
  return (
    `${who}: signal_grace_s (${grace} s) of cluster ${target.name} is not below the time limit ${time} (${limit} s): ` +
    `the warning signal would stop it as soon as it starts; give it a time limit above ${grace} s or lower signal_grace_s`
  );
}
