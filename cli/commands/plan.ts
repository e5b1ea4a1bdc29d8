import { Option } from "commander";
import type { Command } from "commander";
import { preparePlan } from "../../src/app/prepare.js";
import { formatPlan } from "../../src/compiler/format.js";
import { formatBytes } from "../../src/store/format.js";
import type { PlanFormat } from "../../src/compiler/format.js";
import { collect, guarded, parseSetOption } from "../errors.js";

interface PlanFlags {
  cluster: string;
  format: PlanFormat;
  set: string[];
  fuse: boolean;
  templates?: string;
}

export function registerPlanCommand(program: Command): void {
  program
    .command("plan")
    .description("Show the SLURM jobs a pipeline compiles to: the job graph, arrays, chunks, dependencies and fusions. Contacts nothing.")
    .argument("<pipeline>", "the pipeline spec (YAML)")
    .option("-c, --cluster <name>", "cluster config: a name in ./cluster-configs or hpcpipe's, or a path", "local")
    .addOption(new Option("-f, --format <format>", "output format").choices(["text", "json", "mermaid"]).default("text"))
    .option("--set <key=value>", "set or override a context value (repeatable)", collect, [])
    .option("--no-fuse", "do not fuse consecutive steps with equal resources into one job")
    .option("--templates <dir>", "render with your own templates (sbatch.hbs, submit.hbs, partials/)")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe plan examples/specs/thumbnail-shape.yaml\n" +
        "  $ hpcpipe plan examples/specs/batch-map.yaml --cluster localcluster --format mermaid > graph.mmd\n",
    )
    .action(async (spec: string, flags: PlanFlags) => {
      await guarded(() => {
        const { plan, warnings, loaded } = preparePlan({
          spec,
          cluster: flags.cluster,
          set: parseSetOption(flags.set),
          fuse: flags.fuse,
          ...(flags.templates ? { templatesDir: flags.templates } : {}),
          runId: "preview",
        });
        for (const warning of warnings) process.stderr.write(`hpcpipe: warning: ${warning}\n`);
        process.stdout.write(formatPlan(plan, flags.format));
        if (flags.format === "text" && loaded.inputs.length > 0) {
          const bytes = loaded.inputs.reduce((t, f) => t + f.size, 0);
          const maps = Object.entries(plan.itemHashes ?? {}).map(([key, hashes]) => `${key} (${hashes.length})`);
          process.stdout.write(`staged item files: ${loaded.inputs.length} file(s), ${formatBytes(bytes)}, under work/inputs/ for map items of ${maps.join(", ")}\n`);
        }
      });
    });
}
