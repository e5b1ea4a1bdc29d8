import type { Command } from "commander";
import { defaultTransportFactory } from "../../src/app/connect.js";
import type { Transport } from "../../src/transport/index.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { ConfigError, loadClusterConfig } from "../../src/cluster/index.js";
import { formatBytes, manageStore, parseAge, storeDir } from "../../src/store/index.js";
import type { StoreUsage } from "../../src/store/index.js";
import { guarded } from "../errors.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";

interface CacheFlags {
  cluster: string;
  olderThan?: string;
  dryRun?: boolean;
  json?: boolean;
  acceptNewHostKey?: boolean;
}

/** The lines `cache ls` and `cache prune` print. */
export function usageText(store: string, usage: StoreUsage, age: string): string {
  return [
    `store ${store}`,
    `  step cache entries:        ${usage.entries.toLocaleString("en-US")}, ${formatBytes(usage.entriesBytes)}`,
    `  of those yours, unused for ${age}: ${usage.prunableEntries.toLocaleString("en-US")}, ${formatBytes(usage.prunableEntriesBytes)}`,
    `  blobs:                     ${usage.blobs.toLocaleString("en-US")}, ${formatBytes(usage.bytes)}`,
    `  held by no run directory:  ${usage.unlinked.toLocaleString("en-US")}, ${formatBytes(usage.unlinkedBytes)}`,
    `  of those yours, unused for ${age}: ${usage.prunable.toLocaleString("en-US")}, ${formatBytes(usage.prunableBytes)}`,
    ...(usage.incoming > 0 ? [`  interrupted uploads:       ${usage.incoming} (kept for the next submission to resume)`] : []),
    "",
  ].join("\n");
}

async function withStore<T>(flags: CacheFlags, cli: CliOptions, action: (transport: Transport, store: string) => Promise<T>): Promise<T> {
  const config = loadClusterConfig(flags.cluster);
  if (config.executor !== "slurm") {
    throw new ConfigError(config.source ?? flags.cluster, [{ path: "executor", expected: "expected slurm: the store lives on a cluster (a local run copies its bundle)" }]);
  }
  const transport = await defaultTransportFactory(config, connectOptions(flags, cli));
  try {
    return await action(transport, storeDir(config));
  } finally {
    await transport.close();
  }
}

function age(flags: CacheFlags): { minutes: number; text: string } {
  const text = flags.olderThan ?? "30d";
  try {
    return { minutes: parseAge(text), text };
  } catch (error) {
    throw new CliError(`--older-than: ${(error as Error).message}`, CliExit.USAGE);
  }
}

export function registerCacheCommand(program: Command, cli: CliOptions = {}): void {
  const cache = program
    .command("cache")
    .description(
      "Look after a cluster's content-addressed store: the blobs that submissions uploaded (the spec's bundle files) " +
        "and that jobs stored (the outputs of cached steps), deduplicated across runs, and the step cache's entries " +
        "(what a rerun restores instead of running). A blob is in use while a run directory holds it (work/ files are " +
        "hard links to it); only blobs no run directory holds can be pruned. An entry is used each time a submission restores it.",
    );
  cache
    .command("ls")
    .description("Sizes: the step cache's entries, every blob, those no run directory holds, and what `prune` would remove.")
    .requiredOption("-c, --cluster <name>", "cluster config: a name in ./cluster-configs or hpcpipe's, or a path")
    .option("--older-than <age>", "what counts as unused for the last line: 30d, 12h, 90m", "30d")
    .option("--json", "print the figures as JSON")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText("after", "\nExamples:\n  $ hpcpipe cache ls --cluster mycluster\n  $ hpcpipe cache ls --cluster mycluster --older-than 7d --json\n")
    .action(async (flags: CacheFlags) => {
      const { minutes, text } = age(flags);
      await guarded(() =>
        withStore(flags, cli, async (transport, store) => {
          const usage = await manageStore(transport, store, { olderThanMinutes: minutes, prune: false });
          process.stdout.write(flags.json ? `${JSON.stringify({ store, ...usage }, null, 2)}\n` : usageText(store, usage, text));
        }),
      );
    });
  cache
    .command("prune")
    .description(
      "Remove your step cache entries that no submission restored for --older-than, and your blobs that no run " +
        "directory holds and that no submission used for --older-than (every layout of a run marks its blobs used). " +
        "A run that still exists keeps its blobs; a later submission sends a pruned input blob again, and runs a step " +
        "whose entry or output blob was pruned.",
    )
    .requiredOption("-c, --cluster <name>", "cluster config: a name in ./cluster-configs or hpcpipe's, or a path")
    .requiredOption("--older-than <age>", "unused for at least this long: 30d, 12h, 90m")
    .option("--dry-run", "say what would be removed; remove nothing")
    .option("--json", "print the figures as JSON")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addHelpText("after", "\nExamples:\n  $ hpcpipe cache prune --cluster mycluster --older-than 30d --dry-run\n  $ hpcpipe cache prune --cluster mycluster --older-than 30d\n")
    .action(async (flags: CacheFlags) => {
      const { minutes, text } = age(flags);
      await guarded(() =>
        withStore(flags, cli, async (transport, store) => {
          const usage = await manageStore(transport, store, { olderThanMinutes: minutes, prune: flags.dryRun !== true });
          if (flags.json) process.stdout.write(`${JSON.stringify({ store, removed: flags.dryRun ? 0 : usage.prunable, removedBytes: flags.dryRun ? 0 : usage.prunableBytes, ...usage }, null, 2)}\n`);
          else {
            process.stdout.write(usageText(store, usage, text));
            process.stdout.write(
              `${flags.dryRun ? "would remove" : "removed"} ${usage.prunableEntries.toLocaleString("en-US")} step cache entr${usage.prunableEntries === 1 ? "y" : "ies"}, ${formatBytes(usage.prunableEntriesBytes)}, ` +
                `and ${usage.prunable.toLocaleString("en-US")} blob(s), ${formatBytes(usage.prunableBytes)}\n`,
            );
          }
        }),
      );
    });
}
