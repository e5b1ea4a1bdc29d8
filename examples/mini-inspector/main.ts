#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { configureInspectCommand } from "./command.js";

/**
 * The mini inspector as a standalone program (the same command as
 * `hpcpipe inspect`):
 *   node dist/examples/mini-inspector/main.js MODEL [--out FILE] [--steps a,b,c] [--dry-run] [--force] [--json] [--quiet]
 * Exit status: the pipeline's (0-4), 64 for usage errors, 70 for a bug.
 */
async function main(argv: string[]): Promise<number> {
  const program = configureInspectCommand(new Command("mini-inspector"));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.help" ? 0 : CliExit.USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`mini-inspector: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`mini-inspector: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return CliExit.SOFTWARE;
  }
}

process.exitCode = await main(process.argv);
