// bench/batch-steps (issue 15, batch steps) on the project's own SLURM test cluster over SSH
// (scripts/cluster/up.sh): the batch thumbnailer (examples/batch-thumbnails) for N generated glTF models
// x 4 render passes (textured, normal, depth, edges) at S px, side by side in ONE run:
//   batch     the example as it is: each pass a batch step, ONE Blender process per pass for the
//             models of an array task (50 models per task), and ONE ffmpeg for the task's contact sheets;
//   per item  the same spec with `batch: false`: ONE Blender process per model and pass, ONE ffmpeg per
//             contact sheet (the same commands, in their per-item mode; the same packing).
// Each is `hpcpipe submit --wait --json --pull` run as the CLI in a child process with default settings,
// timed from start to exit. Prints both wall times and their ratio (goal: batch >= 8x faster), then
// checks that every pulled image is identical pixel by pixel (Cycles on the CPU, seed 0, the task's
// thread count, the scene reset between models) and that the per-item states are identical (success,
// failure kind, published values with the run id blanked). Asserts nothing (the cluster is shared).
// Run after a build: `npm run bench:batch-steps`, or `node dist/bench/batch-steps.js [--models N] [--size PX]`.
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeThumbnailBatch } from "../examples/batch-thumbnails/generate.js";
import { chosenSections, COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { runCliChild, submittedRunId } from "./lib/cli-child.js";
import type { CliRun } from "./lib/cli-child.js";
import { closeBench, openBench } from "./lib/cluster.js";
import type { Bench } from "./lib/cluster.js";
import { int, now, ratio, sec, table } from "./lib/format.js";
import { checkInterrupt, runBench } from "./lib/interrupt.js";
import { decodePngBytes } from "./lib/png.js";

const USAGE = `usage: node dist/bench/batch-steps.js [options]
  --models N     generated glTF models (default 200; every 4th is an empty scene, which fails alike in both)
  --size PX      width and height of each pass (default 128)
  --samples N    Cycles samples per pixel (default 4)
  --only LIST    batch,per-item (default both; the comparison needs both)
  --up           run scripts/cluster/up.sh first even when the cluster answers
  --no-up        never run scripts/cluster/up.sh`;

/** Batch steps must be at least this much faster than one Blender per model and pass (issue 15). */
const GOAL = 8;
const MAP = "batch_thumbnails.thumbs";
const PASSES = ["textured", "normal", "depth", "edges"] as const;

interface StepState {
  success: boolean;
  failure: string | null;
  timestamp?: string;
  duration_s?: number;
  outputs: { published?: Record<string, string> };
}

interface Variant {
  name: string;
  run: CliRun;
  runId: string | null;
  states: Record<string, StepState>;
  home: string;
}

async function submit(bench: Bench, name: string, spec: string, set: string[]): Promise<Variant> {
  checkInterrupt();
  process.stderr.write(`${name}: hpcpipe submit --wait --pull ...\n`);
  const home = join(bench.dir, `home-${name}`);
  const run = await runCliChild(["submit", spec, "--cluster", bench.config, ...set, "--wait", "--json", "--pull", "--to", home], {
    home: bench.home,
    cwd: bench.dir,
    logBase: join(bench.dir, name),
  });
  if (run.code !== 0) process.stderr.write(`${name}: exit ${run.code}\n${run.stderr.slice(-3000)}\n`);
  let states: Record<string, StepState> = {};
  try {
    states = (JSON.parse(run.stdout) as { step_states?: Record<string, StepState> }).step_states ?? {};
  } catch {
    process.stderr.write(`${name}: no JSON result on stdout\n`);
  }
  return { name, run, runId: submittedRunId(run.stderr), states, home };
}

/** Seconds from the first step state's start to the last one's end: the time the jobs worked (the rest of
 * the wall time is the client's: upload, submission, queueing, polling, collect, pull). */
function workSpan(v: Variant): number | null {
  let first = Infinity;
  let last = -Infinity;
  for (const s of Object.values(v.states)) {
    const t = s.timestamp === undefined ? NaN : Date.parse(s.timestamp);
    if (!Number.isFinite(t) || typeof s.duration_s !== "number") continue;
    first = Math.min(first, t);
    last = Math.max(last, t + s.duration_s * 1000);
  }
  return Number.isFinite(first) && last >= first ? (last - first) / 1000 : null;
}

/** Per-item states as compared: outcome, failure kind, published values (the run id blanked). */
function comparable(v: Variant): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, s] of Object.entries(v.states)) {
    if (!key.startsWith(`${MAP}.`)) continue;
    const published = JSON.stringify(s.outputs.published ?? {});
    out.set(key, JSON.stringify({ success: s.success, failure: s.failure, published: v.runId ? published.replaceAll(v.runId, "RUN") : published }));
  }
  return out;
}

function compareImages(a: Variant, b: Variant, n: number): { compared: number; identical: number; missing: number; differing: string[] } {
  let compared = 0;
  let identical = 0;
  let missing = 0;
  const differing: string[] = [];
  for (let i = 0; i < n; i++) {
    for (const pass of [...PASSES, "sheet"]) {
      const rel = join("out", MAP, String(i), `${pass}.png`);
      const fa = join(a.home, rel);
      const fb = join(b.home, rel);
      if (!existsSync(fa) || !existsSync(fb)) {
        if (existsSync(fa) !== existsSync(fb)) missing++;
        continue;
      }
      compared++;
      const ia = decodePngBytes(readFileSync(fa), fa);
      const ib = decodePngBytes(readFileSync(fb), fb);
      const same = ia.width === ib.width && ia.height === ib.height && ia.channels === ib.channels && Buffer.compare(Buffer.from(ia.data), Buffer.from(ib.data)) === 0;
      if (same) identical++;
      else differing.push(rel);
    }
  }
  return { compared, identical, missing, differing };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { ...COMMON_OPTIONS, models: { type: "string", default: "200" }, size: { type: "string", default: "128" }, samples: { type: "string", default: "4" } },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const models = wholeNumber("models", values.models, 1, USAGE);
  const size = wholeNumber("size", values.size, 16, USAGE);
  const samples = wholeNumber("samples", values.samples, 1, USAGE);
  const chosen = chosenSections(values.only, ["batch", "per-item"] as const, USAGE);
  const bench = openBench("batch-steps", { up: values.up, noUp: values["no-up"] });
  const t0 = now();
  try {
    process.stderr.write(`generating ${int(models)} models...\n`);
    const batchDir = join(bench.dir, "batch");
    await writeThumbnailBatch(batchDir, models);
    const perItemDir = join(bench.dir, "per-item");
    cpSync(batchDir, perItemDir, { recursive: true });
    const spec = readFileSync(join(batchDir, "pipeline.yaml"), "utf8");
    const batchSteps = spec.match(/^\s+batch: true$/gm)?.length ?? 0;
    if (batchSteps !== PASSES.length + 1) throw new Error(`expected ${PASSES.length + 1} batch steps in the example (the passes and the sheet), found ${batchSteps}`);
    writeFileSync(join(perItemDir, "pipeline.yaml"), spec.replace(/^(\s+)batch: true$/gm, "$1batch: false"));
    const set = ["--set", `size=${size}`, "--set", `samples=${samples}`];

    const variants: Variant[] = [];
    if (chosen("batch")) variants.push(await submit(bench, "batch", join(batchDir, "pipeline.yaml"), set));
    if (chosen("per-item")) variants.push(await submit(bench, "per-item", join(perItemDir, "pipeline.yaml"), set));

    const itemsOk = (v: Variant): number => Object.entries(v.states).filter(([k, s]) => new RegExp(`^${MAP.replaceAll(".", "\\.")}\\.\\d+$`).test(k) && s.success).length;
    const sheets = (v: Variant): number => Object.entries(v.states).filter(([k, s]) => k.endsWith(".sheet") && s.success).length;
    const passRuns = (v: Variant): number => Object.keys(v.states).filter((k) => PASSES.some((p) => k.endsWith(`.${p}`))).length;
    const sheetRuns = (v: Variant): number => Object.keys(v.states).filter((k) => k.endsWith(".sheet")).length;
    const tasks = Math.ceil(models / 50);
    const isBatch = (v: Variant): boolean => v.name === "batch";
    const span = (v: Variant): string => {
      const w = workSpan(v);
      return w === null ? "-" : `${sec(w)} (the rest: upload, queue, polls, collect, pull)`;
    };

    console.log(`\nbatch thumbnails: ${int(models)} generated models x ${PASSES.length} passes at ${size} px, ${samples} samples (Cycles, CPU), 50 models per array task`);
    table(
      ["", ...variants.map((v) => (isBatch(v) ? "batch steps" : "one Blender per model and pass"))],
      [
        ["wall time: hpcpipe submit --wait --pull (CLI child, default settings)", ...variants.map((v) => sec(v.run.s))],
        ["of which the jobs worked (first step start to last step end)", ...variants.map(span)],
        ["exit status", ...variants.map((v) => String(v.run.code))],
        [
          "Blender processes for the passes",
          ...variants.map((v) => (isBatch(v) ? `${int(tasks * PASSES.length)} (${PASSES.length} per array task)` : `${int(passRuns(v))} (one per model and pass)`)),
        ],
        ["ffmpeg processes for the contact sheets", ...variants.map((v) => (isBatch(v) ? `${int(tasks)} (one per array task)` : `${int(sheetRuns(v))} (one per model)`))],
        ["contact sheets made", ...variants.map((v) => int(sheets(v)))],
        ["map items succeeded (empty scenes fail in both)", ...variants.map((v) => int(itemsOk(v)))],
        ["run", ...variants.map((v) => v.runId ?? "-")],
      ],
      [0],
    );
    const [batch, perItem] = variants;
    if (variants.length === 2 && batch !== undefined && perItem !== undefined) {
      const a = comparable(batch);
      const b = comparable(perItem);
      const keys = [...new Set([...a.keys(), ...b.keys()])];
      const sameStates = keys.filter((k) => a.get(k) === b.get(k)).length;
      const images = compareImages(batch, perItem, models);
      const r = perItem.run.s / batch.run.s;
      console.log(`\nspeed-up (per item / batch): ${ratio(perItem.run.s, batch.run.s)}; goal >= ${GOAL}x: ${r >= GOAL ? "met" : "NOT met"}`);
      const wa = workSpan(batch);
      const wb = workSpan(perItem);
      if (wa !== null && wb !== null) console.log(`the jobs alone (first step start to last step end): ${ratio(wb, wa)}`);
      console.log(
        `images identical pixel by pixel: ${int(images.identical)} of ${int(images.compared)} compared` +
          `${images.missing > 0 ? `, ${images.missing} present in one run only` : ""}${images.differing.length > 0 ? `; differing: ${images.differing.slice(0, 5).join(", ")}${images.differing.length > 5 ? ", ..." : ""}` : ""}: ` +
          `${images.compared > 0 && images.identical === images.compared && images.missing === 0 ? "yes" : "NO"}`,
      );
      console.log(`per-item states identical (success, failure kind, published values): ${int(sameStates)} of ${int(keys.length)}: ${sameStates === keys.length && keys.length > 0 ? "yes" : "NO"}`);
    } else {
      console.log("\n(one variant only: no speed-up or comparison)");
    }
  } finally {
    await closeBench(bench);
  }
  console.log(`\ntotal benchmark time: ${sec(now() - t0)}`);
}

await runBench(main);
