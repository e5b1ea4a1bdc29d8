import { CommanderError } from "commander";
import { CliError, CliExit } from "../src/cli-exit.js";
import type { CliOptions } from "./connect-options.js";
import { buildProgram } from "./program.js";

/** Parses argv, runs the command, and maps its result or error to an exit code; never calls process.exit. */
export async function runCli(argv: string[], cli: CliOptions = {}): Promise<number> {
  const program = buildProgram(cli);
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return 0;
      return CliExit.USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`hpcpipe: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`hpcpipe: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return CliExit.SOFTWARE;
  } finally {
    process.exitCode = before;
  }
}
