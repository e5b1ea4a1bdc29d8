import type { Command } from "commander";
import { openRun } from "../../src/app/lifecycle.js";
import { getRunStatus, watchRun } from "../../src/app/status.js";
import { formatStatus } from "../../src/app/watch-view.js";
import { CliExit } from "../../src/cli-exit.js";
import { guarded } from "../errors.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";
import { watchPrinter } from "../watch-printer.js";

interface StatusFlags {
  watch?: boolean;
  json?: boolean;
  acceptNewHostKey?: boolean;
}

/** The option every command that connects has. */
export const ACCEPT_HOST_KEY_FLAGS = "--accept-new-host-key";
export const ACCEPT_HOST_KEY_HELP = "trust and record the cluster's host key when known_hosts does not have it yet (check its fingerprint first)";

/** Turns Ctrl-C into an AbortSignal for the duration of `action` (the default handler would kill the process mid-write). */
export async function onSigint<T>(action: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const handler = (): void => abort.abort();
  process.on("SIGINT", handler);
  try {
    return await action(abort.signal);
  } finally {
    process.removeListener("SIGINT", handler);
  }
}

export function registerStatusCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("status")
    .description(
      "Show where a submitted run stands: every job and array task by its SLURM state and reason (one squeue per poll for " +
        "the whole run; sacct or scontrol for jobs squeue has forgotten). Once every job has ended, the state files on the " +
        "cluster give each step's result. With --watch, follow it until every job has ended (learning from the state files, asking " +
        "the scheduler rarely), showing progress per step, group and map.",
    )
    .argument("<run>", "the run id (see `hpcpipe runs`)")
    .option(
      "-w, --watch",
      "follow the run until every job has ended: on a terminal a live view redrawn in place (per step, group and map: a bar of done/failed/running/pending, throughput, ETA, latest image output); otherwise timestamped lines when something changes",
    )
    .option("--json", "print the status as JSON (with --watch: events, one JSON object per line: start, state, job, progress, message, end; schema in README \"Progress a person can read\")")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe status 20261128-161900-a1b2c3\n" +
        "  $ hpcpipe status 20261128-161900-a1b2c3 --watch\n" +
        "  $ hpcpipe status 20261128-161900-a1b2c3 --json | jq '.jobs[] | {job, state, reason}'\n" +
        "  $ hpcpipe status 20261128-161900-a1b2c3 --watch --json | jq -c 'select(.type == \"progress\") | .rows[] | {label, eta_s}'\n",
    )
    .action(async (runId: string, flags: StatusFlags) => {
      await guarded(() =>
        openRun(runId, connectOptions(flags, cli), async (run) => {
          if (!flags.watch) {
            const { status } = await getRunStatus(run);
            process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
            return;
          }
          const tty = process.stdout.isTTY === true;
          const printer = watchPrinter(run, process.stdout, { json: flags.json ?? false, tty });
          const outcome = await onSigint((signal) => watchRun(run, { signal, ...printer.options })).catch((error: unknown) => {
            printer.finish(null, true);
            throw error;
          });
          printer.finish(outcome.status, outcome.aborted, outcome.remote?.states);
          if (outcome.aborted) {
            process.stderr.write(`hpcpipe: stopped watching; the run goes on (\`hpcpipe status ${runId} --watch\` to resume watching)\n`);
            process.exitCode = CliExit.INTERRUPTED;
            return;
          }
          if (flags.json) return;
          const text = formatStatus(outcome.status);
          // On a terminal the table is already on screen: print what follows it (the steps' results).
          process.stdout.write(tty ? text.split("\n").slice(outcome.status.jobs.length + 2).join("\n") : `\n${text}`);
        }),
      );
    });
}
