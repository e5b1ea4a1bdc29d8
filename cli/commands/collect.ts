import type { Command } from "commander";
import { collectRun } from "../../src/app/collect.js";
import { openRun } from "../../src/app/lifecycle.js";
import { writeJsonTo } from "../../src/core/json-stream.js";
import { formatResultSummary } from "../../src/app/summary.js";
import { exitCodeFrom } from "../../src/core/exit-code.js";
import { guarded } from "../errors.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";

interface CollectFlags {
  json?: boolean;
  acceptNewHostKey?: boolean;
}

export function registerCollectCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("collect")
    .description(
      "Bring a run's results home: every state file in one transfer, each validated; jobs that ended without writing " +
        "their states (TIMEOUT, CANCELLED, DependencyNeverSatisfied, NODE_FAIL...) become failed steps with the SLURM " +
        "state and reason; all merged into one result with the same step keys as `hpcpipe run`, written to the run's " +
        "local result.json. Exit status: the pipeline's (0-4).",
    )
    .argument("<run>", "the run id (see `hpcpipe runs`)")
    .option("--json", "print the merged result as JSON instead of the summary")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe collect 20261128-161900-a1b2c3\n" +
        "  $ hpcpipe collect 20261128-161900-a1b2c3 --json > result.json\n",
    )
    .action(async (runId: string, flags: CollectFlags) => {
      await guarded(() =>
        openRun(runId, connectOptions(flags, cli), async (run) => {
          const outcome = await collectRun(run);
          for (const p of outcome.problems) process.stderr.write(`hpcpipe: unusable state file ${p.file}: ${p.error}\n`);
          if (!outcome.final) {
            const running = outcome.jobs.filter((j) => !j.final).map((j) => `${j.job} (${j.state})`);
            process.stderr.write(`hpcpipe: ${running.length} job(s) have not ended yet: ${running.join(", ")}; this result is partial\n`);
          }
          const { state } = outcome;
          if (flags.json) await writeJsonTo(process.stdout, state);
          else process.stdout.write(formatResultSummary(state, `pipeline ${run.plan.pipeline}, run ${runId}`));
          process.stderr.write(`hpcpipe: ${outcome.stateFiles} state file(s); result written to ${outcome.resultPath}\n`);
          process.exitCode = exitCodeFrom(state);
        }),
      );
    });
}
