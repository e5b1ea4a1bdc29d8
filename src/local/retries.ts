/**
 * Retries in a local run (the plan's retry controller jobs, run by the job
 * table instead of a process): what one attempt of a job left, read from its
 * state files, and the records a cluster's controller writes
 * (`retries/<job>.<attempt>.json`, `retries/<job>.end.json`, copies of the
 * attempt's states and logs under `attempts/<n>/`), so that collect shows
 * the attempts as for a cluster run (templates/retry.sh does this there).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stateFileSchema } from "../plan/state-file.js";

/** What the state files of one job say about its tasks: the first failure of each, and every key it wrote. */
export interface AttemptFiles {
  failure: Map<number, string>;
  keys: Map<number, string[]>;
}

/**
 * Reads `states/*.json` for the files job `slurmJobId` wrote in attempt `attemptOf(task)` of each task
 * (an array's files carry its id as `array_job_id`, a plain job's as `job_id`).
 */
export function attemptFiles(runDir: string, slurmJobId: string, isArray: boolean, itemsPerTask: number, attemptOf: (task: number) => number | undefined): AttemptFiles {
  const out: AttemptFiles = { failure: new Map(), keys: new Map() };
  const dir = join(runDir, "states");
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json") && !n.startsWith("."));
  } catch {
    return out;
  }
  for (const name of names) {
    let parsed;
    try {
      parsed = stateFileSchema.safeParse(JSON.parse(readFileSync(join(dir, name), "utf8")));
    } catch {
      continue;
    }
    if (!parsed.success) continue;
    const s = parsed.data;
    const id = isArray ? s.slurm?.array_job_id : s.slurm?.job_id;
    const item = s.slurm?.task;
    if (id !== slurmJobId || item === undefined) continue;
    const task = Math.floor(item / Math.max(1, itemsPerTask));
    if (s.attempt !== undefined && attemptOf(task) !== undefined && s.attempt !== attemptOf(task)) continue;
    out.keys.set(task, [...(out.keys.get(task) ?? []), s.key]);
    if (s.success || out.failure.has(task)) continue;
    if (s.meta.reason === "TIMEOUT") out.failure.set(task, "TIMEOUT");
    else if (typeof s.exit_code === "number" && s.exit_code !== 0) out.failure.set(task, `exit ${s.exit_code}`);
  }
  return out;
}

/** The verdict is one `retry_on` names ("ALL": any failure but a cancel). */
export function retryable(verdict: string, on: string): boolean {
  const what = verdict.startsWith("exit ") ? verdict.slice(5) : ["TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"].includes(verdict) ? verdict : null;
  return what !== null && (on === "ALL" || on.split(",").includes(what));
}

/** Writes a record atomically (temp file, then rename). */
export function writeRecord(runDir: string, name: string, value: unknown): void {
  const dir = join(runDir, "retries");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${name}.tmp.${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, name));
}

/** Keeps an attempt's states and logs of `keys` under attempts/<n>/ before a retry overwrites them. */
export function keepAttempt(runDir: string, attempt: number, keys: readonly string[]): void {
  const states = join(runDir, "attempts", String(attempt), "states");
  const logs = join(runDir, "attempts", String(attempt), "logs");
  mkdirSync(states, { recursive: true, mode: 0o700 });
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  for (const key of keys) {
    const state = join(runDir, "states", `${key}.json`);
    if (existsSync(state)) copyFileSync(state, join(states, `${key}.json`));
    for (const ext of ["out", "err"]) {
      const log = join(runDir, "logs", `${key}.${ext}`);
      if (existsSync(log)) copyFileSync(log, join(logs, `${key}.${ext}`));
    }
  }
}
