import { Option } from "commander";
import type { Command } from "commander";
import { openRun } from "../../src/app/lifecycle.js";
import { followLog, readLog, resolveLogTarget, stepJobState } from "../../src/app/logs.js";
import { stateText } from "../../src/app/watch-view.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { RunStore } from "../../src/runs/index.js";
import { guarded } from "../errors.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP, onSigint } from "./status.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";
import { preview } from "../../src/core/preview.js";

interface LogsFlags {
  task?: number;
  follow?: boolean;
  stderr?: boolean;
  acceptNewHostKey?: boolean;
}

function taskNumber(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new CliError(`--task expects a task index (0, 1, ...), got ${preview(value)}`, CliExit.USAGE);
  return Number(value);
}

export function registerLogsCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("logs")
    .description(
      "Print a step's output on the cluster (logs/<step>.out, or .err with --stderr). STEP is the step's key or a unique " +
        "end of it; steps of a map (or a group named by its key) need --task. With --follow, keep printing new output " +
        "until the step's job has ended (or Ctrl-C).",
    )
    .argument("<run>", "the run id (see `hpcpipe runs`)")
    .argument("<step>", "the step: its key (pipeline.group.step) or a unique end of it (step, group.step)")
    .addOption(new Option("-t, --task <i>", "the item (map) or child (group) index").argParser(taskNumber))
    .option("-f, --follow", "keep printing new output until the step's job has ended")
    .option("--stderr", "the step's stderr instead of its stdout")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe logs 20261128-161900-a1b2c3 prep\n" +
        "  $ hpcpipe logs 20261128-161900-a1b2c3 check_all.check --task 7 --stderr\n" +
        "  $ hpcpipe logs 20261128-161900-a1b2c3 renders.front --follow\n",
    )
    .action(async (runId: string, step: string, flags: LogsFlags) => {
      await guarded(async () => {
        const stream = flags.stderr ? "stderr" : "stdout";
        const store = new RunStore();
        // Resolved before connecting: a wrong step name costs no network.
        await store.readRecord(runId);
        const plan = await store.readPlan(runId);
        const target = resolveLogTarget(plan, step, flags.task, stream);
        await openRun(runId, { store, ...connectOptions(flags, cli) }, async (run) => {
          if (flags.follow) {
            const ended = await onSigint((signal) =>
              followLog(run, target, {
                signal,
                write: (data) => process.stdout.write(data),
                note: (message) => process.stderr.write(`hpcpipe: ${message}\n`),
              }),
            );
            if (ended === null) process.exitCode = CliExit.INTERRUPTED;
            else process.stderr.write(`hpcpipe: ${target.key}: its job ended ${stateText(ended.state, ended.reason)}\n`);
            return;
          }
          const data = await readLog(run, target);
          if (data !== null) {
            process.stdout.write(data);
            return;
          }
          const job = await stepJobState(run, target);
          throw new CliError(
            `run ${runId}: no ${target.path} on the cluster yet (job ${target.slot.job.id} is ${stateText(job.state, job.reason)}); ` +
              `\`hpcpipe logs ${runId} ${step}${flags.task !== undefined ? ` --task ${flags.task}` : ""} --follow\` waits for it`,
            CliExit.NO_INPUT,
          );
        });
      });
    });
}
