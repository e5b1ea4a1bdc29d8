// Loads the SLURM outputs captured by scripts/capture-slurm-output.sh (and the
// labelled synthetic-*.json ones) and replays them through a fake executor.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { CommandExecutor, CommandResult } from "../../src/slurm/index.js";
import { filterOptions, filteredCommand, queryName, throughFilter } from "../support/sacct-filter.js";

const FIXTURE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "slurm");

const FixtureSchema = z.object({
  name: z.string(),
  note: z.string(),
  synthetic: z.boolean(),
  slurmVersion: z.string(),
  argv: z.array(z.string()).min(1),
  code: z.number().int().nullable(),
  stdout: z.string(),
  stderr: z.string(),
});

export type Fixture = z.infer<typeof FixtureSchema>;

const IndexSchema = z.object({
  comment: z.string(),
  slurmVersion: z.string(),
  jobs: z.record(z.string(), z.string().regex(/^\d+$/)),
});

export function fixture(name: string): Fixture {
  const parsed = FixtureSchema.parse(JSON.parse(readFileSync(path.join(FIXTURE_DIR, `${name}.json`), "utf8")));
  if (parsed.synthetic !== name.startsWith("synthetic-")) {
    throw new Error(`fixture ${name}: only synthetic-*.json files may be synthetic`);
  }
  return parsed;
}

const index = IndexSchema.parse(JSON.parse(readFileSync(path.join(FIXTURE_DIR, "index.json"), "utf8")));

/** The job id the capture run got for a case (`ok`, `fail`, `array4`, ...). */
export function jobOf(name: string): string {
  const id = index.jobs[name];
  if (id === undefined) throw new Error(`index.json has no job for case ${name}`);
  return id;
}

/** The `-j` id list a captured command was run with. */
export function idsOf(captured: Fixture): string[] {
  const at = captured.argv.indexOf("-j");
  const list = at >= 0 ? captured.argv[at + 1] : undefined;
  if (list === undefined) throw new Error(`fixture ${captured.name} has no -j`);
  return list.split(",");
}

export function resultOf(captured: Fixture): CommandResult {
  return { code: captured.code, stdout: captured.stdout, stderr: captured.stderr };
}

export interface ReplayExecutor {
  execute: CommandExecutor;
  calls: string[][];
}

/**
 * An executor that answers each command with the next fixture captured for the
 * same program (argv[0]; sacct for sacct through the cluster-side filter), in the
 * order given, and records every argv it got. sacct asked through the filter gets
 * the fixture's answer run through the real filter script on this machine.
 */
export function replay(...fixtures: Fixture[]): ReplayExecutor {
  const queue = [...fixtures];
  const calls: string[][] = [];
  const execute: CommandExecutor = async (argv) => {
    calls.push(argv);
    const at = queue.findIndex((captured) => captured.argv[0] === queryName(argv));
    const next = queue[at];
    if (at < 0 || next === undefined) throw new Error(`no fixture left for ${argv.join(" ")}`);
    queue.splice(at, 1);
    return filteredCommand(argv) !== null ? throughFilter(resultOf(next), "awk", filterOptions(argv)) : resultOf(next);
  };
  return { execute, calls };
}
