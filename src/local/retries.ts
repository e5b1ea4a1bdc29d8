/**
 * Retries in a local run (the plan's retry controller jobs, run by the job
 * table instead of a process): what one attempt of a job left, read from its
 * state files (per-key files and pack files), and the records a cluster's controller writes
 * (`retries/<job>.<attempt>.json`, `retries/<job>.end.json`, copies of the
 * attempt's states and logs under `attempts/<n>/`), so that collect shows
 * the attempts as for a cluster run (templates/retry.sh does this there).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stateFileSchema } from "../plan/state-file.js";
import type { StateFile } from "../plan/state-file.js";
import { PackIndex } from "../collect/pack-file.js";
import { readPackFile } from "../collect/read-states.js";
import { slotLogOf } from "../core/log-section.js";

/** What the state files of one job say about its tasks: the first failure of each, and every key it wrote. */
export interface AttemptFiles {
  failure: Map<number, string>;
  keys: Map<number, string[]>;
}

/** The states of a states directory by key, both layouts (a pack line wins over `<key>.json`); unusable files are skipped. */
function statesByKey(dir: string): Map<string, StateFile> | null {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith("."));
  } catch {
    return null;
  }
  const out = new Map<string, StateFile>();
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    let parsed;
    try {
      parsed = stateFileSchema.safeParse(JSON.parse(readFileSync(join(dir, name), "utf8")));
    } catch {
      continue;
    }
    if (parsed.success && !out.has(parsed.data.key)) out.set(parsed.data.key, parsed.data);
  }
  for (const name of names.filter((n) => n.endsWith(".jsonl"))) {
    for (const [key, line] of readPackFile(dir, name).byKey) if (line.ok) out.set(key, line.state);
  }
  return out;
}

/**
 * Reads `states/*.json` and the pack files for the states job `slurmJobId` wrote in attempt `attemptOf(task)` of each task
 * (an array's states carry its id as `array_job_id`, a plain job's as `job_id`).
 */
export function attemptFiles(runDir: string, slurmJobId: string, isArray: boolean, itemsPerTask: number, attemptOf: (task: number) => number | undefined): AttemptFiles {
  const out: AttemptFiles = { failure: new Map(), keys: new Map() };
  const states = statesByKey(join(runDir, "states"));
  if (states === null) return out;
  for (const s of states.values()) {
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

/**
 * Keeps an attempt's states and logs of `keys` under attempts/<n>/ before a retry overwrites them: per-key
 * files as they are, and for packed items their task's pack file and the slot logs its lines name.
 */
export function keepAttempt(runDir: string, attempt: number, keys: readonly string[]): void {
  const states = join(runDir, "attempts", String(attempt), "states");
  const logs = join(runDir, "attempts", String(attempt), "logs");
  mkdirSync(states, { recursive: true, mode: 0o700 });
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  const index = new PackIndex();
  try {
    for (const name of readdirSync(join(runDir, "states"))) if (name.endsWith(".jsonl") && !name.startsWith(".")) index.add(name);
  } catch {
    // No states directory: nothing to keep.
  }
  const packs = new Set<string>();
  const copy = (from: string, to: string): void => {
    if (existsSync(from)) copyFileSync(from, to);
  };
  for (const key of keys) {
    const packed = index.filesOf(key);
    for (const p of packed) packs.add(p);
    if (packed.length > 0) continue;
    copy(join(runDir, "states", `${key}.json`), join(states, `${key}.json`));
    for (const ext of ["out", "err"]) copy(join(runDir, "logs", `${key}.${ext}`), join(logs, `${key}.${ext}`));
  }
  for (const pack of packs) {
    copy(join(runDir, "states", pack), join(states, pack));
    const slots = new Set<string>();
    for (const line of readPackFile(join(runDir, "states"), pack).byKey.values()) {
      const log = line.ok ? slotLogOf(line.state.meta) : null;
      if (log !== null) slots.add(log.slice("logs/".length));
    }
    for (const slot of slots) for (const ext of ["out", "err"]) copy(join(runDir, "logs", `${slot}.${ext}`), join(logs, `${slot}.${ext}`));
  }
}
