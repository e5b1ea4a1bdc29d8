import type { Command } from "commander";
import { cancelRun } from "../../src/app/cancel.js";
import { openRun } from "../../src/app/lifecycle.js";
import { guarded } from "../errors.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";

interface CancelFlags {
  acceptNewHostKey?: boolean;
}

export function registerCancelCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("cancel")
    .description("Cancel every job of a run: on a cluster with one scancel (all tasks of its arrays; jobs that already ended are unaffected); on this machine by stopping the run's supervisor, which stops its jobs. The record's phase becomes \"cancelled\".")
    .argument("<run>", "the run id (see `hpcpipe runs`)")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText("after", "\nExamples:\n  $ hpcpipe cancel 20261128-161900-a1b2c3\n  $ hpcpipe collect 20261128-161900-a1b2c3   # then: CANCELLED steps in the result\n")
    .action(async (runId: string, flags: CancelFlags) => {
      await guarded(() =>
        openRun(runId, connectOptions(flags, cli), async (run) => {
          const outcome = await cancelRun(run);
          process.stdout.write(`${outcome.message}\n`);
        }),
      );
    });
}
