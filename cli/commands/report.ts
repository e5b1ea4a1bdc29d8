import type { Command } from "commander";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { guarded } from "../errors.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";

interface ReportFlags {
  out?: string;
  offline?: boolean;
  runsDir?: string;
  acceptNewHostKey?: boolean;
}

export function registerReportCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("report")
    .description(
      "Write a self-contained HTML page about a finished run: the pipeline tree with each step's outcome, a timeline " +
        "(which task ran when, on which host, how long it waited in the queue), the failed steps with the ends of their " +
        "logs, and the images the steps declared as outputs. RUN is a run id (a cluster run; it is collected first if it " +
        "never was) or the run directory `hpcpipe run` printed. The page needs no network and runs no script.",
    )
    .argument("<run>", "a run id (see `hpcpipe runs`) or a local run directory (.hpcpipe/runs/<pipeline>/<run id>)")
    .option("-o, --out <file.html>", "where to write the page (default: report.html in the run's local directory)")
    .option("--offline", "do not contact the cluster: use the collected result only (no log tails, no images, approximate queue waits)")
    .option("--runs-dir <dir>", "where `hpcpipe run` put its run directories, to find a local run by its id (default: .hpcpipe/runs)")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe report .hpcpipe/runs/thumbnails/20261128-161900-a1b2c3          # a run of `hpcpipe run`\n" +
        "  $ hpcpipe report 20261128-161900-a1b2c3                                   # a cluster run: ~/.hpcpipe/runs/<id>/report.html\n" +
        "  $ hpcpipe report 20261128-161900-a1b2c3 --out run.html && xdg-open run.html\n" +
        "  $ hpcpipe report 20261128-161900-a1b2c3 --offline                         # from the collected result alone\n" +
        "\nThe path of the page is printed on stdout. For a cluster run the report costs one sacct (queue waits, hosts)\n" +
        "and one read of the failed steps' logs and the images; without accounting the queue waits are approximate.\n",
    )
    .action(async (run: string, flags: ReportFlags) => {
      if (flags.out !== undefined && flags.out.trim() === "") throw new CliError("--out needs a file name", CliExit.USAGE);
      // Loaded only for `report`: other commands start without the report's model and HTML.
      const { buildReport, writeReport } = await import("../../src/app/report.js");
      const report = await guarded(() =>
        buildReport({
          run,
          offline: flags.offline ?? false,
          ...connectOptions(flags, cli),
          ...(flags.runsDir !== undefined ? { localRunsDir: flags.runsDir } : {}),
        }),
      );
      const path = flags.out ?? report.defaultPath;
      try {
        await writeReport(path, report.html);
      } catch (err) {
        throw new CliError(`cannot write the report to ${path}: ${err instanceof Error ? err.message : String(err)}`, CliExit.CANT_CREATE, { cause: err });
      }
      const m = report.model;
      const images = m.images.filter((i) => i.dataUri !== null).length;
      process.stderr.write(
        `hpcpipe: report of run ${m.runId} (${m.success ? "ok" : (m.failure ?? "failed")}, exit ${m.exitCode}): ` +
          `${m.counts.ok} ok, ${m.counts.failed} failed, ${m.counts.not_run} not run; ${m.errors.length} error(s), ${images} image(s)` +
          `${report.collected ? "; collected first" : ""}\n`,
      );
      process.stdout.write(`${path}\n`);
    });
}
