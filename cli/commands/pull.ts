import { resolve } from "node:path";
import type { Command } from "commander";
import { openRun } from "../../src/app/lifecycle.js";
import { pullRun } from "../../src/app/pull.js";
import type { PullRunOutcome } from "../../src/app/pull.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { formatBytes, PULL_MAX_FILE_BYTES, PULL_MAX_TOTAL_BYTES } from "../../src/store/index.js";
import { guarded } from "../errors.js";
import { transferBar } from "../transfer-bar.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";
import { preview } from "../../src/core/preview.js";

interface PullFlags {
  to?: string;
  maxFile?: string;
  maxTotal?: string;
  json?: boolean;
  acceptNewHostKey?: boolean;
}

/** "512M", "4G", "100" (bytes) as bytes. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new CliError(`${flag}: expected a size such as 500M or 4G, got ${preview(text, 40)}`, CliExit.USAGE);
  const unit = (m[2] ?? "").toUpperCase();
  const factor = unit === "" ? 1 : 1024 ** ("KMGT".indexOf(unit) + 1);
  return Math.floor(Number(m[1]) * factor);
}

/** The lines `pull` prints, on stderr: what came, what was skipped or refused. */
export function pullSummary(outcome: PullRunOutcome): string {
  const lines = [
    `pulled ${outcome.fetched.length} file(s), ${formatBytes(outcome.bytes)}, into ${outcome.to}; ${outcome.skipped.length} already there with the same hash; ${outcome.refused.length + outcome.outside.length} refused`,
  ];
  for (const r of outcome.refused) lines.push(`  refused ${r.path}: ${r.reason}`);
  for (const o of outcome.outside) lines.push(`  refused ${o}: outside the run's work/ directory`);
  return `${lines.map((l) => `hpcpipe: ${l}`).join("\n")}\n`;
}

export function registerPullCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("pull")
    .description(
      "Bring a run's declared outputs home: the files its steps list under `outputs:` (all, or those matching the " +
        "patterns), in ONE transfer streamed to disk, each checked against the hash the cluster computed and renamed " +
        "into place. Files already here with the same SHA-256 are skipped. Symlinks, paths leading outside the run and " +
        "files over the size caps are refused (exit 65). A run not yet collected is collected first. Works the same for " +
        "a run on this machine (the files are copied from its run directory).",
    )
    .argument("<run>", "the run id (see `hpcpipe runs`)")
    .argument("[patterns...]", "output paths or globs, relative to the run's work/ directory (`*` within a directory, `**` across)")
    .option("--to <dir>", "where the outputs go, keeping their paths (default: ./<run id>)")
    .option("--max-file <size>", `largest file to fetch (default ${formatBytes(PULL_MAX_FILE_BYTES)})`)
    .option("--max-total <size>", `most bytes in one pull (default ${formatBytes(PULL_MAX_TOTAL_BYTES)})`)
    .option("--json", "print what was fetched, skipped and refused as JSON")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe pull 20261128-161900-a1b2c3                          # every output, into ./20261128-161900-a1b2c3/\n" +
        "  $ hpcpipe pull 20261128-161900-a1b2c3 'out/*.png' --to renders # only the PNGs under out/\n" +
        "  $ hpcpipe pull 20261128-161900-a1b2c3 'out/**' --max-file 2G\n" +
        "  $ hpcpipe submit examples/thumbnails/pipeline.yaml --cluster C --wait --pull   # the same at the end of a run\n",
    )
    .action(async (runId: string, patterns: string[], flags: PullFlags) => {
      const to = resolve(flags.to ?? runId);
      const maxFileBytes = flags.maxFile !== undefined ? parseSize(flags.maxFile, "--max-file") : PULL_MAX_FILE_BYTES;
      const maxTotalBytes = flags.maxTotal !== undefined ? parseSize(flags.maxTotal, "--max-total") : PULL_MAX_TOTAL_BYTES;
      await guarded(() =>
        openRun(runId, connectOptions(flags, cli), async (run) => {
          const bar = transferBar(process.stderr, "pull");
          const outcome = await pullRun(run, patterns, { to, maxFileBytes, maxTotalBytes, onBytes: (n) => bar.update(n, null) });
          bar.end();
          if (flags.json) process.stdout.write(`${JSON.stringify({ to: outcome.to, fetched: outcome.fetched, skipped: outcome.skipped, refused: [...outcome.refused, ...outcome.outside.map((path) => ({ path, reason: "outside the run's work/ directory" }))], bytes: outcome.bytes }, null, 2)}\n`);
          process.stderr.write(pullSummary(outcome));
          if (outcome.refused.length + outcome.outside.length > 0) process.exitCode = CliExit.DATA;
        }),
      );
    });
}
