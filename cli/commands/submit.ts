import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { preparePlan } from "../../src/app/prepare.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { collect, guarded, parseSetOption } from "../errors.js";

interface SubmitFlags {
  cluster: string;
  dryRun?: boolean;
  out?: string;
  set: string[];
  fuse: boolean;
  templates?: string;
}

/** The scripts in submission order, then the submit script, each under a header line. */
export function dryRunListing(plan: CompiledPlan): string {
  const parts: string[] = [];
  for (const job of plan.jobs) parts.push(`### ${job.scriptPath} (${job.id}: ${job.steps.join(", ")})\n${job.script}`);
  parts.push(`### scripts/submit.sh\n${plan.files["scripts/submit.sh"] ?? ""}`);
  return parts.join("\n");
}

/** Writes every file of the bundle under DIR, as it would be uploaded. */
export async function writeBundle(plan: CompiledPlan, dir: string): Promise<void> {
  for (const [rel, text] of Object.entries(plan.files)) {
    const path = join(dir, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, { mode: rel.endsWith(".sh") || rel.endsWith(".sbatch") ? 0o755 : 0o644 });
  }
}

export function registerSubmitCommand(program: Command): void {
  program
    .command("submit")
    .description(
      "Submit a pipeline to a SLURM cluster. With --dry-run, print (or write to --out DIR) every sbatch script and the " +
        "generated submit script in submission order, and contact nothing.",
    )
    .argument("<pipeline>", "the pipeline spec (YAML)")
    .requiredOption("-c, --cluster <name>", "cluster config: a name in ./cluster-configs or hpcpipe's, or a path")
    .option("--dry-run", "render everything, contact nothing")
    .option("-o, --out <dir>", "with --dry-run: write the bundle (scripts, context, items) to this directory instead of printing")
    .option("--set <key=value>", "set or override a context value (repeatable)", collect, [])
    .option("--no-fuse", "do not fuse consecutive steps with equal resources into one job")
    .option("--templates <dir>", "render with your own templates (sbatch.hbs, submit.hbs, partials/)")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe submit examples/specs/thumbnail-shape.yaml --cluster localcluster --dry-run\n" +
        "  $ hpcpipe submit examples/specs/batch-map.yaml --cluster example-university --dry-run --out /tmp/bundle\n",
    )
    .action(async (spec: string, flags: SubmitFlags) => {
      await guarded(async () => {
        if (!flags.dryRun) {
          throw new CliError(
            "submitting over SSH is not implemented in this version yet; use --dry-run to see the scripts, " +
              "or `hpcpipe run` to run the same scripts on this machine",
            CliExit.USAGE,
          );
        }
        const { plan } = preparePlan({
          spec,
          cluster: flags.cluster,
          set: parseSetOption(flags.set),
          fuse: flags.fuse,
          ...(flags.templates ? { templatesDir: flags.templates } : {}),
        });
        if (flags.out) {
          await writeBundle(plan, flags.out);
          process.stdout.write(`wrote ${Object.keys(plan.files).length} files for ${plan.jobs.length} job(s) to ${flags.out}\n`);
        } else {
          process.stdout.write(dryRunListing(plan));
        }
      });
    });
}
