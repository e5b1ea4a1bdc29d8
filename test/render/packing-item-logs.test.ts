/**
 * The job log of a packed map task, with real bash: each item's own outcome
 * is logged, whatever happened to the items before it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { packedMapJob, step } from "./fixtures.js";
import { arrayEnv, makeRun, readState, removeRun, runScript, writeJob } from "./harness.js";
import type { Run } from "./harness.js";

let runs: Run[] = [];
afterEach(() => {
  for (const r of runs) removeRun(r);
  runs = [];
});

describe("a packed map task's log", () => {
  for (const continueOnItemError of [false, true]) {
    it(`says 'failed' only for the item that failed, not for the items that ran after it${continueOnItemError ? " (continue_on_item_error)" : ""}`, async () => {
      const items = ["a", "b", "c", "d", "e"];
      const run = makeRun({ items: { m: items } });
      runs.push(run);
      // One item at a time (SLURM_CPUS_PER_TASK 1), so items 2-4 start after item 1 has failed.
      const job = packedMapJob("m", "it", [step("m.{i}.s", '[ "$it" != b ] || exit 5')], { itemsPerTask: 5 }, { count: 1 }, { continueOnItemError });
      const res = await runScript(run, writeJob(run, job), { ...arrayEnv(0), SLURM_CPUS_PER_TASK: "1" });
      expect(res.code).toBe(continueOnItemError ? 0 : 1);
      for (const [i, item] of items.entries()) expect(readState(run, `m.${i}`).success).toBe(item !== "b");
      const failedLines = res.stderr.split("\n").filter((l) => /item \d+: failed/.test(l));
      expect(failedLines).toEqual(continueOnItemError ? [] : ["hpcpipe: item 1: failed"]);
    });
  }
});
