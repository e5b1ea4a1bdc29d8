// Prints the in-process overhead per step of the pipeline core:
// a 10,000-step pipeline nested three deep and a parallel group of 1,000
// trivial children, with logging silent and with logging to a file.
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompletedState, Pipeline, PipelineStep, StepGroup, createLogger, silentLogger } from "../src/index.js";
import type { Context, Logger } from "../src/index.js";

class Noop extends PipelineStep {
  override async run(_context: Context): Promise<CompletedState> {
    return CompletedState.ok();
  }
}

/** 10 x 10 x 100 leaves under three levels of pipelines: 10,000 steps. */
function nestedPipeline(): Pipeline {
  const outer: Pipeline[] = [];
  for (let a = 0; a < 10; a++) {
    const mid: Pipeline[] = [];
    for (let b = 0; b < 10; b++) {
      const leaves = Array.from({ length: 100 }, (_, c) => new Noop({ name: `s${c}` }));
      mid.push(new Pipeline({ name: `p${b}`, steps: leaves }));
    }
    outer.push(new Pipeline({ name: `g${a}`, steps: mid }));
  }
  return new Pipeline({ name: "root", steps: outer });
}

function parallelGroup(): Pipeline {
  const children = Array.from({ length: 1000 }, (_, i) => new Noop({ name: `c${i}` }));
  return new Pipeline({ name: "root", steps: [new StepGroup({ name: "fan", parallel: true, steps: children })] });
}

async function measure(build: () => Pipeline, steps: number, logger: Logger, rounds: number): Promise<number> {
  const timings: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const pipeline = build();
    const t0 = process.hrtime.bigint();
    const state = await pipeline.run({}, { logger });
    const ns = Number(process.hrtime.bigint() - t0);
    if (!state.success) throw new Error(`benchmark pipeline failed: ${state.error}`);
    timings.push(ns / 1000 / steps);
  }
  timings.sort((a, b) => a - b);
  return timings[Math.floor(timings.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "hpcpipe-bench-"));
  const logPath = join(dir, "pipeline.log");
  const fileLogger = createLogger({ destination: logPath });
  const cases: Array<[string, () => Pipeline, number]> = [
    ["10,000 steps, nested 3 deep", nestedPipeline, 10_000],
    ["parallel group of 1,000", parallelGroup, 1_000],
  ];
  await measure(nestedPipeline, 10_000, silentLogger, 2); // warm-up
  console.log("case                          | logging | µs/step (median of 5)");
  console.log("------------------------------|---------|----------------------");
  const rows: number[] = [];
  for (const [label, build, steps] of cases) {
    for (const [mode, logger] of [["silent", silentLogger], ["file", fileLogger]] as const) {
      const us = await measure(build, steps, logger, 5);
      rows.push(us);
      console.log(`${label.padEnd(30)}| ${mode.padEnd(8)}| ${us.toFixed(2)}`);
    }
  }
  const logSize = (await stat(logPath)).size;
  console.log(`\nlog file written: ${(logSize / 1e6).toFixed(1)} MB; goal: under 20 µs/step silent`);
  console.log(`file logging costs ${((rows[1] ?? 0) / (rows[0] ?? 1)).toFixed(1)}x silent (nested case)`);
  await rm(dir, { recursive: true, force: true });
}

await main();
