import { Option } from "commander";
import type { Command } from "commander";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { createLogger, logFormatFor } from "../../src/core/logger.js";
import type { LogFormat } from "../../src/core/logger.js";
// The inspector (and its glTF library) is loaded only when `inspect` runs: other commands start without it.
import type { MiniInspectorResult } from "./inspector.js";
import { PIPELINE_NAME, resolveStepNames, STEP_NAMES, UnknownStepError } from "./step-names.js";
import type { StepName } from "./step-names.js";

/** Where the command writes; the process streams by default (tests pass their own). */
export interface InspectOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processOutput: InspectOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

interface InspectFlags {
  out?: string;
  steps?: string;
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
  logFormat: LogFormat | "auto";
}

/** "hpcpipe inspect" as a subcommand, "mini-inspector" standalone. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Gives `cmd` the inspector's argument, options, help and action. The action
 * sets process.exitCode to the pipeline's exit code (0-4) and throws CliError
 * (exit 64) for a bad --steps list; commander's own usage errors are thrown
 * as CommanderError (exitOverride), for the caller to map to 64.
 */
export function configureInspectCommand(cmd: Command, output: InspectOutput = processOutput): Command {
  return cmd
    .description(
      "Inspect a glTF 2.0 model (.glb or .gltf): meshes, primitives, vertices, triangles, materials, textures, " +
        "animations, nodes, scenes and world-space bounds. Prints a summary and writes a JSON report.",
    )
    .argument("<model>", "the .glb or .gltf file to inspect")
    .option("-o, --out <file>", "where to write the JSON report (default: ./<model name>.report.json)")
    .option("--steps <names>", "run only these steps, comma-separated (see the list below)")
    .option("--dry-run", "check the plan and print it; run nothing, write nothing")
    .option("--force", "rerun steps even if they already succeeded")
    .option("--json", "print the pipeline's result (CompletedState) as JSON instead of the summary")
    .option("-q, --quiet", "do not log pipeline events to stderr")
    .addOption(
      new Option("--log-format <format>", "pipeline events on stderr: compact lines for people, or JSON lines (auto: pretty on a terminal, JSON otherwise)")
        .choices(["auto", "pretty", "json"])
        .default("auto"),
    )
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .addHelpText("after", () => {
      const me = commandPath(cmd);
      return (
        "\nExamples:\n" +
        `  $ ${me} examples/mini-inspector/models/scene.glb\n` +
        `  $ ${me} model.gltf --out reports/model.json --quiet\n` +
        `  $ ${me} model.glb --steps prepare_scene,import_model --json\n` +
        `  $ ${me} model.glb --dry-run\n` +
        `\nSteps, in order: ${STEP_NAMES.join(", ")}\n` +
        "\nExit status: 0 ok, 1 missing requirement (e.g. a --steps subset without its inputs), 2 step exception,\n" +
        "3 invalid return, 4 step failed (e.g. a missing, truncated or corrupt model), 64 usage error.\n"
      );
    })
    .action(async (model: string, flags: InspectFlags) => {
      const me = commandPath(cmd);
      let steps: StepName[] | undefined;
      if (flags.steps !== undefined) {
        try {
          steps = resolveStepNames(flags.steps.split(","));
        } catch (err) {
          if (err instanceof UnknownStepError) throw new CliError(`--steps: ${err.message}`, CliExit.USAGE);
          throw err;
        }
      }
      const { runMiniInspector } = await import("./inspector.js");
      const { formatSummary } = await import("./summary.js");
      const result = await runMiniInspector({
        model,
        out: flags.out,
        steps,
        dryRun: flags.dryRun ?? false,
        force: flags.force ?? false,
        logger: flags.quiet ? undefined : createLogger({ sink: { write: (line: string) => output.stderr(line) }, format: logFormatFor(process.stderr, flags.logFormat) }),
      });
      output.stdout(flags.json ? `${JSON.stringify(result.state.toJSON(), null, 2)}\n` : formatSummary(result));
      if (!result.state.success) output.stderr(`${me}: ${failureLine(model, result)}\n`);
      process.exitCode = result.exitCode;
    });
}

/** Adds the inspector as `inspect` to a program (e.g. hpcpipe); returns the subcommand. */
export function registerInspectCommand(program: Command, output?: InspectOutput): Command {
  return configureInspectCommand(program.command("inspect"), output);
}

/** "<model>: <step> failed (<KIND>, exit N): <the step's own error>", without naming the model twice. */
export function failureLine(model: string, result: MiniInspectorResult): string {
  const { state } = result;
  const failedKey = typeof state.meta.failed_step === "string" ? state.meta.failed_step : undefined;
  const leaf = failedKey === undefined ? undefined : state.step_states?.[failedKey];
  let error = leaf?.error ?? state.error ?? "failed";
  const step = failedKey?.split(".").pop() ?? PIPELINE_NAME;
  if (error.startsWith(`${model}: `)) error = error.slice(model.length + 2);
  return `${model}: ${step} failed (${state.failure ?? "STEP_FAILED"}, exit ${result.exitCode}): ${error}`;
}
