// A watch does not end while a retry controller is still to act: the retries and controllers it
// submitted on the cluster are learned from its records (retries/*.json) and watched like the run's
// own jobs. A fake scheduler and transport, polling.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { withRun } from "../../src/app/connect.js";
import { cancelRun } from "../../src/app/cancel.js";
import { watchRun } from "../../src/app/status.js";
import { FakeTransport, squeueJob, squeueTask, stateJson, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
let dir: string | undefined;
afterEach(() => {
  run?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const policy = { initialMs: 100, maxMs: 800, factor: 2, jitter: 0 };

describe("watching a run with retries", () => {
  it("holds the run open after the map failed and its controller ended, until the retry it submitted and the next controller have ended", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-watch-retries-"));
    const spec = path.join(dir, "r.yaml");
    writeFileSync(spec, "name: r\nsteps:\n  - map: each\n    items: [a, b, c]\n    retries: 2\n    steps:\n      - step: work\n        run: echo\n");
    run = await tempRun(spec);
    expect(run.plan.jobs.map((j) => [j.id, j.retry?.of ?? null])).toEqual([["j000", null], ["j001", "j000"]]);
    const fake = new FakeTransport();
    for (const i of [0, 1, 2]) {
      for (const key of [`r.each.${i}.work`, `r.each.${i}`]) fake.files.set(`states/${key}.json`, Buffer.from(stateJson(key, { attempt: i === 1 ? 2 : 1 })));
    }
    // The map ended with task 1 failed; its controller ended ok, having submitted the retry (record not read yet).
    fake.squeue.set("100", [squeueTask("100", 0, "COMPLETED"), squeueTask("100", 1, "FAILED", "NonZeroExitCode"), squeueTask("100", 2, "COMPLETED")]);
    fake.squeue.set("200", [squeueJob("200", "COMPLETED")]);
    const attempt = { job: "j000", attempt: 2, by: "200", retry_job_id: "110", controller_job_id: "111", tasks: [1], reasons: { "1": "exit 3" }, time_s: 0, mem_mb: 0, exclude: [] };
    const finals: boolean[] = [];
    let sleeps = 0;
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) =>
      watchRun(ctx, {
        policy,
        random: () => 0.5,
        onUpdate: (status) => finals.push(status.final),
        sleep: async () => {
          sleeps += 1;
          if (sleeps === 1) {
            fake.files.set("retries/j000.2.json", Buffer.from(JSON.stringify(attempt)));
            fake.squeue.set("110", [squeueTask("110", 0, "RUNNING")]);
            fake.squeue.set("111", [squeueJob("111", "PENDING", "Dependency")]);
          }
          if (sleeps === 2) {
            fake.squeue.set("110", [squeueTask("110", 0, "COMPLETED")]);
            fake.squeue.set("111", [squeueJob("111", "COMPLETED")]);
            fake.files.set("retries/j000.end.json", Buffer.from(JSON.stringify({ job: "j000", attempts: 2, ok: true, by: "111", failed: {} })));
          }
        },
      }),
    );
    expect(outcome.polls).toBe(3);
    expect(finals.slice(0, -1).every((f) => !f)).toBe(true);
    expect(outcome.status.final).toBe(true);
    expect(outcome.status.jobs.map((j) => [j.job, j.slurmJobId, j.state])).toEqual([
      ["j000", "100", "FAILED"],
      ["j001", "200", "COMPLETED"],
      ["j000.r2", "110", "COMPLETED"],
      ["j001.r2", "111", "COMPLETED"],
    ]);
    expect(outcome.merged?.step_states?.["r.each.1.work"]?.meta.attempts).toEqual([
      { attempt: 1, slurm_job_id: "100", retried_because: "exit 3", state_file: "attempts/1/states/r.each.1.work.json", log: "attempts/1/logs/r.each.1.work.out" },
      { attempt: 2, slurm_job_id: "110", time_s: null, mem_mb: null, exclude: [] },
    ]);
  });

  it("cancel stops the retries and controllers the cluster submitted, read from their records", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-watch-retries-"));
    const spec = path.join(dir, "r.yaml");
    writeFileSync(spec, "name: r\nsteps:\n  - map: each\n    items: [a, b]\n    retries: 2\n    steps:\n      - step: work\n        run: echo\n");
    run = await tempRun(spec);
    const fake = new FakeTransport();
    fake.files.set("retries/j000.2.json", Buffer.from(JSON.stringify({ job: "j000", attempt: 2, by: "200", retry_job_id: "110", controller_job_id: "111", tasks: [1], reasons: { "1": "exit 3" }, time_s: 0, mem_mb: 0, exclude: [] })));
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => cancelRun(ctx));
    expect(outcome.cancelled.sort()).toEqual(["100", "110", "111", "200"]);
    expect(fake.execs.find((e) => e.argv[0] === "scancel")?.argv).toEqual(expect.arrayContaining(["110", "111"]));
  });
});
