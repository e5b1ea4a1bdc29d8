/**
 * The supervisor of a local run: the process that does for this machine
 * what slurmctld does for a cluster. It runs the plan's jobs with the local
 * executor (starting dependent jobs as their dependencies end), keeps the
 * job table on disk for `status`, and merges the result at the end. Started
 * detached by `submit --cluster local` (it outlives the CLI; `cancel` stops
 * it with SIGTERM), or inside the CLI by `hpcpipe run`.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeResultFile } from "../core/result-file.js";
import type { CompletedState } from "../core/completed-state.js";
import type { Logger } from "../core/logger.js";
import { runPlanLocally } from "../local/index.js";
import type { LocalRunEvent } from "../local/index.js";
import { applyEvent, encodeJobTable, newJobTable, tableJobIds, writeJobTable } from "../local/job-table.js";
import type { JobTable } from "../local/job-table.js";
import { identityOf } from "../local/process-identity.js";
import type { RunRecord, RunStore } from "../runs/index.js";
import { programPath } from "../version.js";
import { NODE_FLAGS } from "../core/node-flags.js";
import { sleep } from "./sleep.js";

/** The supervisor's own log (its stdout and stderr) in the run directory. */
export const SUPERVISOR_LOG = "supervisor.log";

export interface SuperviseOptions {
  store: RunStore;
  runId: string;
  /** Aborting cancels the run (SIGTERM to a detached supervisor, Ctrl-C on `hpcpipe run`). */
  signal?: AbortSignal;
  logger?: Logger;
  onEvent?: (event: LocalRunEvent) => void;
  /** Seconds between TERM and KILL for a cancelled job; default 5. */
  killWaitS?: number;
}

/** Writes the table at most every 100 ms while jobs change, one write at a time. */
class TableWriter {
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private readonly runDir: string,
    private readonly table: JobTable,
    private readonly logger: Logger | undefined,
  ) {}

  changed(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.write();
    }, 100);
  }

  private write(): void {
    // The file's form now (a few runs per job), so later events do not change what is being written.
    const snapshot = encodeJobTable(this.table);
    this.chain = this.chain
      .then(() => writeJobTable(this.runDir, snapshot))
      .catch((err: unknown) => this.logger?.warn({ err }, "could not write the job table"));
  }

  async flush(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.write();
    await this.chain;
  }
}

/**
 * Runs a submitted local run to its end: records this process as the run's
 * supervisor, runs the jobs, writes the job table as they change, then the
 * merged result (run directory and run store); the record ends "collected",
 * or "cancelled" when `signal` aborted.
 */
export async function superviseRun(options: SuperviseOptions): Promise<{ state: CompletedState; cancelled: boolean }> {
  const { store, runId } = options;
  const record = await store.readRecord(runId);
  const plan = await store.readPlan(runId);
  const runDir = record.remote_dir;
  const table = newJobTable(plan, record.attempt ?? 1);
  await writeJobTable(runDir, table);
  await store.updateRecord(runId, { phase: "submitted", jobs: tableJobIds(table), supervisor: identityOf(process.pid), error: null });
  const writer = new TableWriter(runDir, table, options.logger);
  const result = await runPlanLocally(plan, {
    runDir,
    ...(record.local?.cpus != null ? { cpus: record.local.cpus } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.killWaitS !== undefined ? { killWaitS: options.killWaitS } : {}),
    onEvent: (event) => {
      if (applyEvent(table, event)) writer.changed();
      options.onEvent?.(event);
    },
  });
  const cancelled = options.signal?.aborted === true;
  await writeResultFile(join(runDir, "result.json"), result.state, { mode: 0o600 });
  await store.writeResult(runId, result.state);
  table.finished = true;
  table.cancelled = cancelled;
  await writer.flush();
  // The run has ended: no process supervises it any more (this one may live on, as `hpcpipe run` or an API caller).
  await store.updateRecord(runId, { phase: cancelled ? "cancelled" : "collected", supervisor: null });
  return { state: result.state, cancelled };
}

/** The compiled entry point of a detached supervisor, beside this module. */
function supervisorEntry(): string {
  return programPath(import.meta.url, "app/local-supervisor.js", "app/local-supervisor-main.js");
}

/** Thrown when a detached supervisor cannot be started or dies before it took the run. */
export class SupervisorError extends Error {
  override name = "SupervisorError";
}

/**
 * The supervisor started as `pid` took the run: it is supervising it, or a run of a few milliseconds
 * has already ended and the supervisor with it (it records `supervisor: null` with the run's last phase).
 * Until then the record is the CLI's first one: phase "submitting", no supervisor.
 */
export function tookTheRun(record: Pick<RunRecord, "phase" | "supervisor">, pid: number | undefined): boolean {
  return record.phase !== "submitting" && (record.supervisor == null || record.supervisor.pid === pid);
}

/**
 * Starts the run's supervisor as a detached process (its own session, its
 * output in `<run dir>/supervisor.log`) and waits until it has recorded
 * itself and the run's job ids. The CLI may exit right after: the
 * supervisor goes on.
 */
export async function spawnSupervisor(store: RunStore, runId: string, runDir: string, options: { timeoutMs?: number } = {}): Promise<void> {
  const entry = supervisorEntry();
  if (!existsSync(entry)) {
    throw new SupervisorError(`cannot start a background local run: ${entry} does not exist (run the compiled package: npm run build)`);
  }
  const logPath = join(runDir, SUPERVISOR_LOG);
  const log = openSync(logPath, "a", 0o600);
  let exited: string | null = null;
  let child;
  try {
    child = spawn(process.execPath, [...NODE_FLAGS, entry, runId], {
      detached: true,
      stdio: ["ignore", log, log],
      cwd: runDir,
      env: { ...process.env, HPCPIPE_HOME: store.root },
    });
  } finally {
    closeSync(log);
  }
  const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
    exited = code !== null ? `exit ${code}` : `signal ${signal ?? "?"}`;
  };
  child.once("exit", onExit);
  child.once("error", (err) => {
    exited = err.message;
  });
  child.unref();
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  try {
    for (;;) {
      const record = await store.readRecord(runId);
      if (tookTheRun(record, child.pid)) return;
      if (exited !== null) {
        const tail = readTail(logPath);
        throw new SupervisorError(`the supervisor of run ${runId} ended (${exited}) before it started the run${tail ? `:\n${tail}` : ""} (log: ${logPath})`);
      }
      if (Date.now() > deadline) throw new SupervisorError(`the supervisor of run ${runId} (pid ${child.pid ?? "?"}) did not start the run within ${(options.timeoutMs ?? 30_000) / 1000} s (log: ${logPath})`);
      await sleep(50);
    }
  } finally {
    child.removeListener("exit", onExit);
  }
}

function readTail(path: string): string {
  try {
    const text = readFileSync(path, "utf8").trim();
    return text.slice(Math.max(0, text.length - 2000));
  } catch {
    return "";
  }
}
