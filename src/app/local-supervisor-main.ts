/**
 * Entry point of a detached local supervisor: `node local-supervisor-main.js RUN_ID`,
 * with HPCPIPE_HOME naming the run store. SIGTERM (or SIGINT) cancels the run;
 * SIGHUP is ignored (the terminal that started it may close).
 */
import { createLogger } from "../core/logger.js";
import { RunStore } from "../runs/index.js";
import { superviseRun } from "./local-supervisor.js";

async function main(): Promise<number> {
  const runId = process.argv[2];
  if (runId === undefined) {
    process.stderr.write("usage: local-supervisor-main.js RUN_ID\n");
    return 64;
  }
  const abort = new AbortController();
  process.on("SIGTERM", () => abort.abort());
  process.on("SIGINT", () => abort.abort());
  process.on("SIGHUP", () => undefined);
  const store = new RunStore();
  try {
    const { cancelled } = await superviseRun({ store, runId, signal: abort.signal, logger: createLogger({ name: "supervisor" }) });
    return cancelled ? 130 : 0;
  } catch (err) {
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`hpcpipe supervisor: run ${runId} failed: ${message}\n`);
    await store.updateRecord(runId, { error: `the local supervisor failed: ${err instanceof Error ? err.message : String(err)}`.slice(0, 60_000) }).catch(() => undefined);
    return 1;
  }
}

process.exitCode = await main();
