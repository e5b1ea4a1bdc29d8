// bench/batch (issue 5, task packing) on the project's own SLURM test cluster over SSH
// (scripts/cluster/up.sh):
//   1. W2 (bench/submit/w2*.yaml: 200 items, each validate -> report) submitted to merged result by
//      hpcpipe unpacked (one array task per item) and packed (50 items per array task), next to the
//      hand-written upfront-array baseline (bench/submit/baseline.sh running w2.jobs: two arrays of
//      200 tasks, afterok), all in ONE run, as wall times and ratios; goal: packed W2 at least 10x
//      faster than the baseline (printed as met / NOT met).
//   2. Example 4 end to end: the batch validation of 2,000 generated glTF models
//      (examples/batch-validate: inspector + Khronos validator per model, packed 25 models per
//      array task, then the aggregate), from submit to merged result: wall time, packed tasks,
//      status polls and scheduler queries (counted by the scheduler itself, exactly), item states
//      merged, and the summary's valid/invalid counts next to the generator's expected.json.
// Prints figures only; asserts nothing (the cluster is shared: times are noisy).
// Run after a build: `npm run bench:batch`, or `node dist/bench/batch.js [--only w2,models] [--models N]`.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildToolkit } from "../examples/batch-validate/build-toolkit.js";
import { writeBatch } from "../examples/batch-validate/generate.js";
import { chosenSections, COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { closeBench, openBench } from "./lib/cluster.js";
import type { Bench } from "./lib/cluster.js";
import { int, median, now, ratio, sec, table } from "./lib/format.js";
import { checkInterrupt, runBench } from "./lib/interrupt.js";
import { hpcpipeRun, printWorkloads, w2Workloads, workloadRows } from "./lib/workloads.js";
import type { HpcpipeRun, WorkloadRow } from "./lib/workloads.js";

const SECTIONS = ["w2", "models"] as const;

const USAGE = `usage: node dist/bench/batch.js [options]
  --only LIST          sections, comma-separated (default all):
                       w2      W2 unpacked, W2 packed and the hand-written baseline, in one run, as ratios
                       models  the batch validation of N generated models, submit to merged result
  --models N           models in the batch validation (default 2000)
  --broken-every K     every K-th generated model is broken (default 5; 0: none)
  --rounds N           rounds of each W2 row (median shown; default 1)
  --up                 run scripts/cluster/up.sh first even when the cluster answers
  --no-up              never run scripts/cluster/up.sh`;

/** Packed W2 must be at least this much faster than the hand-written per-item arrays (issue 5). */
const PACKED_GOAL = 10;

// ---------------------------------------------------------------- 1: W2 next to the baseline

function printW2Ratios(rows: WorkloadRow[]): void {
  const [unpacked, packed] = rows;
  if (!unpacked || !packed) return;
  const u = median(unpacked.hp.map((r) => r.s));
  const p = median(packed.hp.map((r) => r.s));
  const b = median(unpacked.bl.map((r) => r.s));
  const tasks = (r: HpcpipeRun | undefined): string => (r ? `${int(r.tasks)} array task(s)` : "-");
  console.log("\n2. W2 ratios (wall time from submit to every job ended and, for hpcpipe, the result merged)");
  table(
    ["comparison", "times", "ratio", "scheduler work", "goal"],
    [
      ["baseline / W2 packed", `${sec(b)} / ${sec(p)}`, ratio(b, p), `${int(unpacked.bl[0]?.tasks ?? NaN)} vs ${tasks(packed.hp[0])}`, `>= ${PACKED_GOAL}x: ${b / p >= PACKED_GOAL ? "met" : "NOT met"}`],
      ["baseline / W2 unpacked", `${sec(b)} / ${sec(u)}`, ratio(b, u), `${int(unpacked.bl[0]?.tasks ?? NaN)} vs ${tasks(unpacked.hp[0])}`, "-"],
      ["W2 unpacked / W2 packed", `${sec(u)} / ${sec(p)}`, ratio(u, p), `${tasks(unpacked.hp[0])} vs ${tasks(packed.hp[0])}`, "-"],
    ],
    [3, 4],
  );
  console.log("(the baseline runs one job per step, so 2 x 200 array tasks; hpcpipe fuses validate + report into one task per item, and packing puts 50 items in a task)");
}

// ---------------------------------------------------------------- 2: 2,000 models, submit to merged result

interface ModelsFigures {
  n: number;
  brokenEvery: number;
  expected: { good: number; broken: number; triangles: number };
  generateS: number;
  toolkitS: number;
  run: HpcpipeRun;
}

const MAP = "batch_validate.models";

async function modelsBench(bench: Bench, n: number, brokenEvery: number): Promise<ModelsFigures> {
  checkInterrupt();
  let t0 = now();
  process.stderr.write("models: bundling the toolkit the steps load (examples/batch-validate/build-toolkit.ts)...\n");
  await buildToolkit();
  const toolkitS = now() - t0;
  t0 = now();
  process.stderr.write(`models: generating ${int(n)} models (with a copy of the pipeline and its toolkit)...\n`);
  const batch = await writeBatch(join(bench.dir, "batch"), n, { brokenEvery });
  const generateS = now() - t0;
  process.stderr.write(`models: submit --wait of ${int(n)} models...\n`);
  const run = await hpcpipeRun(bench, join(bench.dir, "batch", "pipeline.yaml"), {});
  const e = batch.expected;
  return { n, brokenEvery, expected: { good: e.good, broken: e.broken, triangles: e.triangles }, generateS, toolkitS, run };
}

function printModels(f: ModelsFigures): void {
  const { run, expected } = f;
  const steps = run.state?.step_states ?? {};
  const items = Object.entries(steps).filter(([k]) => new RegExp(`^${MAP.replace(/\./g, "\\.")}\\.\\d+$`).test(k));
  const itemsOk = items.filter(([, s]) => s.success).length;
  const notRun = Object.values(steps).filter((s) => s.meta.not_run === true).length;
  const published = steps["batch_validate.aggregate"]?.outputs.published as Record<string, unknown> | undefined;
  const valid = Number(published?.models_valid);
  const invalid = Number(published?.models_invalid);
  const noResult = Number(published?.models_no_result);
  const mapJobs = run.plan.jobs.filter((j) => j.shape === "map");
  const packedTasks = mapJobs.reduce((t, j) => t + (j.array?.count ?? 1), 0);
  const perTask = mapJobs[0]?.map?.itemsPerTask ?? 1;
  const summaryOk = valid === expected.good && invalid === expected.broken && noResult === 0;
  console.log(
    `\n3. Batch validation of ${int(f.n)} generated models (${f.brokenEvery === 0 ? "none" : `every ${f.brokenEvery}th`} broken), submit to merged result ` +
      `(examples/batch-validate/pipeline.yaml: toolkit -> map of inspect + validate, ${perTask} models per array task -> aggregate)`,
  );
  table(
    ["what", "figure"],
    [
      ["generate the models (writeBatch), compile the toolkit (not timed below)", `${sec(f.generateS)}, ${sec(f.toolkitS)}`],
      ["wall time: submit to merged result", sec(run.s)],
      ["  of which compile + upload + submission", sec(run.submitS)],
      ["SLURM jobs / array tasks in all", `${run.jobs} / ${int(run.tasks)}`],
      ["packed map tasks (array tasks of the map)", `${int(packedTasks)} (${perTask} models each; unpacked would be ${int(f.n)})`],
      ["status polls / scheduler queries (squeue, sacct, scontrol; counted by the scheduler)", `${int(run.polls)} / ${int(run.queries)}`],
      ["item states merged / succeeded (broken models are failed items)", `${int(items.length)} / ${int(itemsOk)} (expected ${int(f.n)} / ${int(expected.good)})`],
      ["step states merged in all; not run", `${int(Object.keys(steps).length)}; ${notRun}`],
      ["summary: valid / invalid / no result (aggregate)", `${published ? `${valid} / ${invalid} / ${noResult}` : "no aggregate result"}`],
      ["generator's expected.json: good / broken", `${expected.good} / ${expected.broken}`],
      ["run", `${run.runId}: ${run.ok ? "success" : "NOT a success"}`],
    ],
    [1],
  );
  console.log(
    `states merged == ${int(f.n)}: ${items.length === f.n ? "yes" : "NO"}; summary counts == expected: ${summaryOk ? "yes" : "NO"}; ` +
      `scheduler queries per minute: ${(run.queries / (run.s / 60)).toFixed(1)}`,
  );
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...COMMON_OPTIONS,
      models: { type: "string", default: "2000" },
      "broken-every": { type: "string", default: "5" },
      rounds: { type: "string" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const want = chosenSections(values.only, SECTIONS, USAGE);
  const models = wholeNumber("models", values.models, 1, USAGE);
  const brokenEvery = wholeNumber("broken-every", values["broken-every"], 0, USAGE);
  const rounds = values.rounds === undefined ? null : wholeNumber("rounds", values.rounds, 1, USAGE);

  const bench = openBench("batch", { up: values.up, noUp: values["no-up"], rounds });
  const t0 = now();
  try {
    if (want("w2")) {
      process.stderr.write("w2: unpacked, packed, baseline...\n");
      const rows = await workloadRows(bench, w2Workloads(true));
      printWorkloads(rows, "1.");
      printW2Ratios(rows);
    }
    if (want("models")) printModels(await modelsBench(bench, models, brokenEvery));
  } finally {
    await closeBench(bench);
  }
  console.log(`\ntotal benchmark time: ${sec(now() - t0)}`);
}

await runBench(main);
