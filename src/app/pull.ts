/**
 * `hpcpipe pull RUN [PATTERN...] [--to DIR]`: the run's declared outputs (the
 * files its steps' states list under `outputs.files`), all or those matching
 * the patterns, fetched in ONE round trip (src/store/pull.ts). A run not yet
 * collected is collected first, over the same connection.
 */
import type { CompletedState } from "../core/completed-state.js";
import { itemLinesOf } from "../core/item-lines.js";
import { mapItemStates } from "../core/map-items.js";
import { readResultFile } from "../core/result-file.js";
import { RunStateError } from "../runs/index.js";
import { declaredOutputs, outputGlob, StoreError } from "../store/index.js";
import type { PullOptions, PullOutcome } from "../store/index.js";
import { collectRun } from "./collect.js";
import type { RunContext } from "./connect.js";
import type { RunExecutor } from "./executor.js";
import { executorOf } from "./slurm-executor.js";
import { preview } from "../core/preview.js";


export interface PullRunOutcome extends PullOutcome {
  /** Output paths that matched and were asked for. */
  asked: string[];
  /** Absolute or escaping output paths of the run, never fetched. */
  outside: string[];
  /** Where the files went. */
  to: string;
}

/** The step states of a result that declare output files; a large map's items read from its lines file. */
export function outputStates(result: CompletedState): Record<string, { outputs?: unknown }> {
  const out: Record<string, { outputs?: unknown }> = { ...result.step_states };
  const hasFiles = (s: CompletedState): boolean => Array.isArray((s.outputs as { files?: unknown }).files);
  for (const [key, s] of Object.entries(result.step_states ?? {})) {
    if (itemLinesOf(s) === null) continue;
    for (const item of mapItemStates(result, key)) {
      if (item.state !== null && hasFiles(item.state)) out[`${key}.${item.index}`] = item.state;
      for (const [k, v] of Object.entries(item.steps)) if (hasFiles(v)) out[`${key}.${item.index}.${k}`] = v;
    }
  }
  return out;
}

/** The step states of the run's merged result: the local result.json when collected, else a collect now. */
async function stepStates(run: RunExecutor): Promise<Record<string, { outputs?: unknown }>> {
  if (run.record.phase === "collected") {
    const path = run.store.resultPath(run.record.run_id);
    const result = await readResultFile(path).catch(() => null);
    // Unreadable: collect again below.
    if (result !== null) return outputStates(result);
  }
  const collected = await collectRun(run);
  return outputStates(collected.state);
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
