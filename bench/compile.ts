// Prints how long the compiler takes to compile and render plans (a 1,000-job
// pipeline, a 10,000-item map) and the local executor's overhead per task on
// 200 trivial tasks, against a baseline of spawning `bash -c true` 200 times
// with the same concurrency. Prints figures only; never asserts on them.
// Run after a build: `node dist/bench/compile.js`.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { templateRenderer } from "../src/app/renderer.js";
import { compile } from "../src/compiler/compile.js";
import type { Renderer } from "../src/compiler/compile.js";
import { LOCAL_TARGET_DEFAULTS } from "../src/compiler/target.js";
import type { CompileTarget } from "../src/compiler/target.js";
import { Pipeline } from "../src/core/index.js";
import { runPlanLocally } from "../src/local/index.js";
import type { CompiledPlan } from "../src/plan/plan.js";
import { CommandStep, MapStep } from "../src/spec/index.js";

const GOAL_1000_JOBS_S = 0.5;
const TASKS = 200;

/** 1,000 steps that each get their own job (`fuse: false`), with a requirement chain so needs are resolved too. */
function thousandJobs(fuse: boolean): Pipeline {
  const steps = Array.from(
    { length: 1000 },
    (_, i) =>
      new CommandStep({
        name: `s${String(i).padStart(4, "0")}`,
        command: `echo "v${i + 1}=$v${i}" >> "$HPCPIPE_PUBLISH"`,
        requires: [`v${i}`],
        provides: [`v${i + 1}`],
        resources: { cpus: 1, time: "5:00" },
        fuse,
      }),
  );
  return new Pipeline({ name: "thousand", steps });
}

function tenThousandItems(): Pipeline {
  const items = Array.from({ length: 10_000 }, (_, i) => `models/m${String(i).padStart(5, "0")}.glb`);
  const check = new CommandStep({ name: "check", command: 'test -n "$model"', requires: ["model"], resources: { cpus: 1, time: "1:00" } });
  return new Pipeline({ name: "batch", steps: [new MapStep({ name: "check_all", items, as: "model", concurrency: 200, steps: [check] })] });
}

function trivialTasks(): Pipeline {
  const items = Array.from({ length: TASKS }, (_, i) => `i${i}`);
  return new Pipeline({ name: "trivial", steps: [new MapStep({ name: "fan", items, steps: [new CommandStep({ name: "noop", command: "true" })] })] });
}

const noopRenderer: Renderer = { job: () => "", submit: () => "", lib: () => "" };

function target(workdir: string): CompileTarget {
  return { ...LOCAL_TARGET_DEFAULTS, workdir };
}

function compileOnce(root: Pipeline, context: Record<string, string>, renderer: Renderer, workdir: string, runId = "bench"): CompiledPlan {
  return compile({ root, context, runId, target: target(workdir), renderer });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/**
 * Median seconds of `rounds` runs of `fn` after one warm-up run. Each run gets
 * a fresh tree from `build` (not timed): signatures and item digests are cached
 * per step object, and a real `hpcpipe plan` compiles a tree it just built.
 */
function timeCompile<T>(build: () => T, fn: (tree: T) => unknown, rounds: number): number {
  fn(build());
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const tree = build();
    const t0 = process.hrtime.bigint();
    fn(tree);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(times);
}

/** Spawns `bash -c true` `count` times, at most `concurrency` at once; resolves with the wall time in seconds. */
async function spawnBaseline(count: number, concurrency: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      await new Promise<void>((resolve, reject) => {
        const child = spawn("bash", ["-c", "true"], { stdio: "ignore" });
        child.once("error", reject);
        child.once("exit", () => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Runs the trivial plan with the local executor in a fresh run directory; wall time in seconds (bundle, tasks, merge). */
async function executorRun(base: string, round: number, cpus: number): Promise<number> {
  const workdir = join(base, `exec-${round}`);
  const plan = compileOnce(trivialTasks(), {}, templateRenderer(), workdir);
  const t0 = process.hrtime.bigint();
  const result = await runPlanLocally(plan, { runDir: plan.layout.runDir, cpus });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!result.state.success) throw new Error(`benchmark run failed: ${result.state.error}`);
  await rm(workdir, { recursive: true, force: true });
  return s;
}

const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`;

async function main(): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), "hpcpipe-bench-compile-"));
  try {
    const renderer = templateRenderer();
    const workdir = join(base, "runs");
    const rounds = 5;

    // ---- compile + render
    const ctx = { v0: "start" };
    const cases: Array<[string, () => Pipeline, Record<string, string>]> = [
      ["1,000 steps, fuse: false", () => thousandJobs(false), ctx],
      ["1,000 steps, fused", () => thousandJobs(true), ctx],
      ["map of 10,000 items", tenThousandItems, {}],
    ];
    const rows: Array<[string, number, number, number]> = cases.map(([label, build, c]) => [
      label,
      compileOnce(build(), c, renderer, workdir).jobs.length,
      timeCompile(build, (tree) => compileOnce(tree, c, noopRenderer, workdir), rounds),
      timeCompile(build, (tree) => compileOnce(tree, c, renderer, workdir), rounds),
    ]);
    console.log(`compile + render (median of ${rounds} after a warm-up; a freshly built tree each time)`);
    console.log("plan                      | jobs | compile only (no-op renderer) | compile + render | render share");
    console.log("--------------------------|------|-------------------------------|------------------|-------------");
    for (const [label, jobs, compileOnly, full] of rows) {
      const share = full > 0 ? `${(((full - compileOnly) / full) * 100).toFixed(0)}%` : "-";
      console.log(`${label.padEnd(26)}| ${String(jobs).padStart(4)} | ${ms(compileOnly).padStart(29)} | ${ms(full).padStart(16)} | ${share.padStart(11)}`);
    }
    const thousandS = rows[0]?.[3] ?? NaN;
    console.log(
      `goal: 1,000 jobs compiled and rendered in under ${GOAL_1000_JOBS_S} s -> ${thousandS.toFixed(3)} s ` +
        `(${thousandS < GOAL_1000_JOBS_S ? "met" : "NOT met"}, ${(GOAL_1000_JOBS_S / thousandS).toFixed(1)}x headroom)`,
    );

    // ---- local executor overhead
    const cpus = Math.max(2, availableParallelism());
    const execRounds = 3;
    const baseline: number[] = [];
    const executor: number[] = [];
    await spawnBaseline(20, cpus); // warm-up
    await executorRun(base, -1, cpus); // warm-up
    for (let r = 0; r < execRounds; r++) {
      baseline.push(await spawnBaseline(TASKS, cpus));
      executor.push(await executorRun(base, r, cpus));
    }
    const b = median(baseline);
    const e = median(executor);
    console.log(`\nlocal executor: ${TASKS} trivial tasks (a map, each item running \`true\`), ${cpus} at once (median of ${execRounds})`);
    console.log("what                                         | wall       | per task  | ratio");
    console.log("---------------------------------------------|------------|-----------|------");
    console.log(`${"baseline: spawn `bash -c true`".padEnd(45)}| ${ms(b).padStart(10)} | ${ms(b / TASKS).padStart(9)} | 1.0x`);
    console.log(`${"local executor (bundle + tasks + merge)".padEnd(45)}| ${ms(e).padStart(10)} | ${ms(e / TASKS).padStart(9)} | ${(e / b).toFixed(1)}x`);
    console.log(`overhead per task over the baseline: ${ms((e - b) / TASKS)} (job script + lib.sh + the step's own bash + 2 state files + merge)`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

await main();
