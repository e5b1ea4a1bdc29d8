import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cancelRun } from "../../src/app/cancel.js";
import { withRun } from "../../src/app/connect.js";
import { getRunStatus, watchRun } from "../../src/app/status.js";
import type { RunStatus } from "../../src/app/status.js";
import { handleInterrupt, waitAndCollect } from "../../src/app/submit.js";
import { RunStateError } from "../../src/runs/index.js";
import { pollPolicy } from "../../src/slurm/index.js";
import { FakeTransport, squeueJob, squeueTask, stateJson, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
afterEach(() => run?.cleanup());

const policy = pollPolicy({ initialMs: 100, factor: 2, maxMs: 800, jitter: 0 });
const VIEWS = ["front", "side", "top", "iso"];

function phase(fake: FakeTransport, name: "running" | "prep-done" | "done"): void {
  fake.squeue.set("100", [squeueJob("100", name === "running" ? "RUNNING" : "COMPLETED")]);
  fake.squeue.set("200", VIEWS.map((_, t) => (name === "done" ? squeueTask("200", t, "COMPLETED") : `200_[${t}]|200|200|${t}|PENDING|Dependency|(null)|x`)));
  fake.squeue.set("300", [name === "done" ? squeueJob("300", "COMPLETED") : squeueJob("300", "PENDING", "Dependency")]);
}

describe("watching a run", () => {
  it("makes ONE scheduler query per poll, backs off while nothing changes, speeds up after a change, and reads the states once at the end", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    phase(fake, "running");
    for (const key of ["prep", ...VIEWS.map((v) => `renders.${v}`), "metadata"]) fake.files.set(`states/thumbnail_shape.${key}.json`, Buffer.from(stateJson(`thumbnail_shape.${key}`)));
    const sleeps: number[] = [];
    const updates: Array<[boolean, boolean]> = [];
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) =>
      watchRun(ctx, {
        policy,
        random: () => 0.5,
        sleep: async (ms) => {
          sleeps.push(ms);
          if (sleeps.length === 5) phase(fake, "prep-done");
          if (sleeps.length === 6) phase(fake, "done");
        },
        onUpdate: (status, changed) => updates.push([status.final, changed]),
      }),
    );
    expect(sleeps).toEqual([100, 200, 400, 800, 800, 100]);
    expect(fake.schedulerCalls()).toEqual(Array(7).fill("squeue"));
    expect(outcome.polls).toBe(7);
    expect(fake.gets).toHaveLength(1);
    expect(updates.map((u) => u[1])).toEqual([true, false, false, false, false, true, true]);
    expect(outcome.status.final).toBe(true);
    expect(outcome.status.result).toMatchObject({ success: true, exit_code: 0 });
    expect(Object.keys(outcome.status.steps ?? {})).toHaveLength(7);
  });

  it("retries at the next poll when the accounting database is down", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    // squeue has forgotten the jobs: sacct answers, after one failure.
    fake.sacctFailures.push("sacct: error: Problem talking to the database: Connection refused");
    fake.sacct.set("100", ["100|100|COMPLETED|0:0|None"]);
    fake.sacct.set("200", VIEWS.map((_, t) => `200_${t}|20${t}|COMPLETED|0:0|None`));
    fake.sacct.set("300", ["300|300|COMPLETED|0:0|None"]);
    const retried: string[] = [];
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) =>
      watchRun(ctx, { policy, sleep: async () => undefined, onRetry: (e) => retried.push(e.name) }),
    );
    expect(retried).toEqual(["AccountingUnavailableError"]);
    expect(outcome.status.final).toBe(true);
    expect(fake.schedulerCalls()).toEqual(["squeue", "sacct", "squeue", "sacct"]);
  });

  it("stops when its signal aborts and says so", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    phase(fake, "running");
    const abort = new AbortController();
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) =>
      waitAndCollect(ctx, { policy, sleep: async () => abort.abort(), signal: abort.signal }),
    );
    expect(outcome.watch.aborted).toBe(true);
    expect(outcome.collect).toBeNull();
    expect(fake.schedulerCalls()).toEqual(["squeue"]);
  });

  it("status without --watch is one squeue, and a getFiles only once every job is final", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    phase(fake, "running");
    const { status } = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => getRunStatus(ctx));
    expect(fake.roundTrips).toBe(1);
    const view: RunStatus = status;
    expect(view.jobs.map((j) => `${j.state}${j.reason ? ` (${j.reason})` : ""}`)).toEqual(["RUNNING", "PENDING (Dependency)", "PENDING (Dependency)"]);
    expect(view.steps).toBeNull();
  });
});

describe("cancelling", () => {
  it("cancels every job of the run with ONE scancel and records the phase", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => cancelRun(ctx));
    expect(fake.execs.map((e) => e.argv)).toEqual([["scancel", "100", "200", "300"]]);
    expect(outcome.record.phase).toBe("cancelled");
    expect((await run.store.readRecord(run.record.run_id)).phase).toBe("cancelled");
  });

  it("on interrupt: cancel, leave, or ask", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, async (ctx) => {
      expect(await handleInterrupt(ctx, "leave", async () => true)).toBeNull();
      expect(await handleInterrupt(ctx, "ask", async () => false)).toBeNull();
      expect(fake.execs).toHaveLength(0);
      expect((await handleInterrupt(ctx, "ask", async () => true))?.cancelled).toEqual(["100", "200", "300"]);
      expect((await handleInterrupt(ctx, "cancel", async () => false))?.record.phase).toBe("cancelled");
    });
  });

  it("refuses a run without job ids", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml", { phase: "submit_failed" });
    await run.store.updateRecord(run.record.run_id, { jobs: {}, error: "could not connect" });
    await expect(withRun(run.record.run_id, { store: run.store, connect: async () => new FakeTransport() }, (ctx) => cancelRun(ctx))).rejects.toThrow(RunStateError);
  });
});

describe("a poll reads the plan's index, not the plan's items", () => {
  const planFiles = (r: TempRun): { plan: string; index: string } => {
    const dir = r.store.runDir(r.record.run_id);
    return { plan: path.join(dir, "plan.json"), index: path.join(dir, "plan-index.json") };
  };
  /** Points the index at plan.json as it is now (as if it had been written so). */
  function repointIndex(r: TempRun): void {
    const { plan, index } = planFiles(r);
    const json = JSON.parse(readFileSync(index, "utf8")) as { plan_file: unknown };
    const info = statSync(plan);
    json.plan_file = { ino: info.ino, size: info.size, mtime_ms: info.mtimeMs };
    writeFileSync(index, JSON.stringify(json));
  }
  const withoutTime = (s: RunStatus): unknown => JSON.parse(JSON.stringify({ ...s, polled_at: null }));

  it("a running map's status needs nothing of plan.json; the merge at the end reads the items (a damaged plan.json is an error naming it); a run saved without an index polls the same", async () => {
    run = await tempRun("examples/specs/batch-map.yaml");
    const r = run;
    const items = r.plan.jobs[1]?.array?.count ?? 0;
    expect(items).toBeGreaterThan(1);
    const fake = new FakeTransport();
    fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
    fake.squeue.set("200", [squeueTask("200", 0, "RUNNING"), `200_[1-${items - 1}]|200|200|1-${items - 1}|PENDING|Resources|(null)|x`]);
    fake.squeue.set("300", [squeueJob("300", "PENDING", "Dependency")]);
    const poll = async (): Promise<RunStatus> => (await withRun(r.record.run_id, { store: r.store, connect: async () => fake }, (ctx) => getRunStatus(ctx))).status;
    const before = await poll();
    expect(before.final).toBe(false);
    expect(before.counts).toEqual({ pending: items, running: 1, done: 1, failed: 0 });

    const { plan, index } = planFiles(r);
    const whole = readFileSync(plan, "utf8");
    writeFileSync(plan, '{"format": 1, "items": {"batch_map.check_all": [');
    repointIndex(r);
    expect(withoutTime(await poll())).toEqual(withoutTime(before));

    // Every job ended: the merge needs the items.
    fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
    fake.squeue.set("200", Array.from({ length: items }, (_, t) => squeueTask("200", t, "COMPLETED")));
    fake.squeue.set("300", [squeueJob("300", "COMPLETED")]);
    await expect(poll()).rejects.toThrow(`${plan}: not valid JSON`);

    // A run saved before the index: plan.json only, read whole.
    fake.squeue.set("200", [squeueTask("200", 0, "RUNNING"), `200_[1-${items - 1}]|200|200|1-${items - 1}|PENDING|Resources|(null)|x`]);
    fake.squeue.set("300", [squeueJob("300", "PENDING", "Dependency")]);
    writeFileSync(plan, whole);
    rmSync(index);
    expect(withoutTime(await poll())).toEqual(withoutTime(before));
  });
});
