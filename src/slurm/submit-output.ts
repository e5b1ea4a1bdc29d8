/**
 * The submit script's output (templates/submit.hbs): one `hpcpipe-job <plan
 * job id> <slurm job id>` line per job submitted, in plan order, read back
 * and validated.
 */
import { z } from "zod";
import { issuesText, preview } from "../core/preview.js";

export const JOB_LINE_PREFIX = "hpcpipe-job";
const jobLineSchema = z.tuple([z.literal(JOB_LINE_PREFIX), z.string().regex(/^j\d{3,}$/, "a plan job id like j000"), z.string().regex(/^\d{1,20}$/, "a numeric SLURM job id")]);

/**
 * Reads the submit script's stdout: every `hpcpipe-job <plan job id> <slurm
 * id>` line, validated (known plan job, numeric id, each job once, each
 * SLURM id once). Other lines (login banners) are ignored.
 */
export function parseSubmitOutput(stdout: string, plan: { jobs: ReadonlyArray<{ id: string }> }): { jobs: Record<string, string>; problems: string[] } {
  const known = new Set(plan.jobs.map((j) => j.id));
  const jobs: Record<string, string> = {};
  const seenIds = new Map<string, string>();
  const problems: string[] = [];
  stdout.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "").trim();
    if (!line.startsWith(`${JOB_LINE_PREFIX} `) && line !== JOB_LINE_PREFIX) return;
    const where = `line ${index + 1} ${preview(line, 120)}`;
    const parsed = jobLineSchema.safeParse(line.split(/\s+/));
    if (!parsed.success) {
      problems.push(`${where}: expected "${JOB_LINE_PREFIX} <plan job id> <SLURM job id>" (${issuesText(parsed.error.issues)})`);
      return;
    }
    const [, planId, slurmId] = parsed.data;
    if (!known.has(planId)) problems.push(`${where}: the plan has no job ${planId}`);
    else if (jobs[planId] !== undefined && jobs[planId] !== slurmId) problems.push(`${where}: job ${planId} was already reported as SLURM job ${jobs[planId]}`);
    else if (seenIds.has(slurmId) && seenIds.get(slurmId) !== planId) problems.push(`${where}: SLURM job ${slurmId} was already reported for job ${seenIds.get(slurmId)}`);
    else {
      jobs[planId] = slurmId;
      seenIds.set(slurmId, planId);
    }
  });
  return { jobs, problems };
}

