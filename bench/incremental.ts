// bench/incremental: the step cache across runs (src/cache), on the test cluster, timed as a user feels
// it: `hpcpipe submit --wait` as a CLI child process with its default settings, start to exit.
//   The batch validation of N generated glTF models (default 2,000; examples/batch-validate), side by
//   side in one sitting, into ONE store:
//     1. a full run (the store and the cache are empty);
//     2. a rerun with nothing changed;
//     3. a rerun with 5 models changed (their bytes);
//     4. a full run of the changed batch with --no-cache: what run 3 must equal.
//   For runs 2 and 3: the bytes of models sent (none of the unchanged ones), and their merged results
//   compared field by field with runs 1 and 4, ignoring only what differs between any two runs:
//   timestamps, durations, job ids (meta.slurm), hosts (meta.host), the `cached` marker, and the
//   run id at the root.
// Prints figures only; asserts nothing (the machine and the cluster are shared: times are noisy).
// Run after a build: `npm run build && node dist/bench/incremental.js [--models N] [--reruns K] [--no-compare] [--no-up]`.
//   --reruns K repeats run 2 K times (its figure is then the median) and prints, for each, when the
//   CLI sent each remote command (seconds after the child was spawned): where the time goes.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeBatch } from "../examples/batch-validate/generate.js";
import { COMMON_OPTIONS, wholeNumber } from "./lib/args.js";
import { runCliChild } from "./lib/cli-child.js";
import { closeBench, openBench } from "./lib/cluster.js";
import { int, median, ratio, sec, spread, table } from "./lib/format.js";
import { runBench } from "./lib/interrupt.js";

const USAGE = "usage: node dist/bench/incremental.js [--models N] [--reruns K] [--no-compare] [--no-up]";

/** What the comparison ignores: present in every state, different in every run. */
export const IGNORED = ["timestamp", "duration_s", "meta.slurm", "meta.host", "meta.cached", "meta.run_id (root)"] as const;

interface StateView {
  success: boolean;
  meta: Record<string, unknown>;
  step_states?: Record<string, StateView>;
  [field: string]: unknown;
}

/** A state without the ignored fields. */
function comparable(s: StateView): unknown {
  const { timestamp: _t, duration_s: _d, step_states: _s, meta, ...rest } = s;
  const { slurm: _slurm, host: _host, cached: _cached, run_id: _run, ...keep } = meta;
  return { ...rest, meta: keep };
}

/** Keys whose states differ (beyond the ignored fields), and keys only one side has. */
function differences(a: StateView, b: StateView): string[] {
  const out: string[] = [];
  if (JSON.stringify(comparable(a)) !== JSON.stringify(comparable(b))) out.push("(root)");
  const sa = a.step_states ?? {};
  const sb = b.step_states ?? {};
  for (const key of new Set([...Object.keys(sa), ...Object.keys(sb)])) {
    const x = sa[key];
    const y = sb[key];
    if (x === undefined || y === undefined) out.push(`${key} (only in one)`);
    else if (JSON.stringify(comparable(x)) !== JSON.stringify(comparable(y))) out.push(key);
  }
  return out;
}

function sentFigure(stderr: string): string {
  const m = /bundle: (\d+) file\(s\); (\d+) blob\(s\) already in the store.*; sending (\d+) \(([^)]+)\)/.exec(stderr);
  return m ? `${int(Number(m[3]))} blob(s), ${m[4]}` : "?";
}

function restoredFigure(stderr: string): string {
  const m = /step cache: (\d+) of (\d+) step\(s\) restored/.exec(stderr);
  return m ? `${int(Number(m[1]))} of ${int(Number(m[2]))}` : "-";
}

await runBench(async () => {
  const { values } = parseArgs({ options: { ...COMMON_OPTIONS, models: { type: "string" }, reruns: { type: "string" }, "no-compare": { type: "boolean" } }, allowPositionals: false });
  const n = values.models === undefined ? 2000 : wholeNumber("--models", values.models, 6, USAGE);
  const reruns = values.reruns === undefined ? 1 : wholeNumber("--reruns", values.reruns, 1, USAGE);
  const bench = openBench("incremental", { noUp: values["no-up"] === true });
  try {
    const dir = join(bench.dir, "batch");
    process.stderr.write(`generating ${int(n)} models...\n`);
    await writeBatch(dir, n, { brokenEvery: 0 });
    const spec = join(dir, "pipeline.yaml");
    interface Row {
      what: string;
      s: number;
      sent: string;
      restored: string;
      jobs: string;
      code: number | null;
      result: StateView | null;
      /** When each remote command was sent, seconds after the spawn. */
      timeline: string;
    }
    const submit = async (what: string, ...flags: string[]): Promise<Row> => {
      process.stderr.write(`${what}...\n`);
      const t0 = Date.now() / 1000;
      const run = await runCliChild(["submit", spec, "--cluster", bench.config, "--wait", ...flags], { home: bench.home, cwd: bench.dir, logBase: join(bench.dir, what.replace(/\W+/g, "-")) });
      const id = /(?:submitted run|^run) (\S+):/m.exec(run.stdout + run.stderr)?.[1];
      let result: StateView | null = null;
      if (id) result = JSON.parse(readFileSync(join(bench.home, "runs", id, "result.json"), "utf8")) as StateView;
      else process.stderr.write(`${what}: no run id; exit ${run.code}\n${run.stderr.slice(-2000)}\n`);
      const jobs = /submitting (\d+) job\(s\)/.exec(run.stderr)?.[1] ?? (/nothing to submit/.test(run.stderr) ? "0" : "?");
      const timeline = run.calls.map((c) => `${c.kind} @${(c.t - t0).toFixed(2)}`).join(", ");
      return { what, s: run.s, sent: sentFigure(run.stderr), restored: restoredFigure(run.stderr), jobs, code: run.code, result, timeline };
    };
    const full = await submit("1. full run (empty store and cache)");
    const sames: Row[] = [];
    for (let k = 0; k < reruns; k += 1) sames.push(await submit(reruns === 1 ? "2. rerun, nothing changed" : `2. rerun, nothing changed (${k + 1} of ${reruns})`));
    const same = sames[0] as Row;
    const sameS = median(sames.map((r) => r.s));
    // 5 models change (their bytes; the list and the layout stay).
    const models = readFileSync(join(dir, "models.txt"), "utf8").trim().split("\n");
    const changed = [3, Math.floor(n / 5), Math.floor(n / 2), Math.floor((4 * n) / 5), n - 1].filter((x, k, all) => all.indexOf(x) === k);
    for (const i of changed) {
      const file = join(dir, models[i] as string);
      writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from(" ")]));
    }
    const five = await submit(`3. rerun, ${changed.length} models changed`);
    // --no-compare: leave out run 4 (another full run) when only the reruns' times are wanted.
    const fullChanged = values["no-compare"] === true ? null : await submit(`4. full run of the changed batch (--no-cache)`, "--no-cache");
    const rows = fullChanged ? [full, ...sames, five, fullChanged] : [full, ...sames, five];
    console.log(`\n${int(n)} models (examples/batch-validate); each row is a whole \`hpcpipe submit --wait\` as a CLI child process, start to exit`);
    table(
      ["run", "wall time", "jobs", "steps restored", "models sent", "exit"],
      rows.map((r) => [r.what, sec(r.s), r.jobs, r.restored, r.sent, String(r.code)]),
      [0],
    );
    console.log(`nothing changed: ${reruns === 1 ? sec(sameS) : `${spread(sames.map((r) => r.s))} (median [min-max] of ${reruns})`} (goal < 5 s), ${ratio(full.s, sameS)} the full run; ${changed.length} changed: ${sec(five.s)} (goal < 15 s)${fullChanged ? `, ${ratio(fullChanged.s, five.s)} the full run` : ""}`);
    const compare = (label: string, a: Row, b: Row): void => {
      if (!a.result || !b.result) {
        console.log(`${label}: cannot compare (a run has no result)`);
        return;
      }
      const diff = differences(a.result, b.result);
      const states = Object.keys(a.result.step_states ?? {}).length;
      console.log(`${label}: ${diff.length === 0 ? `equal, ${int(states)} step states field by field` : `${diff.length} of ${int(states)} states differ: ${diff.slice(0, 10).join(", ")}`}`);
    };
    for (const r of [...sames, five]) console.log(`${r.what}: remote commands sent at (s after spawn; exit at ${r.s.toFixed(2)}): ${r.timeline}`);
    console.log(`ignored in the comparison: ${IGNORED.join(", ")}`);
    compare("run 2 vs run 1", same, full);
    if (fullChanged) compare("run 3 vs run 4", five, fullChanged);
  } finally {
    await closeBench(bench);
  }
});
