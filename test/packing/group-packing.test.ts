/**
 * Task packing for a parallel group, through the real pieces: the same YAML
 * group of 7 children (one a sub-pipeline, one failing under
 * continue_on_error), packed 3 children to a task and unpacked, compiled by
 * preparePlan and run by the local executor with real bash, gives the same
 * merged `step_states` from 3 array tasks instead of 7; chunks over a small
 * MaxArraySize carry the right children; a resumed run reruns only the task
 * holding the failed child, and inside it only that child; the plan and the
 * YAML checks say what they do.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import { doneSteps } from "../../src/app/resume.js";
import { buildStepIndex, readStateDir } from "../../src/collect/index.js";
import { formatPlanText } from "../../src/compiler/format.js";
import type { CompletedState } from "../../src/core/index.js";
import { exitCodeFrom } from "../../src/core/index.js";
import type { CompiledRun } from "../integration/helpers.js";
import { outcomeKinds, runCompiled, tempBase, writeLocalCluster, writeYaml } from "../integration/helpers.js";

const CHILDREN = ["c0", "c1", "c2", "c3", "c4", "c5", "c6"] as const;
/** Each child appends its key to out/ran-<child> and to out/task-<HPCPIPE_TASK>. */
const LOG = 'echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/ran-$child"; echo "$HPCPIPE_STEP" >> "$HPCPIPE_OUT_DIR/task-$HPCPIPE_TASK"';

function child(name: string): Record<string, unknown> {
  if (name === "c3") {
    // A sub-pipeline runs whole inside its child's slot.
    return {
      pipeline: "c3",
      steps: [
        { step: "first", run: `child=c3; ${LOG}; echo "mid=3" >> "$HPCPIPE_PUBLISH"`, provides: ["mid"], resources: { time: "1:00" } },
        { step: "second", run: `child=c3; ${LOG}; [ "$mid" = 3 ]`, requires: ["mid"], resources: { time: "1:00" } },
      ],
    };
  }
  // c5 fails until out/fixed exists; the group tolerates it (continue_on_error on the child).
  const fail = name === "c5" ? '; [ -e "$HPCPIPE_OUT_DIR/fixed" ] || exit 3' : "";
  return {
    step: name,
    run: `child=${name}; ${LOG}; echo "v_${name}=${name}" >> "$HPCPIPE_PUBLISH"${fail}`,
    provides: [`v_${name}`],
    ...(name === "c5" ? { continue_on_error: true } : {}),
    resources: { time: "2:00" },
  };
}

function groupSpec(name: string, packing: Record<string, unknown>): Record<string, unknown> {
  return {
    name,
    steps: [
      { step: "prep", run: 'echo prep > "$HPCPIPE_OUT_DIR/prep"' },
      { group: "passes", parallel: true, ...packing, steps: CHILDREN.map(child) },
      { step: "after", run: 'ls "$HPCPIPE_OUT_DIR" | grep -c "^ran-" > "$HPCPIPE_OUT_DIR/after"', requires: ["v_c0", "v_c6"], fuse: false },
    ],
  };
}

function shape(state: CompletedState): Record<string, string> {
  return Object.fromEntries(Object.entries(outcomeKinds(state.step_states)).map(([k, v]) => [k.slice(k.indexOf(".") + 1), v]));
}

let base: { dir: string; cleanup: () => void };
let cluster: string;
let unpacked: CompiledRun;
let packed: CompiledRun;

beforeAll(async () => {
  base = tempBase("hpcpipe-group-packing-");
  cluster = writeLocalCluster(base.dir, "grouplocal");
  unpacked = await runCompiled({ spec: writeYaml(base.dir, "unpacked", groupSpec("gp", {})), cluster, runId: "unpacked", cpus: 4 });
  packed = await runCompiled({ spec: writeYaml(base.dir, "packed", groupSpec("gp", { items_per_task: 3, task_cpus: 2 })), cluster, runId: "packed", cpus: 4 });
}, 180_000);
afterAll(() => base.cleanup());

describe("a parallel group packed and unpacked on the local executor", () => {
  it("packs 7 children into 3 array tasks (2 at once), with resources for two children and their waves", () => {
    const groupJob = (run: CompiledRun) => run.prepared.plan.jobs.find((j) => j.shape === "group");
    expect(groupJob(unpacked)?.array?.count).toBe(CHILDREN.length);
    expect(groupJob(unpacked)?.groupPack).toBeUndefined();
    const job = groupJob(packed);
    expect(job?.array?.count).toBe(3);
    expect(job?.groupPack).toEqual({ itemsPerTask: 3, itemCpus: 1 });
    expect(job?.bodies).toHaveLength(CHILDREN.length);
    // The longest child (c3: two 1-minute steps, or 2 minutes) times ceil(3 / 2) waves.
    expect(job?.resources).toEqual({ cpus: 2, time: "00:04:00" });
    expect(job?.script).toMatch(/^hp_group_pack 7 3 1 hp_item$/m);
    const started = (run: CompiledRun) => run.events.filter((e) => e.type === "task-started").length;
    expect(started(unpacked)).toBe(1 + CHILDREN.length + 1);
    expect(started(packed)).toBe(1 + 3 + 1);
    expect(formatPlanText(packed.prepared.plan)).toContain("array[3]     group (3 children per task): [0] gp.passes.c0");
  });

  it("runs each child once, in the task that holds it, with its own index as HPCPIPE_TASK", () => {
    const out = join(packed.outcome.runDir, "out");
    CHILDREN.forEach((name, i) => {
      const keys = name === "c3" ? "gp.passes.c3.first\ngp.passes.c3.second\n" : `gp.passes.${name}\n`;
      expect(readFileSync(join(out, `ran-${name}`), "utf8"), name).toBe(keys);
      expect(readFileSync(join(out, `task-${i}`), "utf8"), name).toBe(keys);
    });
    const s = packed.outcome.state.step_states?.["gp.passes.c4"];
    // Child 4 is in task 1 (children 3-5); its state names its own index as the task.
    expect(s?.meta.slurm).toMatchObject({ task: 4, array_task_id: "1" });
    expect(s?.outputs).toEqual({ published: { v_c4: "c4" }, files: [] });
  });

  it("gives the same step_states keys and outcomes as unpacked, the failing child failed and tolerated", () => {
    const a = shape(unpacked.outcome.state);
    const b = shape(packed.outcome.state);
    expect(b).toEqual(a);
    expect(b["passes.c5"]).toBe("STEP_FAILED");
    expect(b["passes.c3.second"]).toBe("ok");
    expect(b.passes).toBe("ok");
    expect(b.after).toBe("ok");
    expect(packed.outcome.state.step_states?.["gp.passes"]?.meta.failed_allowed).toEqual(["gp.passes.c5"]);
    expect(exitCodeFrom(packed.outcome.state)).toBe(exitCodeFrom(unpacked.outcome.state));
    expect(packed.outcome.state.success).toBe(true);
  });

  it("maps every child's keys to its packed task for the merger", () => {
    const index = buildStepIndex(packed.prepared.plan);
    expect(index.get("gp.passes.c0")).toMatchObject({ taskId: 0, task: 0, index: 0 });
    expect(index.get("gp.passes.c3.second")).toMatchObject({ taskId: 1, task: 1, index: 3, unitKey: "gp.passes.c3", position: 1 });
    expect(index.get("gp.passes.c6")).toMatchObject({ taskId: 2, task: 2, index: 6 });
  });
});

describe("a packed group over MaxArraySize", () => {
  it("splits its tasks into chunks whose scripts hold exactly the children of their tasks", () => {
    const small = writeLocalCluster(base.dir, "tinyarrays", { max_array_size: 2 });
    const plan = preparePlan({ spec: writeYaml(base.dir, "chunked", groupSpec("gp", { items_per_task: 2 })), cluster: small }).plan;
    const jobs = plan.jobs.filter((j) => j.shape === "group");
    // 7 children, 2 a task: 4 tasks; at most 2 tasks a chunk: 2 chunks with offsets 0 and 2.
    expect(jobs.map((j) => [j.array?.count, j.array?.offset, j.array?.total])).toEqual([
      [2, 0, 4],
      [2, 2, 4],
    ]);
    const arms = (script: string) => [...script.matchAll(/^(\d+)\)$/gm)].map((m) => Number(m[1]));
    expect(arms(jobs[0]?.script ?? "")).toEqual([0, 1, 2, 3]);
    expect(arms(jobs[1]?.script ?? "")).toEqual([4, 5, 6]);
  });
});

describe("resuming a packed group", () => {
  it("reruns only the task holding the failed child, and inside it only that child", async () => {
    const base2 = tempBase("hpcpipe-group-packing-resume-");
    try {
      const cl = writeLocalCluster(base2.dir, "resumelocal");
      const spec = writeYaml(base2.dir, "packed", groupSpec("gp", { items_per_task: 3 }));
      const first = await runCompiled({ spec, cluster: cl, runId: "r1", cpus: 4 });
      const runDir = first.outcome.runDir;
      expect(first.outcome.state.step_states?.["gp.passes.c5"]?.success).toBe(false);
      const before = Object.fromEntries(CHILDREN.map((c) => [c, readFileSync(join(runDir, "out", `ran-${c}`), "utf8")]));
      writeFileSync(join(runDir, "out", "fixed"), "");

      const done = doneSteps(first.prepared.plan, (await readStateDir(join(runDir, "states"))).states);
      expect(done.has("gp.passes.c4") && !done.has("gp.passes.c5")).toBe(true);
      const again = await runCompiled({ spec, cluster: cl, runId: "r1", cpus: 4, done });
      // c5 is in task 1 (children 3-5): the only task of the only job submitted again.
      expect(again.prepared.plan.jobs.map((j) => [j.shape, j.array?.indices])).toEqual([["group", [1]]]);
      for (const c of CHILDREN) {
        const added = readFileSync(join(runDir, "out", `ran-${c}`), "utf8").slice((before[c] as string).length);
        expect(added, c).toBe(c === "c5" ? "gp.passes.c5\n" : "");
      }
      const kinds = outcomeKinds(again.outcome.state.step_states);
      expect(Object.entries(kinds).filter(([, k]) => k !== "ok")).toEqual([]);
      expect(again.outcome.state.step_states?.["gp.passes"]?.meta.failed_allowed).toBeUndefined();
    } finally {
      base2.cleanup();
    }
  }, 120_000);
});

describe("group packing options in YAML", () => {
  it("are validated with the path of the field, and need a parallel group", () => {
    const base4 = tempBase("hpcpipe-group-packing-yaml-");
    try {
      const bad = (doc: Record<string, unknown>) => {
        try {
          preparePlan({ spec: writeYaml(base4.dir, "bad", doc), cluster: writeLocalCluster(base4.dir, "c") });
        } catch (err) {
          return (err as Error).message;
        }
        return "no error";
      };
      expect(bad(groupSpec("bad", { items_per_task: 0 }))).toMatch(/bad\.yaml:\d+:\d+: steps\[1\]\.items_per_task: expected a number >= 1/);
      expect(bad(groupSpec("bad", { task_cpus: 2 }))).toMatch(/steps\[1\]\.task_cpus: task_cpus applies to packed tasks/);
      expect(bad(groupSpec("bad", { task_duration: "10:00" }))).toMatch(/steps\[1\]\.task_duration: expected item_duration too/);
      const sequential = groupSpec("bad", {});
      (sequential.steps as Record<string, unknown>[])[1] = { group: "passes", items_per_task: 2, steps: [{ step: "a", run: "true" }] };
      expect(bad(sequential)).toMatch(/steps\[1\]\.items_per_task: items_per_task packs a parallel group's children into array tasks; add parallel: true/);
      // By duration: 10 minutes a task over 2-minute children = 5 children a task.
      const plan = preparePlan({ spec: writeYaml(base4.dir, "ok", groupSpec("ok", { task_duration: "10:00", item_duration: "2:00" })), cluster: writeLocalCluster(base4.dir, "c") }).plan;
      const job = plan.jobs.find((j) => j.shape === "group");
      expect(job?.groupPack?.itemsPerTask).toBe(5);
      expect(job?.array?.count).toBe(2);
      // One child per task is no packing at all.
      const one = preparePlan({ spec: writeYaml(base4.dir, "one", groupSpec("one", { items_per_task: 1 })), cluster: writeLocalCluster(base4.dir, "c") }).plan;
      expect(one.jobs.find((j) => j.shape === "group")?.groupPack).toBeUndefined();
    } finally {
      base4.cleanup();
    }
  });
});
