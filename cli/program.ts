import { Command } from "commander";
import { registerInspectCommand } from "../examples/mini-inspector/command.js";
import { packageVersion } from "../src/version.js";
import { registerCancelCommand } from "./commands/cancel.js";
import { registerCollectCommand } from "./commands/collect.js";
import { registerPullCommand } from "./commands/pull.js";
import { registerCacheCommand } from "./commands/cache.js";
import { registerConnectCommands } from "./commands/connect.js";
import { registerLogsCommand } from "./commands/logs.js";
import { registerPlanCommand } from "./commands/plan.js";
import { registerReportCommand } from "./commands/report.js";
import { registerRunCommand } from "./commands/run.js";
import { registerRunsCommand } from "./commands/runs.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerSubmitCommand } from "./commands/submit.js";
import type { CliOptions } from "./connect-options.js";

/** Builds the command tree; each command parses its arguments and calls the library (`cli`: what main.ts gives them). */
export function buildProgram(cli: CliOptions = {}): Command {
  const program = new Command();
  program
    .name("hpcpipe")
    .description(
      "Compose pipelines of steps and run them on this machine or on a SLURM cluster over SSH.\n\n" +
        "Exit status: 0-4 are the pipeline's result (0 ok, 1 missing requirement, 2 step exception, " +
        "3 invalid return, 4 step failed); 64 and above are hpcpipe's own errors (see README).",
    )
    .version(packageVersion(), "-V, --version", "print the hpcpipe version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ outputError: (str, write) => write(str) })
    // Before any subcommand is added: commander copies this setting to subcommands when they are created.
    .exitOverride();
  registerRunCommand(program);
  registerPlanCommand(program);
  registerSubmitCommand(program, cli);
  registerStatusCommand(program, cli);
  registerCollectCommand(program, cli);
  registerPullCommand(program, cli);
  registerCacheCommand(program, cli);
  registerCancelCommand(program, cli);
  registerLogsCommand(program, cli);
  registerRunsCommand(program);
  registerReportCommand(program, cli);
  registerInspectCommand(program);
  registerConnectCommands(program);
  return program;
}
