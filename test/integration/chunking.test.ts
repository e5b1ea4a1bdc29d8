/**
 * Chunking through the real pieces on the local executor: a map of 2,500
 * items on a cluster whose MaxArraySize is 1001, with a throttle of 40,
 * becomes three arrays indexed from 0 with offsets 0, 1001 and 2002, every
 * item runs exactly once, and no more than 40 tasks ever run at once across
 * the three arrays (measured from the executor's own task events).
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodeFrom, mapItemStates } from "../../src/core/index.js";
import type { CompiledRun } from "./helpers.js";
import { maxConcurrency, runCompiled, tempBase, writeLocalCluster, writeYaml } from "./helpers.js";

const ITEMS = 2_500;
const THROTTLE = 40;
const items = Array.from({ length: ITEMS }, (_, i) => `item-${i}`);

let base: { dir: string; cleanup: () => void };
let run: CompiledRun;

beforeAll(async () => {
  base = tempBase("hpcpipe-chunking-");
  const cluster = writeLocalCluster(base.dir, "chunky", { max_array_size: 1001, signal_grace_s: 10 });
  const spec = writeYaml(base.dir, "chunks", {
    name: "chunks",
    steps: [
      {
        map: "fan",
        items,
        throttle: THROTTLE,
        // A short sleep keeps tasks overlapping so the throttle, not the task length, bounds concurrency.
        steps: [{ step: "work", run: 'sleep 0.02; test "$item" = "item-$HPCPIPE_TASK"', requires: ["item"] }],
      },
    ],
  });
  // 64 CPUs: the CPU cap must not be what limits concurrency; the throttle must.
  run = await runCompiled({ spec, cluster, runId: "chunking", cpus: 64 });
}, 180_000);
afterAll(() => base.cleanup());

describe("a map of 2,500 items on a cluster with MaxArraySize 1001 and throttle 40", () => {
  it("is compiled into three arrays indexed from 0 with offsets 0, 1001 and 2002 and throttles that add up to 40", () => {
    const jobs = run.prepared.plan.jobs;
    expect(jobs.map((j) => j.array?.offset)).toEqual([0, 1001, 2002]);
    expect(jobs.map((j) => j.array?.count)).toEqual([1001, 1001, 498]);
    const throttles = jobs.map((j) => j.array?.throttle ?? 0);
    expect(throttles.reduce((a, b) => a + b, 0)).toBe(THROTTLE);
    // The rendered scripts ask SLURM for 0-based indices with their share of the throttle, and add the offset themselves.
    jobs.forEach((job, k) => {
      const count = job.array?.count ?? 0;
      expect(job.script).toContain(`#SBATCH --array=0-${count - 1}%${throttles[k]}`);
      expect(job.script).toMatch(new RegExp(`^hp_job_begin '?${job.id}'? '?${job.array?.offset}'? '?1'?$`, "m"));
    });
  });

  it("runs every task under its 0-based SLURM task id and its logical index (task id + offset)", () => {
    const started = run.events.filter((e) => e.type === "task-started");
    expect(started).toHaveLength(ITEMS);
    const jobs = run.prepared.plan.jobs;
    jobs.forEach((job) => {
      const mine = started.filter((e) => e.job === job.id);
      const count = job.array?.count ?? 0;
      expect(mine.map((e) => e.taskId).sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i));
      for (const e of mine) expect(e.task).toBe(e.taskId + (job.array?.offset ?? 0));
    });
    expect(new Set(started.map((e) => e.task)).size).toBe(ITEMS);
  });

  it("records every item's state, each with its own item, and succeeds", () => {
    const state = run.outcome.state;
    expect(exitCodeFrom(state), state.error ?? "").toBe(0);
    // 2,500 items are more than a result keeps inline: the map's items are read through the iterator
    // (from result.items.jsonl beside result.json), as code reads them whatever the size.
    const seen = [...mapItemStates(state, "chunks.fan")];
    expect(seen.map((e) => e.index)).toEqual(Array.from({ length: ITEMS }, (_, i) => i));
    for (const { index: i, item, state: unit, steps } of seen) {
      expect(steps.work?.success, `item ${i}`).toBe(true);
      expect(steps.work?.meta.item).toBe(items[i]);
      expect(item).toBe(items[i]);
      expect(unit?.success, `unit ${i}`).toBe(true);
    }
    expect(readdirSync(join(run.outcome.runDir, "states")).filter((f) => f.endsWith(".json"))).toHaveLength(2 * ITEMS);
  });

  it("never runs more than 40 tasks at once across the three arrays, and does run tasks in parallel", () => {
    const max = maxConcurrency(run.events);
    expect(max).toBeLessThanOrEqual(THROTTLE);
    expect(max).toBeGreaterThan(1);
    // Each chunk also keeps to its own share.
    run.prepared.plan.jobs.forEach((job) => {
      expect(maxConcurrency(run.events, (j) => j === job.id)).toBeLessThanOrEqual(job.array?.throttle ?? 0);
    });
    console.log(`chunking: most tasks running at once across the chunks: ${max} (throttle ${THROTTLE})`);
  });
});

describe("a throttle smaller than the number of chunks (the cluster's default array_throttle)", () => {
  it("runs the chunks one task at a time, at most `throttle` chunks at once, and still runs every item", async () => {
    const small = tempBase("hpcpipe-chunking-small-");
    try {
      const cluster = writeLocalCluster(small.dir, "narrow", { max_array_size: 10, array_throttle: 2 });
      const spec = writeYaml(small.dir, "narrow-spec", {
        name: "narrow",
        steps: [{ map: "fan", items: Array.from({ length: 30 }, (_, i) => `n${i}`), steps: [{ step: "work", run: "sleep 0.05", requires: ["item"] }] }],
      });
      const { prepared, outcome, events } = await runCompiled({ spec, cluster, runId: "narrow", cpus: 64 });
      const jobs = prepared.plan.jobs;
      expect(jobs.map((j) => [j.array?.offset, j.array?.count, j.array?.throttle])).toEqual([
        [0, 10, 1],
        [10, 10, 1],
        [20, 10, 1],
      ]);
      // The third chunk waits for the first (afterany), so at most two run at once.
      expect(jobs[2]?.dependencies).toEqual([{ job: jobs[0]?.id, type: "afterany" }]);
      const max = maxConcurrency(events);
      expect(max).toBeLessThanOrEqual(2);
      expect(max).toBe(2);
      expect(exitCodeFrom(outcome.state)).toBe(0);
      for (let i = 0; i < 30; i++) expect(outcome.state.step_states?.[`narrow.fan.${i}.work`]?.meta.item).toBe(`n${i}`);
    } finally {
      small.cleanup();
    }
  });
});
