import { Option } from "commander";
import type { Command } from "commander";
import { preparePlan } from "../../src/app/prepare.js";
import { failedStepTails, formatFailureTails } from "../../src/app/failure-tails.js";
import { runLocal } from "../../src/app/run-local.js";
import { formatResultSummary } from "../../src/app/summary.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { exitCodeFrom } from "../../src/core/exit-code.js";
import { createLogger, logFormatFor } from "../../src/core/logger.js";
import type { LogFormat } from "../../src/core/logger.js";
import type { LocalRunEvent } from "../../src/local/index.js";
import { collect, guarded, parseSetOption } from "../errors.js";

interface RunFlags {
  set: string[];
  json?: boolean;
  cpus?: string;
  runsDir?: string;
  fuse: boolean;
  templates?: string;
  quiet?: boolean;
  verbose?: boolean;
  logFormat: LogFormat | "auto";
}

function progressLine(e: LocalRunEvent): string | null {
  if (e.type === "job-started") return `started  ${e.job} (job ${e.slurmJobId})`;
  if (e.type === "job-finished") return `finished ${e.job}: ${e.state}${e.reason ? ` (${e.reason})` : ""}`;
  return null;
}

export function registerRunCommand(program: Command): void {
  program
    .command("run")
    .description(
      "Run a pipeline on this machine with the local executor: the same job scripts a cluster would run, with bash, " +
        "array tasks concurrently, dependencies, time limits and state files; then print the merged result. " +
        "Exit status: the pipeline's (0-4).",
    )
    .argument("<pipeline>", "the pipeline spec (YAML)")
    .option("--set <key=value>", "set or override a context value (repeatable)", collect, [])
    .option("--json", "print the merged CompletedState as JSON instead of the summary")
    .option("--cpus <n>", "most CPUs in use at once (default: this machine's)")
    .option("--runs-dir <dir>", "where run directories go (default: .hpcpipe/runs)")
    .option("--no-fuse", "do not fuse consecutive steps with equal resources into one job")
    .option("--templates <dir>", "render with your own templates (sbatch.hbs, submit.hbs, partials/)")
    .option("-q, --quiet", "no progress lines on stderr")
    .option("-v, --verbose", "log executor events on stderr (instead of the progress lines)")
    .addOption(
      new Option("--log-format <format>", "with -v: compact lines for people, or JSON lines (auto: pretty on a terminal, JSON otherwise)")
        .choices(["auto", "pretty", "json"])
        .default("auto"),
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe run examples/specs/thumbnail-shape.yaml\n" +
        "  $ hpcpipe run examples/specs/batch-map.yaml --set min_bytes=8 --json > result.json\n" +
        "\nThe run directory (scripts, states/, logs/, result.json) is printed at the end; step logs are in its logs/.\n",
    )
    .action(async (spec: string, flags: RunFlags) => {
      let cpus: number | undefined;
      if (flags.cpus !== undefined) {
        cpus = Number(flags.cpus);
        if (!Number.isInteger(cpus) || cpus < 1) throw new CliError(`--cpus must be a whole number >= 1, got ${flags.cpus}`, CliExit.USAGE);
      }
      const prepared = await guarded(() =>
        preparePlan({
          spec,
          cluster: "local",
          set: parseSetOption(flags.set),
          fuse: flags.fuse,
          ...(flags.templates ? { templatesDir: flags.templates } : {}),
          ...(flags.runsDir ? { localRunsDir: flags.runsDir } : {}),
        }),
      );
      // With -v every stderr line comes from the logger, all JSON or all for people: never a mix.
      const format = logFormatFor(process.stderr, flags.logFormat);
      const logger = flags.verbose ? createLogger({ sink: process.stderr, format, name: "hpcpipe" }) : undefined;
      const jsonLog = logger !== undefined && format === "json";
      for (const warning of prepared.warnings) {
        if (logger) logger.warn({ warning }, "warning");
        else process.stderr.write(`hpcpipe: warning: ${warning}\n`);
      }
      const abort = new AbortController();
      const onSigint = (): void => abort.abort();
      process.once("SIGINT", onSigint);
      try {
        const outcome = await runLocal(prepared, {
          ...(cpus !== undefined ? { cpus } : {}),
          signal: abort.signal,
          ...(logger ? { logger } : {}),
          onEvent: (e) => {
            const line = flags.quiet || logger ? null : progressLine(e);
            if (line) process.stderr.write(`hpcpipe: ${line}\n`);
          },
        });
        if (flags.json) process.stdout.write(`${JSON.stringify(outcome.state, null, 2)}\n`);
        else process.stdout.write(formatResultSummary(outcome.state, `pipeline ${prepared.plan.pipeline}, run ${prepared.plan.runId}`));
        const failures = outcome.state.success ? { tails: [], more: 0 } : await failedStepTails(outcome.runDir, outcome.state);
        if (jsonLog) {
          for (const t of failures.tails) logger.error(t, "step failed");
          logger.info({ run_dir: outcome.runDir }, "run directory");
        } else {
          process.stderr.write(formatFailureTails(failures));
          process.stderr.write(`hpcpipe: run directory ${outcome.runDir} (result.json, states/, logs/)\n`);
        }
        process.exitCode = abort.signal.aborted ? CliExit.INTERRUPTED : exitCodeFrom(outcome.state);
      } finally {
        process.removeListener("SIGINT", onSigint);
      }
    });
}
