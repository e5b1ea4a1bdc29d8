// A packed parallel group on the project's own SLURM cluster over SSH (scripts/cluster/up.sh):
// 5 children, 2 to a task with 2 CPUs, submitted with `hpcpipe submit --wait` (the in-process CLI).
// SLURM runs ONE array job of 3 tasks; every child still writes its own state with the task
// that held it, the merged result has every key; a child that fails is tolerated
// (continue_on_error), and `submit --resume` reruns only the task that held it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, readRemote, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

interface StepJson {
  success: boolean;
  failure: string | null;
  outputs: { published?: Record<string, string> };
  meta: { slurm?: { array_job_id?: string; array_task_id?: string; task?: number }; host?: string; failed_allowed?: string[] };
}

const CHILDREN = ["a", "b", "c", "d", "e"];

function spec(): string {
  const child = (n: string) =>
    [
      `      - step: ${n}`,
      "        run: |",
      `          echo "$HPCPIPE_STEP task=$HPCPIPE_TASK array=$SLURM_ARRAY_TASK_ID" >> "$HPCPIPE_OUT_DIR/ran-${n}"`,
      `          echo "v_${n}=$SLURM_ARRAY_TASK_ID" >> "$HPCPIPE_PUBLISH"`,
      // d fails the first time it runs, and succeeds when run again.
      ...(n === "d" ? ['          if [ ! -e "$HPCPIPE_OUT_DIR/seen-d" ]; then touch "$HPCPIPE_OUT_DIR/seen-d"; exit 3; fi'] : []),
      `        provides: [v_${n}]`,
      ...(n === "d" ? ["        continue_on_error: true"] : []),
      '        resources: {time: "2:00"}',
    ].join("\n");
  return [
    "name: gpack",
    "steps:",
    "  - group: passes",
    "    parallel: true",
    "    items_per_task: 2",
    "    task_cpus: 2",
    "    steps:",
    ...CHILDREN.map(child),
    "  - step: after",
    '    run: cat "$HPCPIPE_OUT_DIR"/ran-* | wc -l > "$HPCPIPE_OUT_DIR/after"',
    "    requires: [v_a, v_e]",
    "",
  ].join("\n");
}

describe.skipIf(e2eSkipped)("a packed parallel group on the test cluster", { timeout: 240_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;

  beforeAll(() => {
    env = workflowEnv("group-packing");
    cluster = env.config("testcluster");
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it("runs 5 children as ONE array job of 3 tasks, each child with its own state; resume reruns only the failed child's task", async () => {
    const file = env.spec("gpack", spec());
    const submitted = await cli("submit", file, "--cluster", cluster, "--wait", "--json");
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const state = JSON.parse(submitted.stdout) as { success: boolean; step_states: Record<string, StepJson> };
    expect(state.success).toBe(true);

    const record = await env.record(runId);
    expect(Object.keys(record.jobs)).toEqual(["j000", "j001"]);
    const arrayJob = record.jobs.j000 as string;
    // SLURM's own view of the array: 3 tasks (finished jobs stay in squeue for MinJobAge, 300 s here;
    // sacct may still lag behind).
    const remote = await env.remote();
    const squeue = await remote.exec(["squeue", "-h", "-t", "all", "-r", "-o", "%i", "-j", arrayJob]);
    expect(squeue.code, squeue.stderr).toBe(0);
    expect(squeue.stdout.trim().split("\n").sort()).toEqual([`${arrayJob}_0`, `${arrayJob}_1`, `${arrayJob}_2`]);

    CHILDREN.forEach((n, i) => {
      const s = state.step_states[`gpack.passes.${n}`];
      const task = String(Math.floor(i / 2));
      expect(s?.meta.slurm, n).toMatchObject({ array_job_id: arrayJob, array_task_id: task, task: i });
      expect(s?.meta.host, n).toBeTruthy();
      if (n === "d") expect(s).toMatchObject({ success: false, failure: "STEP_FAILED" });
      else expect(s?.outputs.published, n).toEqual({ [`v_${n}`]: task });
    });
    expect(state.step_states["gpack.passes"]?.meta.failed_allowed).toEqual(["gpack.passes.d"]);
    for (const n of CHILDREN) {
      expect(await readRemote(remote, record.remote_dir, `out/ran-${n}`), n).toBe(`gpack.passes.${n} task=${CHILDREN.indexOf(n)} array=${Math.floor(CHILDREN.indexOf(n) / 2)}\n`);
    }

    // Resume: only task 1 (children c, d) runs again, and in it only d (c is done).
    const resumed = await cli("submit", file, "--cluster", cluster, "--resume", runId, "--wait", "--json");
    expect(resumed.code, resumed.stderr).toBe(0);
    const again = JSON.parse(resumed.stdout) as { success: boolean; step_states: Record<string, StepJson> };
    expect(again.step_states["gpack.passes.d"]?.success).toBe(true);
    expect(again.step_states["gpack.passes"]?.meta.failed_allowed).toBeUndefined();
    expect((await env.record(runId)).jobs).toEqual({ j000: expect.stringMatching(/^\d+$/) as unknown });
    expect(await readRemote(remote, record.remote_dir, "out/ran-c")).toBe("gpack.passes.c task=2 array=1\n");
    // The rerun is remapped (src/plan/task-map.ts): logical task 1 runs as array task id 0.
    expect(await readRemote(remote, record.remote_dir, "out/ran-d")).toBe("gpack.passes.d task=3 array=1\ngpack.passes.d task=3 array=0\n");
    expect(await readRemote(remote, record.remote_dir, "out/ran-a")).toBe("gpack.passes.a task=0 array=0\n");
  });
});
