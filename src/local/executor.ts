/**
 * The embedded executor: runs a compiled plan's job scripts with bash on this
 * machine with SLURM's semantics (array tasks concurrently under a throttle
 * and a CPU cap, afterok/afterany dependencies with --kill-on-invalid-dep,
 * time limits with the warning signal), then merges the state files the jobs
 * wrote into one CompletedState.
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { mergeFromSource } from "../collect/merge.js";
import { DirSource } from "../collect/state-source.js";
import { itemsInlineMax } from "../core/item-lines.js";
import type { JobFact, TaskFact } from "../collect/merge.js";
import { STATE_TEMP_FILE } from "../collect/read-states.js";
import { silentLogger } from "../core/logger.js";
import type { Logger } from "../core/logger.js";
import type { CompiledPlan } from "../plan/plan.js";
import { LocalRunError, materialiseBundle } from "./bundle.js";
import { LocalRun } from "./local-run.js";
import type { LocalJobResult, LocalRunOptions, LocalRunResult } from "./types.js";

export type { LocalJobResult, LocalJobState, LocalRunEvent, LocalRunOptions, LocalRunResult, LocalTaskResult } from "./types.js";

/** Refuses plans the executor cannot run faithfully, before anything is written. */
export function checkPlanJobs(plan: CompiledPlan): void {
  const seen = new Set<string>();
  for (const job of plan.jobs) {
    if (seen.has(job.id)) throw new LocalRunError(`job id ${job.id} appears twice in the plan`);
    for (const dep of job.dependencies) {
      if (!seen.has(dep.job)) {
        const known = plan.jobs.some((j) => j.id === dep.job);
        throw new LocalRunError(
          known
            ? `job ${job.id} depends on ${dep.job}, which comes later in the plan (jobs must be in dependency order)`
            : `job ${job.id} depends on unknown job ${dep.job}`,
        );
      }
    }
    const a = job.array;
    if (a !== null) {
      if (!Number.isInteger(a.count) || a.count < 0) throw new LocalRunError(`job ${job.id}: array count ${a.count} is not a whole number >= 0`);
      if (a.throttle !== null && (!Number.isInteger(a.throttle) || a.throttle < 1)) throw new LocalRunError(`job ${job.id}: array throttle must be >= 1`);
      const indices = a.indices ?? [];
      if (indices.some((i) => !Number.isInteger(i) || i < 0) || new Set(indices).size !== indices.length) {
        throw new LocalRunError(`job ${job.id}: array indices must be distinct whole numbers >= 0`);
      }
    }
    seen.add(job.id);
  }
}

/** The executor's job table as the merger's job facts. */
export function jobFactsOf(jobs: ReadonlyMap<string, LocalJobResult>): Map<string, JobFact> {
  const facts = new Map<string, JobFact>();
  for (const [id, j] of jobs) {
    const tasks = new Map<number, TaskFact>(j.tasks.map((t) => [t.task, { state: t.state, reason: t.reason, slurmJobId: t.slurmJobId ?? j.slurmJobId }]));
    facts.set(id, { state: j.state, reason: j.reason, slurmJobId: j.slurmJobId, tasks });
  }
  return facts;
}

/**
 * Removes temp files of interrupted atomic writes (`.<key>.json.tmp.<pid>`, a packed task's
 * `.<pack>.items-<first>-<last>.jsonl.tmp.<pid>`); only called once every job process is gone.
 * A killed packed task's slot directory (`.pack-<pack>.items-<first>-<last>/`) is kept: its complete
 * lines are the items it finished, which the task folds into its pack file when a resume runs it again.
 */
async function removeStaleTemps(statesDir: string, logger: Logger): Promise<void> {
  const entries = await readdir(statesDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const name = entry.name;
    if (entry.isDirectory()) {
      if (name.startsWith(".pack-")) logger.info({ dir: `states/${name}` }, "kept the slot lines of a killed packed task: a resume of its task takes its finished items from them");
      continue;
    }
    if (!STATE_TEMP_FILE.test(name)) continue;
    await rm(join(statesDir, name), { force: true });
    logger.info({ file: `states/${name}` }, "removed a half-written state file left by a killed job");
  }
}

/**
 * Runs a compiled plan on this machine and returns the merged result, the
 * job table (SLURM-like states) and the run directory.
 */
export async function runPlanLocally(plan: CompiledPlan, opts: LocalRunOptions): Promise<LocalRunResult> {
  if (opts.cpus !== undefined && (!Number.isInteger(opts.cpus) || opts.cpus < 1)) {
    throw new LocalRunError(`cpus must be a whole number >= 1, got ${opts.cpus}`);
  }
  if (opts.killWaitS !== undefined && !(Number.isFinite(opts.killWaitS) && opts.killWaitS >= 0)) {
    throw new LocalRunError(`killWaitS must be a number of seconds >= 0, got ${opts.killWaitS}`);
  }
  checkPlanJobs(plan);
  const runDir = await materialiseBundle(plan, opts.runDir);
  const logger = opts.logger ?? silentLogger;
  const jobs = await new LocalRun(plan, runDir, opts).execute();
  const statesDir = join(runDir, plan.layout.states);
  await removeStaleTemps(statesDir, logger);
  // One state file at a time, large maps' items straight to the lines file in the run directory.
  const source = new DirSource(statesDir);
  const state = mergeFromSource(plan, source, { jobFacts: jobFactsOf(jobs), items: { dir: runDir, max: itemsInlineMax() } });
  const problems = source.problems;
  for (const p of problems) logger.warn({ file: `states/${p.file}`, error: p.error }, "unusable state file");
  return { state, jobs, runDir, problems };
}
