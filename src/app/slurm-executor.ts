/**
 * The SLURM executor: a run on a cluster, reached over ONE SSH connection
 * (the RunContext). Status is one scheduler query, states and logs come
 * through the transport, cancel is one batched scancel.
 */
import { RunStateError } from "../runs/index.js";
import { pullOutputs } from "../store/index.js";
import { RemoteCommandError, remotePath } from "../transport/index.js";
import { queryJobStatuses, readRemoteStates, requireJobIds } from "./collect.js";
import type { RunContext } from "./connect.js";
import type { LogChunk, RunExecutor } from "./executor.js";

// Prints the bytes of a file from an offset, base64 so they arrive exact; "T" when the file shrank (rewritten) and reading restarted at 0.
const READ_FROM_OFFSET = [
  'f=$1; off=$2; max=$3',
  'if [ ! -f "$f" ]; then echo A; exit 0; fi',
  'size=$(stat -c %s -- "$f") || exit 1',
  'if [ "$size" -lt "$off" ]; then off=0; echo T; else echo K; fi',
  'tail -c "+$((off + 1))" -- "$f" | head -c "$max" | base64 -w 0',
].join("\n");

export function slurmExecutor(run: RunContext): RunExecutor {
  const executor: RunExecutor = {
    kind: "slurm",
    store: run.store,
    record: run.record,
    plan: run.plan,
    // A job no source knows is lost once MinJobAge has passed since the record last changed (at or after submission).
    query: (known) => queryJobStatuses(run.scheduler, run.plan, executor.record.jobs, known, { submitted: executor.record.updated, now: Date.now(), minJobAgeS: run.config.min_job_age_s ?? 300 }),
    readStates: () => readRemoteStates(run.transport, executor.record.remote_dir),
    cancel: async () => {
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
    readFile: async (path, maxBytes) => {
      const dir = executor.record.remote_dir;
      const files = await run.transport.getFiles(dir, path, { maxFileBytes: maxBytes, maxTotalBytes: maxBytes + 1 });
      const content = files.get(path);
      if (content === undefined) return null;
      if (!Buffer.isBuffer(content)) {
        throw new RunStateError(`run ${executor.record.run_id}: cannot show ${path}: ${content.error} (it is on the cluster under ${dir})`, executor.record.run_id);
      }
      return content;
    },
    readFileFrom: async (path, offset, maxBytes): Promise<LogChunk> => {
      const argv = ["bash", "-c", READ_FROM_OFFSET, "hpcpipe-logs", remotePath(`${executor.record.remote_dir}/${path}`), String(offset), String(maxBytes)];
      const result = await run.transport.exec(argv, { retrySafe: true, timeoutMs: 60_000 });
      if (result.code !== 0) throw new RemoteCommandError(`reading ${path} failed (exit ${result.code ?? result.signal})`, argv.map(String), result.code, result.signal, result.stdout, result.stderr);
      const [flag = "", body = ""] = result.stdout.split("\n", 2);
      return { absent: flag === "A", restarted: flag === "T", data: Buffer.from(body.trim(), "base64") };
    },
    pull: (paths, options) => pullOutputs(run.transport, executor.record.remote_dir, paths, options),
  };
  return executor;
}

/** The executor of a RunContext, or the executor itself: the lifecycle functions take either. */
export function executorOf(run: RunContext | RunExecutor): RunExecutor {
  return "query" in run ? run : slurmExecutor(run);
}
