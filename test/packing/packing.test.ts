/**
 * Task packing through the real pieces: the same YAML map, packed and
 * unpacked, compiled by preparePlan and run by the local executor
 * (runLocal), gives the same merged `step_states` (keys and outcomes, with
 * a failing item under continue_on_item_error) from far fewer array tasks;
 * a resumed run reruns only the failed items' commands; a time limit on a
 * packed task leaves complete states for the items it stopped.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import { doneSteps } from "../../src/app/resume.js";
import { readStateDir } from "../../src/collect/read-states.js";
import type { CompletedState } from "../../src/core/index.js";
import { exitCodeFrom } from "../../src/core/index.js";
import type { CompiledRun } from "../integration/helpers.js";
import { outcomeKinds, runCompiled, tempBase, writeLocalCluster, writeYaml } from "../integration/helpers.js";
import { readState, readStepLog, stateText } from "../render/harness.js";
import type { Run } from "../render/harness.js";

/** The render harness's readers of the wrapper's files (pack lines first, then per-key files) for a run directory. */
const inDir = (runDir: string): Run => ({ runDir, sandbox: runDir, home: runDir });

const ITEMS = 60;
const items = Array.from({ length: ITEMS }, (_, i) => `model-${i}.glb`);
/** Items 7 and 41 fail their check (until out/fixed exists). */
const CHECK = 'case "$model" in model-7.glb|model-41.glb) [ -e "$HPCPIPE_OUT_DIR/fixed" ] || exit 3 ;; esac';
const LOG = 'echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/ran-$HPCPIPE_TASK"';

function mapSpec(name: string, packing: Record<string, unknown>): Record<string, unknown> {
  return {
    name,
    steps: [
      {
        map: "validate",
        items,
        as: "model",
        continue_on_item_error: true,
        ...packing,
        steps: [
          { step: "inspect", run: `${LOG}; echo "faces=12" >> "$HPCPIPE_PUBLISH"`, requires: ["model"], provides: ["faces"], resources: { time: "1:00" } },
          { step: "check", run: `${LOG}; ${CHECK}`, requires: ["model", "faces"], resources: { time: "1:00" } },
        ],
      },
      { step: "summary", run: 'ls "$HPCPIPE_OUT_DIR" | grep -c "^ran-" > "$HPCPIPE_OUT_DIR/summary"', fuse: false },
    ],
  };
}

/** Keys and outcomes with the map's item keys; `meta.item` of each item unit too. */
function shape(state: CompletedState): { kinds: Record<string, string>; items: Record<string, unknown> } {
  const states = state.step_states ?? {};
  const itemsOf = Object.fromEntries(
    Object.entries(states)
      .filter(([k]) => /\.validate\.\d+$/.test(k))
      .map(([k, s]) => [k.slice(k.indexOf(".") + 1), s.meta.item]),
  );
  const kinds = Object.fromEntries(Object.entries(outcomeKinds(states)).map(([k, v]) => [k.slice(k.indexOf(".") + 1), v]));
  return { kinds, items: itemsOf };
}

let base: { dir: string; cleanup: () => void };
let unpacked: CompiledRun;
let packed: CompiledRun;

beforeAll(async () => {
  base = tempBase("hpcpipe-packing-");
  const cluster = writeLocalCluster(base.dir, "packlocal");
  const specA = writeYaml(base.dir, "unpacked", mapSpec("batch", {}));
  const specB = writeYaml(base.dir, "packed", mapSpec("batch", { items_per_task: 8, task_cpus: 2 }));
  unpacked = await runCompiled({ spec: specA, cluster, runId: "unpacked", cpus: 4 });
  packed = await runCompiled({ spec: specB, cluster, runId: "packed", cpus: 4 });
}, 180_000);
afterAll(() => base.cleanup());

describe("the same map packed and unpacked on the local executor", () => {
  it("packs 60 items into 8 array tasks of 8 items (2 at once) instead of 60 tasks", () => {
    const mapJob = (run: CompiledRun) => run.prepared.plan.jobs.find((j) => j.shape === "map");
    expect(mapJob(unpacked)?.array?.count).toBe(ITEMS);
    expect(mapJob(packed)?.array?.count).toBe(8);
    expect(mapJob(packed)?.map).toMatchObject({ itemsPerTask: 8, itemCpus: 1 });
    // An item's time (its two steps' together, as unpacked) times ceil(8 / 2) waves.
    expect(mapJob(packed)?.resources).toEqual({ cpus: 2, time: "00:08:00" });
    const started = (run: CompiledRun) => run.events.filter((e) => e.type === "task-started").length;
    expect(started(unpacked)).toBe(ITEMS + 1);
    expect(started(packed)).toBe(8 + 1);
  });

  it("gives identical step_states keys, outcomes and items, with the failing items failed and the map tolerating them", () => {
    const a = shape(unpacked.outcome.state);
    const b = shape(packed.outcome.state);
    expect(Object.keys(a.kinds)).toHaveLength(1 + ITEMS * 3 + 1);
    expect(b).toEqual(a);
    expect(b.kinds["validate.7"]).toBe("STEP_FAILED");
    expect(b.kinds["validate.41.check"]).toBe("STEP_FAILED");
    expect(b.kinds["validate.8"]).toBe("ok");
    expect(b.kinds.validate).toBe("ok");
    expect(b.kinds.summary).toBe("ok");
    expect(packed.outcome.state.step_states?.["batch.validate"]?.meta.failed_allowed).toEqual(["batch.validate.7", "batch.validate.41"]);
    expect(exitCodeFrom(packed.outcome.state)).toBe(exitCodeFrom(unpacked.outcome.state));
    expect(packed.outcome.state.success).toBe(unpacked.outcome.state.success);
  });

  it("records the same per-item facts: the item's own index as the task, its own logs", () => {
    const s = packed.outcome.state.step_states?.["batch.validate.13.inspect"];
    expect(s?.meta.slurm).toMatchObject({ task: 13, array_task_id: "1" });
    expect(s?.outputs).toEqual({ published: { faces: "12" }, files: [] });
    expect(readFileSync(join(packed.outcome.runDir, "out", "ran-13"), "utf8")).toBe("batch.validate.13.inspect\nbatch.validate.13.check\n");
    // Its logs are a section of its slot's log pair (one pair per slot of the task, not per step).
    expect(readState(inDir(packed.outcome.runDir), "batch.validate.13.check").meta).toMatchObject({ log: expect.stringMatching(/^logs\/batch\.validate\.items-8-15\.s\d+$/) });
    expect(readStepLog(inDir(packed.outcome.runDir), "batch.validate.13.check", "out")).toBe("");
    expect(existsSync(join(packed.outcome.runDir, "logs", "batch.validate.13.check.out"))).toBe(false);
  });
});

describe("resuming a packed run", () => {
  it("reruns only the tasks holding failed items, and inside them only the failed items' commands", async () => {
    const base2 = tempBase("hpcpipe-packing-resume-");
    try {
      const cl = writeLocalCluster(base2.dir, "resumelocal");
      const spec = writeYaml(base2.dir, "packed", mapSpec("batch", { items_per_task: 8 }));
      const first = await runCompiled({ spec, cluster: cl, runId: "r1", cpus: 4 });
      const runDir = first.outcome.runDir;
      expect(first.outcome.state.step_states?.["batch.validate.7"]?.success).toBe(false);
      const ranBefore = Object.fromEntries(items.map((_, i) => [i, readFileSync(join(runDir, "out", `ran-${i}`), "utf8")]));
      const unitBefore = stateText(inDir(runDir), "batch.validate.6");
      writeFileSync(join(runDir, "out", "fixed"), "");

      // What `submit --resume` leaves out: every step whose state is a success of its current definition.
      const done = doneSteps(first.prepared.plan, (await readStateDir(join(runDir, "states"))).states);
      expect(done.has("batch.summary")).toBe(true);
      expect(done.has("batch.validate.7.inspect") && !done.has("batch.validate.7.check")).toBe(true);
      const again = await runCompiled({ spec, cluster: cl, runId: "r1", cpus: 4, done });
      const second = { plan: again.prepared.plan, outcome: again.outcome };
      expect(second.plan.layout.runDir).toBe(first.prepared.plan.layout.runDir);
      const mapJobs = second.plan.jobs.filter((j) => j.shape === "map");
      // Item 7 is in task 0 (items 0-7), item 41 in task 5 (items 40-47): the only tasks submitted again.
      expect(mapJobs.map((j) => j.array?.indices)).toEqual([[0, 5]]);
      expect(second.plan.jobs.map((j) => j.shape)).toEqual(["map"]);

      // The items already done ran nothing again; the failed items reran their failed step only
      // (inspect succeeded and is idempotent: skipped).
      for (let i = 0; i < ITEMS; i++) {
        const now = readFileSync(join(runDir, "out", `ran-${i}`), "utf8");
        const added = now.slice((ranBefore[i] as string).length);
        expect(added, `item ${i}`).toBe(i === 7 || i === 41 ? `batch.validate.${i}.check\n` : "");
      }
      expect(stateText(inDir(runDir), "batch.validate.6")).toBe(unitBefore);
      const kinds = outcomeKinds(second.outcome.state.step_states);
      expect(Object.values(kinds).every((k) => k === "ok")).toBe(true);
      expect(Object.keys(kinds)).toHaveLength(1 + ITEMS * 3 + 1);
      expect(second.outcome.state.step_states?.["batch.validate"]?.meta.failed_allowed).toBeUndefined();
    } finally {
      base2.cleanup();
    }
  }, 120_000);
});

describe("a packed task at its time limit on the local executor", () => {
  it("passes the warning signal to its running items: complete TIMEOUT states, the rest not run, no temp file", async () => {
    const base3 = tempBase("hpcpipe-packing-limit-");
    try {
      // Items of 1 minute, 3 per task, 1 at a time: a 3-minute task; USR1 178 s before the limit = after 2 s.
      const cl = writeLocalCluster(base3.dir, "limitlocal", { signal_grace_s: 178 });
      const spec = writeYaml(base3.dir, "limit", {
        name: "limit",
        steps: [
          {
            map: "slow",
            items: ["a", "b", "c"],
            items_per_task: 3,
            steps: [{ step: "work", run: '[ "$item" = a ] || sleep 60', requires: ["item"], resources: { time: "1" } }],
          },
        ],
      });
      const run = await runCompiled({ spec, cluster: cl, runId: "limit", cpus: 2 });
      expect(run.prepared.plan.jobs[0]?.resources.time).toBe("00:03:00");
      const states = run.outcome.state.step_states ?? {};
      expect(states["limit.slow.0.work"]?.success).toBe(true);
      expect(states["limit.slow.1.work"]).toMatchObject({ success: false, failure: "STEP_FAILED", meta: { reason: "TIMEOUT" } });
      expect(states["limit.slow.1"]).toMatchObject({ success: false, meta: { reason: "TIMEOUT", failed_step: "limit.slow.1.work" } });
      // Item c never started: the merger reports it from the task's final state.
      expect(states["limit.slow.2.work"]).toMatchObject({ success: false, meta: { not_run: true, job: "j000", task: 0 } });
      expect(run.outcome.jobs.get("j000")?.tasks[0]?.exitCode).toBe(138);
      expect(readState(inDir(run.outcome.runDir), "limit.slow.1.work").meta).toMatchObject({ reason: "TIMEOUT" });
      const leftovers = readdirSync(join(run.outcome.runDir, "states")).filter((n) => n.startsWith("."));
      expect(leftovers).toEqual([]);
    } finally {
      base3.cleanup();
    }
  }, 60_000);
});

describe("packing options in YAML", () => {
  it("are validated with the path of the field", () => {
    const base4 = tempBase("hpcpipe-packing-yaml-");
    try {
      const bad = (packing: Record<string, unknown>) => {
        const spec = writeYaml(base4.dir, "bad", mapSpec("bad", packing));
        try {
          preparePlan({ spec, cluster: writeLocalCluster(base4.dir, "c") });
        } catch (err) {
          return (err as Error).message;
        }
        return "no error";
      };
      expect(bad({ items_per_task: 0 })).toMatch(/bad\.yaml:\d+:\d+: steps\[0\]\.items_per_task: expected a number >= 1/);
      expect(bad({ items_per_task: 4, task_duration: "10:00", item_duration: "0:30" })).toMatch(/steps\[0\]\.task_duration: expected items_per_task or task_duration with item_duration, not both/);
      expect(bad({ task_duration: "10:00" })).toMatch(/steps\[0\]\.task_duration: expected item_duration too/);
      expect(bad({ task_duration: "soon", item_duration: "0:30" })).toMatch(/steps\[0\]\.task_duration: expected a duration like "10:00"/);
      expect(bad({ task_duration: "0:00", item_duration: "0:30" })).toMatch(/steps\[0\]\.task_duration: expected a duration longer than zero/);
      expect(bad({ task_cpus: 4 })).toMatch(/steps\[0\]\.task_cpus: task_cpus applies to packed tasks/);
      expect(bad({ items_per_task: 4, task_cpus: 1 })).toBe("no error");
      // Durations: numbers are minutes, like resources.time.
      const spec = writeYaml(base4.dir, "ok", mapSpec("ok", { task_duration: 10, item_duration: "0:30" }));
      const plan = preparePlan({ spec, cluster: writeLocalCluster(base4.dir, "c") }).plan;
      expect(plan.jobs[0]?.map?.itemsPerTask).toBe(20);
      expect(plan.jobs[0]?.array?.count).toBe(3);
    } finally {
      base4.cleanup();
    }
  });
});
