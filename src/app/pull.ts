/**
 * `hpcpipe pull RUN [PATTERN...] [--to DIR]`: the run's declared outputs (the
 * files its steps' states list under `outputs.files`), all or those matching
 * the patterns, fetched in ONE round trip (src/store/pull.ts). A run not yet
 * collected is collected first, over the same connection.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { RunStateError } from "../runs/index.js";
import { declaredOutputs, outputGlob, StoreError } from "../store/index.js";
import type { PullOptions, PullOutcome } from "../store/index.js";
import { collectRun } from "./collect.js";
import type { RunContext } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { executorOf } from "./slurm-executor.js";
import { preview } from "../core/preview.js";

const resultSchema = z.object({ step_states: z.record(z.string(), z.object({ outputs: z.unknown().optional() }).passthrough()).default({}) }).passthrough();

export interface PullRunOutcome extends PullOutcome {
  /** Output paths that matched and were asked for. */
  asked: string[];
  /** Absolute or escaping output paths of the run, never fetched. */
  outside: string[];
  /** Where the files went. */
  to: string;
}

/** The step states of the run's merged result: the local result.json when collected, else a collect now. */
async function stepStates(run: RunExecutor): Promise<Record<string, { outputs?: unknown }>> {
  if (run.record.phase === "collected") {
    const path = run.store.resultPath(run.record.run_id);
    try {
      const parsed = resultSchema.safeParse(JSON.parse(await readFile(path, "utf8")));
      if (parsed.success) return parsed.data.step_states;
    } catch {
      // unreadable: collect again below
    }
  }
  const collected = await collectRun(run);
  return collected.state.step_states ?? {};
}

/** `states`: the step states of a result just collected (`submit --wait --pull`), so they are not fetched again. */
export async function pullRun(context: RunContext | RunExecutor, patterns: readonly string[], options: PullOptions, states?: Readonly<Record<string, { outputs?: unknown }>>): Promise<PullRunOutcome> {
  const run = executorOf(context);
  const { paths, outside } = declaredOutputs(states ?? (await stepStates(run)));
  if (paths.length === 0) throw new RunStateError(`run ${run.record.run_id} has no declared outputs that its steps produced (declare them with \`outputs:\` on the steps)`, run.record.run_id);
  let asked = paths;
  if (patterns.length > 0) {
    const res = patterns.map((p) => ({ p, re: outputGlob(p) }));
    const unmatched = res.filter(({ re }) => !paths.some((path) => re.test(path))).map(({ p }) => p);
    if (unmatched.length > 0) {
      const shown = paths.slice(0, 20).join(", ");
      throw new StoreError(`no output of run ${run.record.run_id} matches ${unmatched.map((p) => preview(p)).join(", ")}; its outputs are: ${shown}${paths.length > 20 ? `, and ${paths.length - 20} more` : ""}`);
    }
    asked = paths.filter((path) => res.some(({ re }) => re.test(path)));
  }
  const outcome = await run.pull(asked, options);
  return { ...outcome, asked, outside, to: options.to };
}
