import { Option } from "commander";
import type { Command } from "commander";
import { failedStepTails, formatFailureTails } from "../../src/app/failure-tails.js";
import { submitPipeline } from "../../src/app/lifecycle.js";
import { writeJsonTo } from "../../src/core/json-stream.js";
import { waitAndCollect } from "../../src/app/submit.js";
import { preview } from "../../src/core/preview.js";
import { RUN_ID_PATTERN } from "../../src/runs/record.js";
import { formatResultSummary } from "../../src/app/summary.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { exitCodeFrom } from "../../src/core/exit-code.js";
import { createLogger, logFormatFor } from "../../src/core/logger.js";
import type { LogFormat } from "../../src/core/logger.js";
import { collect, guarded, parseSetOption } from "../errors.js";
import { cpusOption } from "./submit.js";
import { watchPrinter } from "../watch-printer.js";
import type { WatchPrinter } from "../watch-printer.js";

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
  resume?: string;
}

export function registerRunCommand(program: Command): void {
  program
    .command("run")
    .description(
      "Run a pipeline on this machine with the local executor: the same job scripts a cluster would run, with bash, " +
        "array tasks concurrently, dependencies, time limits and state files; then print the merged result. " +
        "The same as `submit PIPELINE --cluster local --wait`, supervised by this process (Ctrl-C cancels the run); " +
        "the run is recorded, so `runs`, `status`, `logs`, `collect` and `report` know it. Exit status: the pipeline's (0-4).",
    )
    .argument("<pipeline>", "the pipeline spec (YAML)")
    .option("--set <key=value>", "set or override a context value (repeatable)", collect, [])
    .option("--json", "print the merged CompletedState as JSON instead of the summary (and the watch's events on stderr, one JSON object per line, unless -q)")
    .option("--cpus <n>", "most CPUs in use at once (default: this machine's)")
    .option("--runs-dir <dir>", "where run directories go (default: .hpcpipe/runs)")
    .option("--no-fuse", "do not fuse consecutive steps with equal resources into one job")
    .option("--templates <dir>", "render with your own templates (sbatch.hbs, submit.hbs, partials/)")
    .option("--resume <run>", "run RUN again: only steps that did not succeed with the same definition run, in the same run directory; then merge again")
    .option("-q, --quiet", "no progress on stderr (neither the live view nor its lines)")
    .option("-v, --verbose", "log executor events on stderr (instead of the progress view)")
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
      if (flags.resume !== undefined && !RUN_ID_PATTERN.test(flags.resume)) throw new CliError(`--resume: invalid run id ${preview(flags.resume)}`, CliExit.USAGE);
      const cpus = flags.cpus !== undefined ? cpusOption(flags.cpus) : undefined;
      // `run` is `submit --cluster local --wait` with the supervisor in this process: Ctrl-C (or SIGTERM) cancels the run.
      // With -v every stderr line comes from the logger, all JSON or all for people: never a mix.
      const format = logFormatFor(process.stderr, flags.logFormat);
      const logger = flags.verbose ? createLogger({ sink: process.stderr, format, name: "hpcpipe" }) : undefined;
      const jsonLog = logger !== undefined && format === "json";
      const say = (message: string): void => {
        if (logger) logger.info({ message }, message.startsWith("warning: ") ? "warning" : "progress");
        else if (!flags.quiet || message.startsWith("warning: ")) process.stderr.write(`hpcpipe: ${message}\n`);
      };
      const abort = new AbortController();
      let printer: WatchPrinter | null = null;
      const onSignal = (): void => abort.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const outcome = await guarded(() =>
          submitPipeline(
            {
              spec,
              cluster: "local",
              set: parseSetOption(flags.set),
              fuse: flags.fuse,
              ...(flags.templates ? { templatesDir: flags.templates } : {}),
              ...(flags.resume !== undefined ? { resume: flags.resume } : {}),
              onProgress: say,
              local: {
                ...(cpus !== undefined ? { cpus } : {}),
                ...(flags.runsDir ? { runsDir: flags.runsDir } : {}),
                attached: { signal: abort.signal, ...(logger ? { logger } : {}) },
              },
            },
            async (run) => {
              // The watch shows on stderr (a live view on a terminal, timestamped lines otherwise, events with
              // --json) unless -q or -v: stdout keeps the result alone.
              printer = flags.quiet || logger ? null : watchPrinter(run, process.stderr, { json: flags.json ?? false, tty: process.stderr.isTTY === true });
              const waited = await waitAndCollect(run, printer?.options ?? {});
              printer?.finish(waited.watch.status, waited.collect === null, waited.watch.remote?.states);
              return waited;
            },
          ),
        ).finally(() => printer?.finish(null, true));
        const collected = outcome.then?.collect;
        if (!collected) {
          // A resume with nothing left to run.
          process.exitCode = 0;
          return;
        }
        const { state } = collected;
        for (const p of collected.problems) process.stderr.write(`hpcpipe: unusable state file ${p.file}: ${p.error}\n`);
        if (flags.json) await writeJsonTo(process.stdout, state);
        else process.stdout.write(formatResultSummary(state, `pipeline ${outcome.plan.pipeline}, run ${outcome.record.run_id}`));
        const runDir = outcome.record.remote_dir;
        const failures = state.success ? { tails: [], more: 0 } : await failedStepTails(runDir, state);
        if (jsonLog) {
          for (const t of failures.tails) logger.error(t, "step failed");
          logger.info({ run_dir: runDir }, "run directory");
        } else {
          process.stderr.write(formatFailureTails(failures));
          process.stderr.write(`hpcpipe: run directory ${runDir} (result.json, states/, logs/)\n`);
        }
        process.exitCode = abort.signal.aborted ? CliExit.INTERRUPTED : exitCodeFrom(state);
      } finally {
        process.removeListener("SIGINT", onSignal);
        process.removeListener("SIGTERM", onSignal);
      }
    });
}
