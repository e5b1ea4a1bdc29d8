import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { Option } from "commander";
import type { Command } from "commander";
import type { RunExecutor } from "../../src/app/executor.js";
import { executorWords, submitPipeline } from "../../src/app/lifecycle.js";
import { writeJsonTo } from "../../src/core/json-stream.js";
import { preparePlan } from "../../src/app/prepare.js";
import { outputStates, pullRun } from "../../src/app/pull.js";
import { handleInterrupt, waitAndCollect } from "../../src/app/submit.js";
import { preview } from "../../src/core/preview.js";
import { RUN_ID_PATTERN } from "../../src/runs/record.js";
import type { InterruptPolicy } from "../../src/app/submit.js";
import { formatResultSummary } from "../../src/app/summary.js";
import { CliError, CliExit } from "../../src/cli-exit.js";
import { exitCodeFrom } from "../../src/core/exit-code.js";
import { formatPlanJson } from "../../src/compiler/format.js";
import { bundleFileMode, executableBundleFiles } from "../../src/plan/bundle-files.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { RunStateError } from "../../src/runs/index.js";
import type { RunRecord } from "../../src/runs/index.js";
import { collect, guarded, parseSetOption } from "../errors.js";
import { transferBar } from "../transfer-bar.js";
import { pullSummary } from "./pull.js";
import { ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP } from "./status.js";
import { watchPrinter } from "../watch-printer.js";
import type { WatchPrinter } from "../watch-printer.js";
import { connectOptions } from "../connect-options.js";
import type { CliOptions } from "../connect-options.js";

interface SubmitFlags {
  cluster: string;
  dryRun?: boolean;
  out?: string;
  set: string[];
  fuse: boolean;
  cache: boolean;
  templates?: string;
  wait?: boolean;
  json?: boolean;
  acceptNewHostKey?: boolean;
  onInterrupt?: InterruptPolicy;
  resume?: string;
  pull?: boolean;
  to?: string;
  cpus?: string;
  runsDir?: string;
}

/** What `submit` prints once the jobs are in: the run id first, then how to follow it. */
export function submittedText(record: RunRecord): string {
  const ids = Object.values(record.jobs);
  const id = record.run_id;
  if (ids.length === 0) {
    return (
      `run ${id}: every step was restored from the step cache; nothing to run on ${record.cluster}\n` +
      `  ${executorWords(record).directory.padEnd(17)} ${record.remote_dir}\n` +
      `  results:          hpcpipe collect ${id}\n` +
      `  outputs:          hpcpipe pull ${id}\n`
    );
  }
  return (
    `submitted run ${id}: ${ids.length} job(s) on ${record.cluster} (${executorWords(record).jobIds} ${ids.join(", ")})\n` +
    `  ${executorWords(record).directory.padEnd(17)} ${record.remote_dir}\n` +
    `  follow it:        hpcpipe status ${id} --watch\n` +
    `  step logs:        hpcpipe logs ${id} STEP [--follow]\n` +
    `  results:          hpcpipe collect ${id}\n` +
    `  cancel it:        hpcpipe cancel ${id}\n`
  );
}

/** Asks on the terminal whether to cancel the run's jobs; anything but y/yes (or a second Ctrl-C) leaves them running. */
function askCancel(record: RunRecord): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    let answered = false;
    const finish = (yes: boolean): void => {
      if (answered) return;
      answered = true;
      rl.close();
      resolve(yes);
    };
    rl.on("SIGINT", () => finish(false));
    rl.on("close", () => finish(false));
    rl.question(`\nCancel the ${Object.keys(record.jobs).length} job(s) of run ${record.run_id} on ${record.cluster}? [y/N] `, (answer) => finish(/^y(es)?$/i.test(answer.trim())));
  });
}

/** After Ctrl-C: cancel, leave or ask, say what happened, and exit 130. */
async function interrupted(run: RunExecutor, policy: InterruptPolicy): Promise<number> {
  const cancelled = await handleInterrupt(run, policy, () => askCancel(run.record));
  if (cancelled) process.stderr.write(`hpcpipe: interrupted; ${cancelled.message}\n`);
  else process.stderr.write(`hpcpipe: interrupted; run ${run.record.run_id} goes on: \`hpcpipe status ${run.record.run_id} --watch\` follows it, \`hpcpipe cancel ${run.record.run_id}\` cancels it\n`);
  return CliExit.INTERRUPTED;
}

/** The scripts in submission order, then the submit script, each under a header line. */
export function dryRunListing(plan: CompiledPlan): string {
  const parts: string[] = [];
  for (const job of plan.jobs) parts.push(`### ${job.scriptPath} (${job.id}: ${job.steps.join(", ")})\n${job.script}`);
  parts.push(`### scripts/submit.sh\n${plan.files["scripts/submit.sh"] ?? ""}`);
  return parts.join("\n");
}

/** `--dry-run --json`: the plan (without script texts) and every script by path, in submission order. */
export function dryRunJson(plan: CompiledPlan): string {
  const scripts: Record<string, string> = {};
  for (const job of plan.jobs) scripts[job.scriptPath] = job.script;
  scripts["scripts/submit.sh"] = plan.files["scripts/submit.sh"] ?? "";
  return `${JSON.stringify({ plan: JSON.parse(formatPlanJson(plan)) as unknown, scripts }, null, 2)}\n`;
}

/** Writes every file of the bundle under DIR, as it would be uploaded. */
export async function writeBundle(plan: CompiledPlan, dir: string): Promise<void> {
  const executable = executableBundleFiles(plan);
  for (const [rel, text] of Object.entries(plan.files)) {
    const path = join(dir, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, { mode: bundleFileMode(rel, executable) });
  }
}

/** --cpus: a whole number >= 1. */
export function cpusOption(value: string): number {
  const cpus = Number(value);
  if (!Number.isInteger(cpus) || cpus < 1) throw new CliError(`--cpus must be a whole number >= 1, got ${preview(value)}`, CliExit.USAGE);
  return cpus;
}

export function registerSubmitCommand(program: Command, cli: CliOptions = {}): void {
  program
    .command("submit")
    .description(
      "Submit a pipeline to a SLURM cluster, or with --cluster local run it on this machine in the background (a detached supervisor starts its jobs; follow it with status, logs, collect, cancel as a cluster run). With --dry-run, print (or write to --out DIR) every sbatch script and the " +
        "generated submit script in submission order, and contact nothing.",
    )
    .argument("<pipeline>", "the pipeline spec (YAML)")
    .requiredOption("-c, --cluster <name>", "cluster config: a name in ./cluster-configs or hpcpipe's, or a path")
    .option("--dry-run", "render everything, contact nothing")
    .option("-o, --out <dir>", "with --dry-run: write the bundle (scripts, context, items) to this directory instead of printing")
    .option("--set <key=value>", "set or override a context value (repeatable)", collect, [])
    .option("--no-fuse", "do not fuse consecutive steps with equal resources into one job")
    .option("--no-cache", "neither restore steps from the step cache (results of earlier runs with the same inputs) nor store this run's steps in it")
    .option("--templates <dir>", "render with your own templates (sbatch.hbs, submit.hbs, partials/)")
    .option(
      "-w, --wait",
      "watch the run until every job has ended, then collect the results (exit status: the pipeline's); the watch shows on stderr: a live view on a terminal (bars, throughput, ETA, latest image per step, group and map), timestamped lines otherwise",
    )
    .option("--resume <run>", "resubmit RUN: only steps whose state on the cluster is not a success of the same definition run again (failed array tasks as a sparse array), in the same run directory")
    .option("--json", "print the run record as JSON (with --wait: the merged result on stdout, and the watch's events on stderr, one JSON object per line)")
    .option("--pull", "with --wait: then bring the declared outputs home in one transfer (see `hpcpipe pull`)")
    .option("--to <dir>", "with --pull: where the outputs go (default: ./<run id>)")
    .option("--cpus <n>", "a run on this machine (--cluster local): most CPUs in use at once (default: this machine's)")
    .option("--runs-dir <dir>", "a run on this machine (--cluster local): where run directories go (default: .hpcpipe/runs)")
    .option(ACCEPT_HOST_KEY_FLAGS, ACCEPT_HOST_KEY_HELP)
    .addOption(
      new Option("--on-interrupt <what>", "on Ctrl-C after the jobs are in: cancel them, leave them running, or ask (default: ask on a terminal, else leave)").choices([
        "cancel",
        "leave",
        "ask",
      ]),
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ hpcpipe submit examples/specs/thumbnail-shape.yaml --cluster localcluster --wait\n" +
        "  $ hpcpipe submit examples/specs/batch-map.yaml --cluster localcluster --set min_bytes=8\n" +
        "  $ hpcpipe submit examples/specs/batch-map.yaml --cluster localcluster --resume 20261128-161900-a1b2c3 --wait\n" +
        "  $ hpcpipe submit examples/specs/thumbnail-shape.yaml --cluster localcluster --dry-run\n" +
        "  $ hpcpipe submit examples/specs/batch-map.yaml --cluster example-university --dry-run --out /tmp/bundle\n" +
        "\nThe run record is written to $HPCPIPE_HOME (default ~/.hpcpipe) before the cluster is contacted; the bundle\n" +
        "goes through the cluster's content-addressed store (only files it lacks are sent, in one stream) and one\n" +
        "generated script submits every job. Ctrl-C during the submission\n" +
        "lets it finish (it is never half done), then applies --on-interrupt; exit status 130.\n",
    )
    .action(async (spec: string, flags: SubmitFlags) => {
      await guarded(async () => {
        if (flags.dryRun && flags.resume !== undefined) throw new CliError("--resume submits; it does not combine with --dry-run", CliExit.USAGE);
        if (!flags.dryRun) {
          if (flags.out) throw new CliError("--out is for --dry-run only", CliExit.USAGE);
          if (flags.pull && !flags.wait) throw new CliError("--pull needs --wait (or run `hpcpipe pull RUN` once the run has ended)", CliExit.USAGE);
          if (flags.to !== undefined && !flags.pull) throw new CliError("--to is for --pull", CliExit.USAGE);
          if (flags.resume !== undefined && !RUN_ID_PATTERN.test(flags.resume)) throw new CliError(`--resume: invalid run id ${preview(flags.resume)}`, CliExit.USAGE);
          process.exitCode = await submitCommand(spec, flags, cli);
          return;
        }
        const { plan, warnings } = preparePlan({
          spec,
          cluster: flags.cluster,
          set: parseSetOption(flags.set),
          fuse: flags.fuse,
          ...(flags.templates ? { templatesDir: flags.templates } : {}),
        });
        for (const warning of warnings) process.stderr.write(`hpcpipe: warning: ${warning}\n`);
        if (flags.out) {
          await writeBundle(plan, flags.out);
          process.stdout.write(`wrote ${Object.keys(plan.files).length} files for ${plan.jobs.length} job(s) to ${flags.out}\n`);
        } else if (flags.json) {
          process.stdout.write(dryRunJson(plan));
        } else {
          process.stdout.write(dryRunListing(plan));
        }
      });
    });
}

async function submitCommand(spec: string, flags: SubmitFlags, cli: CliOptions): Promise<number> {
  const tty = process.stdin.isTTY === true && process.stderr.isTTY === true;
  const policy: InterruptPolicy = flags.onInterrupt ?? (tty ? "ask" : "leave");
  const abort = new AbortController();
  // The watch's view while it shows: a line for people goes through it (above its frame on a terminal).
  let printer: WatchPrinter | null = null;
  // Ctrl-C never interrupts the submit script (that could leave half a run): it is acted on once the jobs are in.
  const onSigint = (): void => {
    if (!abort.signal.aborted) {
      if (printer !== null) printer.message("hpcpipe: interrupt received");
      else process.stderr.write("\nhpcpipe: interrupt received\n");
    }
    abort.abort();
  };
  process.on("SIGINT", onSigint);
  const bar = transferBar(process.stderr, "upload");
  try {
    const outcome = await submitPipeline(
      {
        spec,
        cluster: flags.cluster,
        set: parseSetOption(flags.set),
        fuse: flags.fuse,
        cache: flags.cache,
        ...(flags.templates ? { templatesDir: flags.templates } : {}),
        ...connectOptions(flags, cli),
        connectEarly: true,
        ...(flags.resume !== undefined ? { resume: flags.resume } : {}),
        onProgress: (message) => {
          bar.end();
          process.stderr.write(`hpcpipe: ${message}\n`);
        },
        onTransfer: (sent, total) => {
          bar.update(sent, total);
          if (sent >= total) bar.end();
        },
        local: { ...(flags.cpus !== undefined ? { cpus: cpusOption(flags.cpus) } : {}), ...(flags.runsDir ? { runsDir: flags.runsDir } : {}) },
      },
      async (run: RunExecutor): Promise<number> => {
        if (flags.json && !flags.wait) process.stdout.write(`${JSON.stringify(run.record, null, 2)}\n`);
        else (flags.wait || flags.json ? process.stderr : process.stdout).write(submittedText(run.record));
        if (abort.signal.aborted) return interrupted(run, policy);
        if (!flags.wait) return 0;
        // The live view (or with --json the event stream) goes to stderr: stdout keeps the result alone.
        const view = watchPrinter(run, process.stderr, { json: flags.json ?? false, tty: process.stderr.isTTY === true });
        printer = view;
        const waited = await waitAndCollect(run, { signal: abort.signal, ...view.options })
          .catch((error: unknown) => {
            view.finish(null, true);
            throw error;
          })
          .finally(() => (printer = null));
        view.finish(waited.watch.status, waited.collect === null, waited.watch.remote?.states);
        if (waited.collect === null) return interrupted(run, policy);
        const { state, resultPath, problems } = waited.collect;
        for (const p of problems) process.stderr.write(`hpcpipe: unusable state file ${p.file}: ${p.error}\n`);
        if (flags.json) await writeJsonTo(process.stdout, state);
        else process.stdout.write(formatResultSummary(state, `pipeline ${run.plan.pipeline}, run ${run.record.run_id}`));
        process.stderr.write(`hpcpipe: result written to ${resultPath}\n`);
        const code = exitCodeFrom(state);
        if (!flags.pull) return code;
        // The outputs of the steps that produced them, also when the pipeline failed.
        const pulled = await pullRun(run, [], { to: resolve(flags.to ?? run.record.run_id), onBytes: (n) => bar.update(n, null) }, outputStates(state)).catch((error: unknown) => {
          bar.end();
          if (error instanceof RunStateError) {
            process.stderr.write(`hpcpipe: nothing to pull: ${error.message}\n`);
            return null;
          }
          throw error;
        });
        bar.end();
        if (pulled === null) return code;
        process.stderr.write(pullSummary(pulled));
        return code === 0 && pulled.refused.length + pulled.outside.length > 0 ? CliExit.DATA : code;
      },
    );
    return outcome.then ?? 0;
  } finally {
    process.removeListener("SIGINT", onSigint);
  }
}
