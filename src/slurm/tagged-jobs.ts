/**
 * The queries that find the jobs of one run on the cluster by its tag (every
 * job hpcpipe submits has the comment `hpcpipe:<run id>` and the name
 * `hp-<plan job id>-...`, and is submitted from the run directory): their
 * command lines and output parsers. Used to reconcile a submission whose
 * outcome is unknown; the submit script asks the same squeue before it
 * retries a transient sbatch error (templates/submit.hbs).
 */
const JOB_NAME = /^hp-(j\d{3,})-/;

/** squeue's answer for one user's jobs: `<array job id>|<comment>|<name>` per line. */
export const RECONCILE_SQUEUE_FORMAT = "%F|%k|%j";

/**
 * Parses `squeue -h -o '%F|%k|%j'`: the lines whose comment is exactly
 * `hpcpipe:<runId>` and whose name is `hp-<plan job>-...`. Pure.
 */
export function parseTaggedSqueue(stdout: string, runId: string): Array<{ planId: string; slurmId: string }> {
  const out: Array<{ planId: string; slurmId: string }> = [];
  const tag = `|hpcpipe:${runId}|`;
  for (const raw of stdout.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const at = line.indexOf("|");
    if (at <= 0) continue;
    const id = line.slice(0, at);
    if (!/^\d+$/.test(id) || !line.startsWith(tag, at)) continue;
    const planId = JOB_NAME.exec(line.slice(at + tag.length))?.[1];
    if (planId !== undefined) out.push({ planId, slurmId: id });
  }
  return out;
}

/**
 * Parses `sacct -X -n -P -o JobID,JobName,WorkDir`: jobs named `hp-<plan
 * job>-...` whose working directory is the run's (its last component is the
 * run id; the submit script runs every sbatch from the run directory). Pure.
 */
export function parseTaggedSacct(stdout: string, runId: string): Array<{ planId: string; slurmId: string }> {
  const out: Array<{ planId: string; slurmId: string }> = [];
  for (const raw of stdout.split("\n")) {
    const fields = raw.replace(/\r$/, "").split("|");
    if (fields.length < 3) continue;
    const [jobId = "", name = ""] = fields;
    const workDir = fields.slice(2).join("|").replace(/\/+$/, "");
    const base = /^(\d+)(?:_.*)?$/.exec(jobId)?.[1];
    const planId = JOB_NAME.exec(name)?.[1];
    if (base === undefined || planId === undefined || !workDir.endsWith(`/${runId}`)) continue;
    out.push({ planId, slurmId: base });
  }
  return out;
}

/** The day before an ISO time, as sacct's `-S` takes it (a margin for time zones). */
function dayBefore(iso: string): string {
  const t = Date.parse(iso);
  const day = new Date((Number.isNaN(t) ? Date.now() : t) - 24 * 3600_000);
  return day.toISOString().slice(0, 10);
}

/** `squeue` over the user's jobs (finished ones too, while slurmctld keeps them), one `%F|%k|%j` line each. */
export function taggedSqueueArgv(): string[] {
  return ["squeue", "--me", "-h", "-t", "all", "-o", RECONCILE_SQUEUE_FORMAT];
}

/** `sacct` for jobs named `names` since the day before `createdIso` (accounting only). */
export function taggedSacctArgv(names: readonly string[], createdIso: string): string[] {
  return ["sacct", "-X", "-n", "-P", "-S", dayBefore(createdIso), "--name", names.join(","), "-o", "JobID,JobName,WorkDir"];
}
