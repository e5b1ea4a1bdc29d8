// `submit --resume` on the real test cluster: only what failed runs again, in the same run directory.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, readRemote, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

// Item c fails the first time it runs and succeeds after; every run of every step is counted in out/.
const SPEC = `name: resumable
context:
  tag: first
steps:
  - step: prep
    fuse: false
    run: echo x >> "$HPCPIPE_OUT_DIR/runs-prep"
  - map: each
    items: [a, b, c, d]
    as: item
    steps:
      - step: work
        requires: [item]
        run: |
          if [ "$item" = c ] && [ ! -e "$HPCPIPE_OUT_DIR/seen-c" ]; then touch "$HPCPIPE_OUT_DIR/seen-c"; exit 3; fi
          echo x >> "$HPCPIPE_OUT_DIR/runs-$item"
  - step: summary
    fuse: false
    run: echo x >> "$HPCPIPE_OUT_DIR/runs-summary"
`;

interface ResultJson {
  success: boolean;
  step_states: Record<string, { success: boolean; meta: Record<string, unknown> }>;
}

describe.skipIf(e2eSkipped)("resuming a run on the test cluster", { timeout: 180_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let spec: string;

  beforeAll(() => {
    env = workflowEnv("resume");
    cluster = env.config("testcluster");
    spec = env.spec("resumable", SPEC);
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  it("reruns only the failed map item and the steps that never ran, as a sparse array in the same run directory", async () => {
    const first = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(first.code, first.stderr).toBe(4);
    const runId = runIdFrom(first.stderr + first.stdout);
    const failed = JSON.parse(first.stdout) as ResultJson;
    expect(failed.step_states["resumable.each.2.work"]?.success).toBe(false);
    expect(failed.step_states["resumable.summary"]?.meta.not_run).toBe(true);

    const dry = await cli("plan", spec, "--cluster", cluster);
    expect(dry.code).toBe(0);

    const second = await cli("submit", spec, "--cluster", cluster, "--resume", runId, "--wait", "--json");
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/4 step\(s\) already succeeded; resubmitting 2 job\(s\)/);
    const merged = JSON.parse(second.stdout) as ResultJson;
    expect(merged.success).toBe(true);
    expect(Object.values(merged.step_states).every((s) => s.success)).toBe(true);

    const record = await env.record(runId);
    expect(record.attempt).toBe(2);
    expect(record.history?.[0]?.attempt).toBe(1);
    const remote = await env.remote();
    const count = async (name: string): Promise<number> => ((await readRemote(remote, record.remote_dir, `out/${name}`)) ?? "").split("\n").filter(Boolean).length;
    expect(await count("runs-prep")).toBe(1);
    expect(await count("runs-a")).toBe(1);
    expect(await count("runs-b")).toBe(1);
    expect(await count("runs-c")).toBe(1);
    expect(await count("runs-d")).toBe(1);
    expect(await count("runs-summary")).toBe(1);
  });

  it("refuses to resume with a changed context, before submitting anything", async () => {
    const first = await cli("submit", spec, "--cluster", cluster, "--json");
    expect(first.code, first.stderr).toBe(0);
    const runId = (JSON.parse(first.stdout) as { run_id: string }).run_id;
    await cli("cancel", runId);
    const resumed = await cli("submit", spec, "--cluster", cluster, "--resume", runId, "--set", "tag=second");
    expect(resumed.code).toBe(64);
    expect(resumed.stderr).toContain("the context differs");
  });
});
