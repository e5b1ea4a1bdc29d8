import type { Command } from "commander";
import { formatRunsTable, runListEntry, RunStore } from "../../src/runs/index.js";
import { guarded } from "../errors.js";

interface RunsFlags {
  json?: boolean;
}

export function registerRunsCommand(program: Command): void {
  program
    .command("runs")
    .description("List the runs submitted from this machine (records in $HPCPIPE_HOME, default ~/.hpcpipe), newest first. Contacts nothing.")
    .option("--json", "print the records as a JSON array")
    .addHelpText("after", "\nExamples:\n  $ hpcpipe runs\n  $ hpcpipe runs --json | jq -r '.[] | select(.phase == \"submitted\") | .run_id'\n")
    .action(async (flags: RunsFlags) => {
      await guarded(async () => {
        const { records, problems } = await new RunStore().list();
        for (const p of problems) process.stderr.write(`hpcpipe: skipped an unreadable record: ${p}\n`);
        process.stdout.write(flags.json ? `${JSON.stringify(records.map(runListEntry), null, 2)}\n` : formatRunsTable(records));
      });
    });
}
