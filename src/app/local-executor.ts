/**
 * The local executor: a run on this machine, supervised by a (usually
 * detached) supervisor process. Status reads the job table the supervisor
 * keeps, states and logs are files of the run directory, cancel is SIGTERM
 * to the supervisor (which stops the jobs as scancel would).
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { DirSource, readStateDir } from "../collect/index.js";
import { streamedStates } from "./collect.js";
import type { CompiledPlan } from "../plan/plan.js";
import { bundlePath } from "../local/index.js";
import { pullLocalOutputs } from "../store/index.js";
import { newJobTable, orphanedTable, readJobTable, tableJobIds, tableToStatusMap } from "../local/job-table.js";
import type { JobTable } from "../local/job-table.js";
import { isAlive } from "../local/process-identity.js";
import { mapJobStatuses, RunStateError } from "../runs/index.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import { pollPolicy } from "../slurm/index.js";
import type { LogChunk, RunExecutor } from "./executor.js";
import { sleep } from "./sleep.js";
import { startLocalWatcher } from "../watch/local-watcher.js";
import { parseRetryRecords, RETRY_RECORD_MAX_BYTES } from "../plan/retry.js";
import type { RetryRecords } from "../plan/retry.js";
import { hasRetries } from "../runs/retries.js";

/** The retry records of a local run (`retries/*.json`), validated like a cluster's. */
async function readLocalRetryRecords(runDir: string): Promise<RetryRecords> {
  const texts = new Map<string, string>();
  const names = await readdir(join(runDir, "retries")).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(".json") && !n.startsWith("."))) {
    const data = await readWhole(join(runDir, "retries", name), RETRY_RECORD_MAX_BYTES, "").catch(() => null);
    if (data !== null) texts.set(name, data.toString("utf8"));
  }
  return parseRetryRecords(texts);
}

/** A local run is cheap to ask: a watch reads its table often. */
const LOCAL_POLL = pollPolicy({ initialMs: 200, maxMs: 1_000 });

/** The supervisor is running (the recorded pid is still the process that was recorded). */
export function supervisorAlive(record: RunRecord): boolean {
  return record.supervisor != null && isAlive(record.supervisor);
}

/** The job table as it stands; a supervisor gone before the end leaves every unfinished task FAILED with that reason. */
async function currentTable(record: RunRecord, plan: CompiledPlan): Promise<JobTable> {
  const table = (await readJobTable(record.remote_dir)) ?? newJobTable(plan, record.attempt ?? 1);
  if (table.finished || supervisorAlive(record)) return table;
  const who = record.supervisor ? `pid ${record.supervisor.pid}` : "never started";
  return orphanedTable(table, `SupervisorLost: the run's supervisor (${who}) ended before the run did`);
}

async function readWhole(path: string, maxBytes: number, runId: string): Promise<Buffer | null> {
  const info = await stat(path).catch(() => null);
  if (info === null) return null;
  if (!info.isFile()) throw new RunStateError(`run ${runId}: ${path} is not a regular file`, runId);
  if (info.size > maxBytes) throw new RunStateError(`run ${runId}: ${path} is ${info.size} bytes, over the ${maxBytes}-byte limit; read it with a pager`, runId);
  const fh = await open(path, "r");
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

async function readFrom(path: string, offset: number, maxBytes: number): Promise<LogChunk> {
  const info = await stat(path).catch(() => null);
  if (info === null || !info.isFile()) return { absent: true, restarted: false, data: Buffer.alloc(0) };
  const restarted = info.size < offset;
  const from = restarted ? 0 : offset;
  const length = Math.max(0, Math.min(maxBytes, info.size - from));
  const fh = await open(path, "r");
  try {
    const data = Buffer.alloc(length);
    const { bytesRead } = await fh.read(data, 0, length, from);
    return { absent: false, restarted, data: data.subarray(0, bytesRead) };
  } finally {
    await fh.close();
  }
}

export function localExecutor(store: RunStore, record: RunRecord, plan: CompiledPlan): RunExecutor {
  const runDir = record.remote_dir;
  const executor: RunExecutor = {
    kind: "local",
    store,
    record,
    plan,
    pollPolicy: LOCAL_POLL,
    query: async () => {
      const table = await currentTable(executor.record, plan);
      return mapJobStatuses(plan, tableJobIds(table), tableToStatusMap(table, plan));
    },
    readStates: async () => {
      const { states, problems } = await readStateDir(join(runDir, plan.layout.states));
      // The job table ran the plan's retry controllers (src/local/retries.ts): their records show the attempts.
      const retries = hasRetries(plan) ? await readLocalRetryRecords(runDir) : undefined;
      return { states, problems, files: states.size + problems.length, ...(retries !== undefined ? { retries } : {}) };
    },
    streamStates: async () => {
      const source = new DirSource(join(runDir, plan.layout.states));
      return streamedStates(source, hasRetries(plan) ? await readLocalRetryRecords(runDir) : undefined);
    },
    cancel: async () => {
      const runId = executor.record.run_id;
      const sup = executor.record.supervisor;
      const open = (await executor.query(null)).filter((j) => !j.final).map((j) => j.slurmJobId ?? j.job);
      if (sup == null || !isAlive(sup)) {
        executor.record = await store.readRecord(runId);
        return { cancelled: [], record: executor.record, message: `run ${runId} has already ended (${executor.record.phase}); nothing to cancel` };
      }
      process.kill(sup.pid, "SIGTERM");
      // The supervisor stops the jobs (TERM, then KILL after the kill wait) and merges what they left.
      const deadline = Date.now() + 60_000;
      while (isAlive(sup) && Date.now() < deadline) await sleep(100);
      if (isAlive(sup)) throw new RunStateError(`run ${runId}: its supervisor (pid ${sup.pid}) did not stop within 60 s of SIGTERM`, runId);
      executor.record = await store.readRecord(runId);
      if (executor.record.phase !== "cancelled") executor.record = await store.updateRecord(runId, { phase: "cancelled" });
      return { cancelled: open, record: executor.record, message: `cancelled run ${runId}: stopped its supervisor (pid ${sup.pid}) and ${open.length} job(s) (${open.join(", ") || "none left"})` };
    },
    readFile: (path, maxBytes) => readWhole(bundlePath(runDir, path), maxBytes, executor.record.run_id),
    readFileFrom: (path, offset, maxBytes) => readFrom(bundlePath(runDir, path), offset, maxBytes),
    pull: (paths, options) => pullLocalOutputs(runDir, paths, options),
    watchStates: (handlers, options) => startLocalWatcher(join(runDir, plan.layout.states), handlers, options),
    eventEnds: false,
  };
  return executor;
}
