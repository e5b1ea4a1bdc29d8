/**
 * The SLURM executor: a run on a cluster, reached over ONE SSH connection
 * (the RunContext). Status is one scheduler query, states and logs come
 * through the transport, cancel is one batched scancel.
 */
import { RunStateError } from "../runs/index.js";
import { pullOutputs } from "../store/index.js";
import { readRemoteFiles } from "../transport/index.js";
import type { RemoteReadAnswer } from "../transport/index.js";
import { startRemoteWatcher } from "../watch/remote-watcher.js";
import { hasRetries, holdOpenControllers, withRetryJobs } from "../runs/retries.js";
import type { RetryRecords } from "../plan/retry.js";
import { queryJobStatuses, readRemoteStates, readRetryRecords, requireJobIds, spoolRemoteStates } from "./collect.js";
import type { RunContext } from "./connect.js";
import type { LogChunk, RunExecutor } from "./executor.js";

export function slurmExecutor(run: RunContext): RunExecutor {
  // Retries: the jobs the run's retry controllers submitted on the cluster, learned from their records.
  let records: RetryRecords | null = null;
  const refresh = async (): Promise<void> => {
    if (!hasRetries(run.plan)) return;
    const own = Object.fromEntries(Object.entries(executor.record.jobs).filter(([id]) => !id.includes(".")));
    records = { ...(await readRetryRecords(run.transport, executor.record.remote_dir)), firstJobIds: own };
    const augmented = withRetryJobs(run.plan, own, records);
    executor.plan = augmented.plan;
    executor.record = { ...executor.record, jobs: augmented.jobs };
  };
  const executor: RunExecutor = {
    kind: "slurm",
    store: run.store,
    record: run.record,
    plan: run.plan,
    // A job no source knows is lost once MinJobAge has passed since the record last changed (at or after submission).
    query: async (known) => {
      await refresh();
      const statuses = await queryJobStatuses(run.scheduler, executor.plan, executor.record.jobs, known, { submitted: executor.record.updated, now: Date.now(), minJobAgeS: run.config.min_job_age_s ?? 300 });
      return records === null ? statuses : holdOpenControllers(executor.plan, statuses, records);
    },
    readStates: async () => {
      if (run.sentStates !== undefined && Object.keys(executor.record.jobs).length === 0) return run.sentStates;
      await refresh();
      const remote = await readRemoteStates(run.transport, executor.record.remote_dir);
      return records === null ? remote : { ...remote, retries: records };
    },
    // For a merge: spooled to the run's store directory as the transfer streams in, read back file by file.
    streamStates: async () => {
      if (run.sentStates !== undefined && Object.keys(executor.record.jobs).length === 0) return run.sentStates;
      await refresh();
      const remote = await spoolRemoteStates(run.transport, executor.record.remote_dir, await run.store.resultDir(executor.record.run_id));
      if (records !== null) remote.retries = records;
      return remote;
    },
    cancel: async () => {
      // Retries and controllers submitted on the cluster are cancelled with the rest.
      await refresh();
      const record = executor.record;
      requireJobIds(record);
      const ids = [...new Set(Object.values(record.jobs))];
      if (ids.length === 0) {
        throw new RunStateError(`run ${record.run_id} has no submitted jobs to cancel (phase ${record.phase}${record.error ? `: ${record.error}` : ""})`, record.run_id);
      }
      await run.scheduler.cancel(ids);
      executor.record = await run.store.updateRecord(record.run_id, { phase: "cancelled" });
      run.record = executor.record;
      return { cancelled: ids, record: executor.record, message: `cancelled run ${record.run_id}: scancel of ${ids.length} job(s) (SLURM ${ids.join(", ")})` };
    },
    // Files of the run directory come through the transport's one remote read (src/transport/read-files.ts).
    readFile: async (path, maxBytes) => {
      const dir = executor.record.remote_dir;
      const answer = (await readRemoteFiles(run.transport, dir, [{ path, kind: "file" }], { tailBytes: 0, fileMaxBytes: maxBytes, totalMaxBytes: maxBytes }, { fail: failure(executor.record.run_id, dir), timeoutMs: 10 * 60_000 })).get(path);
      if (answer === undefined || answer.status === "absent") return null;
      if (answer.data === null) throw new RunStateError(`run ${executor.record.run_id}: cannot show ${path}: ${answerText(answer)} (it is on the cluster under ${dir})`, executor.record.run_id);
      return answer.data;
    },
    readFileFrom: async (path, offset, maxBytes): Promise<LogChunk> => {
      const dir = executor.record.remote_dir;
      const answer = (await readRemoteFiles(run.transport, dir, [{ path, kind: "from", offset }], { tailBytes: maxBytes, fileMaxBytes: 0, totalMaxBytes: 0 }, { fail: failure(executor.record.run_id, dir), timeoutMs: 60_000 })).get(path);
      if (answer === undefined || answer.status === "absent") return { absent: true, restarted: false, data: Buffer.alloc(0) };
      if (answer.data === null) throw new RunStateError(`run ${executor.record.run_id}: cannot follow ${path}: ${answerText(answer)} (it is on the cluster under ${dir})`, executor.record.run_id);
      return { absent: false, restarted: answer.restarted, data: answer.data };
    },
    watchStates: (handlers, options) => startRemoteWatcher(run.transport, executor.record.remote_dir, handlers, options),
    pull: (paths, options) => pullOutputs(run.transport, executor.record.remote_dir, paths, options),
  };
  return executor;
}

/** The executor of a RunContext, or the executor itself: the lifecycle functions take either. */
export function executorOf(run: RunContext | RunExecutor): RunExecutor {
  return "query" in run ? run : slurmExecutor(run);
}

function failure(runId: string, dir: string): (why: string, exit: boolean) => never {
  return (why, exit) => {
    throw new RunStateError(exit ? `run ${runId}: cannot read its run directory ${dir} on the cluster (${why}` : `run ${runId}: reading ${dir} on the cluster: unexpected output (${why})`, runId);
  };
}

function answerText(answer: RemoteReadAnswer): string {
  const size = answer.size === null ? "" : ` (${answer.size} bytes)`;
  const why: Record<string, string> = { toolarge: "too large to print", symlink: "a symlink", notfile: "not a regular file", outside: "outside the run directory", unreadable: "unreadable", overtotal: "too large to print" };
  return `${why[answer.status] ?? answer.status}${size}`;
}
