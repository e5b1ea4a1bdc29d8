import { existsSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { collectRun, parseFetchedStates, STATE_FILE_CAP, TRANSFER_FILE_CAP } from "../../src/app/collect.js";
import { withRun } from "../../src/app/connect.js";
import { exitCodeFrom } from "../../src/core/exit-code.js";
import { FakeTransport, squeueJob, squeueTask, stateJson, tempRun } from "./fakes.js";
import type { TempRun } from "./fakes.js";

let run: TempRun | undefined;
afterEach(() => run?.cleanup());

const THUMB = "thumbnail_shape";
const VIEWS = ["front", "side", "top", "iso"];

function allDone(fake: FakeTransport): void {
  fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
  fake.squeue.set("200", VIEWS.map((_, t) => squeueTask("200", t, "COMPLETED")));
  fake.squeue.set("300", [squeueJob("300", "COMPLETED")]);
}

function goodStates(fake: FakeTransport, keys: string[]): void {
  for (const key of keys) fake.files.set(`states/${key}.json`, Buffer.from(stateJson(key)));
}

const allKeys = [`${THUMB}.prep`, ...VIEWS.map((v) => `${THUMB}.renders.${v}`), `${THUMB}.metadata`];

describe("collect with a fake cluster", () => {
  it("fetches every state file (per-key and pack files) in ONE getFiles with the pack file cap per file, asks the scheduler ONCE, and writes result.json (mode 600)", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    allDone(fake);
    goodStates(fake, allKeys);
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => collectRun(ctx));
    expect(fake.gets).toHaveLength(1);
    expect(fake.gets[0]).toMatchObject({ dir: run.record.remote_dir, pattern: "states/*.json*", opts: { maxFileBytes: TRANSFER_FILE_CAP } });
    expect(fake.gets[0]?.opts.maxTotalBytes).toBeGreaterThan(0);
    expect(fake.schedulerCalls()).toEqual(["squeue"]);
    expect(fake.closed).toBe(true);
    expect(outcome.state.success).toBe(true);
    expect(Object.keys(outcome.state.step_states ?? {}).sort()).toEqual([...allKeys, `${THUMB}.renders`].sort());
    expect(outcome.resultPath).toBe(path.join(run.store.runDir(run.record.run_id), "result.json"));
    expect(statSync(outcome.resultPath).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(outcome.resultPath, "utf8"))).toMatchObject({ success: true });
    expect((await run.store.readRecord(run.record.run_id)).phase).toBe("collected");
  });

  it("turns corrupt, truncated, huge, mis-named and wrong-schema state files into failures of their own steps, without crashing", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    allDone(fake);
    goodStates(fake, [`${THUMB}.prep`, `${THUMB}.metadata`]);
    const full = stateJson(`${THUMB}.renders.front`);
    fake.files.set(`states/${THUMB}.renders.front.json`, Buffer.from(full.slice(0, full.length / 2))); // truncated
    fake.files.set(`states/${THUMB}.renders.side.json`, Buffer.from("\u0000\u0001garbage{{{")); // corrupt
    fake.files.set(`states/${THUMB}.renders.top.json`, { error: `larger than the ${STATE_FILE_CAP}-byte limit` }); // huge: refused by the transport
    fake.files.set(`states/${THUMB}.renders.iso.json`, Buffer.from(stateJson(`${THUMB}.prep`))); // mis-named: another step's key
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => collectRun(ctx));
    const s = outcome.state.step_states ?? {};
    expect(s[`${THUMB}.prep`]?.success).toBe(true);
    expect(s[`${THUMB}.renders.front`]?.error).toMatch(/states\/thumbnail_shape\.renders\.front\.json is unusable: not valid JSON/);
    expect(s[`${THUMB}.renders.side`]?.error).toMatch(/unusable: not valid JSON/);
    expect(s[`${THUMB}.renders.top`]?.error).toMatch(/unusable: larger than/);
    expect(s[`${THUMB}.renders.iso`]?.error).toMatch(/names key "thumbnail_shape\.prep"/);
    expect(outcome.state.success).toBe(false);
    expect(exitCodeFrom(outcome.state)).toBe(4);
    expect(outcome.problems.map((p) => p.file).sort()).toEqual(VIEWS.map((v) => `${THUMB}.renders.${v}.json`).sort());
  });

  it("a state file of the wrong schema fails its step with the field named", () => {
    const parsed = parseFetchedStates(new Map([["states/p.a.json", Buffer.from(JSON.stringify({ key: "p.a", success: "yes" }))]]));
    expect(parsed.states.size).toBe(0);
    expect(parsed.problems[0]?.error).toMatch(/not a valid state file: .*success/);
  });

  it("never uses hostile remote names as paths: ../ names, absolute names and nested names are reported, nothing is written outside the run's directory", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    allDone(fake);
    goodStates(fake, allKeys);
    const escape = path.join(run.dir, "escaped.json");
    const hostile = [
      `states/../../../../../../..${escape}`,
      `../${path.basename(escape)}`,
      escape,
      `states/sub/${THUMB}.prep.json`,
      `states/..`,
    ];
    for (const name of hostile) fake.files.set(name, { error: "refused by the tar reader: escapes the directory" });
    fake.files.set("states/$(touch x).json", Buffer.from(stateJson(`${THUMB}.prep`)));
    const before = readdirSync(run.dir, { recursive: true }).map(String).sort();
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => collectRun(ctx));
    expect(existsSync(escape)).toBe(false);
    const after = readdirSync(run.dir, { recursive: true }).map(String).sort();
    expect(after.filter((f) => !before.includes(f))).toEqual([path.join("home", "runs", run.record.run_id, "result.json")]);
    // Every real step still succeeded: a hostile name is attributed to no step.
    expect(Object.values(outcome.state.step_states ?? {}).every((s) => s.success)).toBe(true);
    const problems = outcome.state.meta.state_problems as Array<{ file: string; error: string }>;
    expect(problems).toHaveLength(hostile.length + 1);
    expect(problems.map((p) => p.error).join("\n")).toContain("unexpected file name from the cluster");
  });

  it("jobs that died without state files become failed steps carrying the SLURM state and reason", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
    fake.squeue.set("200", [squeueTask("200", 0, "COMPLETED"), squeueTask("200", 1, "TIMEOUT", "TimeLimit"), squeueTask("200", 2, "NODE_FAIL"), squeueTask("200", 3, "OUT_OF_MEMORY")]);
    fake.squeue.set("300", [squeueJob("300", "CANCELLED", "DependencyNeverSatisfied")]);
    goodStates(fake, [`${THUMB}.prep`, `${THUMB}.renders.front`]);
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => collectRun(ctx));
    const s = outcome.state.step_states ?? {};
    expect(s[`${THUMB}.renders.side`]?.meta).toMatchObject({ not_run: true, slurm_state: "TIMEOUT", slurm_reason: "TimeLimit", task: 1, slurm_job_id: "200_1" });
    expect(s[`${THUMB}.renders.top`]?.meta).toMatchObject({ slurm_state: "NODE_FAIL" });
    expect(s[`${THUMB}.renders.iso`]?.meta).toMatchObject({ slurm_state: "OUT_OF_MEMORY" });
    expect(s[`${THUMB}.metadata`]?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied" });
    expect(s[`${THUMB}.metadata`]?.error).toContain("CANCELLED (DependencyNeverSatisfied)");
    expect(exitCodeFrom(outcome.state)).toBe(4);
  });

  it("while jobs still run, the result is partial and the record is not marked collected", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = new FakeTransport();
    fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
    fake.squeue.set("200", VIEWS.map((_, t) => squeueTask("200", t, "RUNNING")));
    fake.squeue.set("300", [squeueJob("300", "PENDING", "Dependency")]);
    goodStates(fake, [`${THUMB}.prep`]);
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => collectRun(ctx));
    expect(outcome.final).toBe(false);
    expect(outcome.state.success).toBe(false);
    expect((await run.store.readRecord(run.record.run_id)).phase).toBe("submitted");
  });

  it("reconciles a run whose submitter died before recording job ids: nothing on the cluster, so it is submit_failed and no step ran", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml", { phase: "submitting" });
    await run.store.updateRecord(run.record.run_id, { jobs: {} });
    const fake = new FakeTransport();
    const outcome = await withRun(run.record.run_id, { store: run.store, connect: async () => fake }, (ctx) => collectRun(ctx));
    expect(outcome.state.success).toBe(false);
    expect(Object.values(outcome.state.step_states ?? {}).filter((s) => s.success)).toEqual([]);
    expect((await run.store.readRecord(run.record.run_id)).phase).toBe("submit_failed");
  });
});
