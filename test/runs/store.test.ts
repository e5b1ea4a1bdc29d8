import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import { ManualClock } from "../../src/core/clock.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { RunStore, RunStoreError, UnknownRunError } from "../../src/runs/index.js";
import type { RunRecord } from "../../src/runs/index.js";
import { REPO } from "../app/fakes.js";

let dir: string;
let root: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-store-test-"));
  root = path.join(dir, "home");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function record(runId: string, extra: Partial<RunRecord> = {}): RunRecord {
  return {
    format: 1,
    run_id: runId,
    pipeline: "p",
    spec: "/specs/p.yaml",
    cluster: "c",
    cluster_config: "/configs/c.yaml",
    remote_dir: `$HOME/runs/p/${runId}`,
    plan_signature: "0123456789ab",
    created: "2026-01-01T00:00:00.000Z",
    updated: "2026-01-01T00:00:00.000Z",
    phase: "submitting",
    jobs: {},
    error: null,
    resumes: null,
    ...extra,
  };
}

const mode = (p: string): number => statSync(p).mode & 0o777;

describe("RunStore", () => {
  it("writes records with mode 600 in run directories with mode 700, and reads them back", async () => {
    const store = new RunStore(root);
    await store.writeRecord(record("r1", { jobs: { j000: "12" } }));
    expect(mode(path.join(root, "runs"))).toBe(0o700);
    expect(mode(path.join(root, "runs", "r1"))).toBe(0o700);
    expect(mode(path.join(root, "runs", "r1", "run.json"))).toBe(0o600);
    expect((await store.readRecord("r1")).jobs).toEqual({ j000: "12" });
    const result = await store.writeResult("r1", { success: true });
    expect(mode(result)).toBe(0o600);
  });

  it("leaves no temp files behind, and updateRecord stamps the time from its clock", async () => {
    const clock = new ManualClock(5_000);
    const store = new RunStore(root, clock);
    await store.writeRecord(record("r1"));
    const updated = await store.updateRecord("r1", { phase: "submitted", jobs: { j000: "7" } });
    expect(updated.updated).toBe(clock.isoNow());
    expect(updated.created).toBe("2026-01-01T00:00:00.000Z");
    expect(readdirSync(path.join(root, "runs", "r1"))).toEqual(["run.json"]);
  });

  it("keeps concurrent writers of different runs apart: every run reads back its own record", async () => {
    const store = new RunStore(root);
    const ids = Array.from({ length: 40 }, (_, i) => `run-${i}`);
    await Promise.all(ids.map((id, i) => store.writeRecord(record(id, { jobs: { j000: String(1000 + i) }, pipeline: `p${i}` }))));
    await Promise.all(ids.map((id) => store.updateRecord(id, { phase: "submitted" })));
    for (const [i, id] of ids.entries()) {
      const r = await store.readRecord(id);
      expect(r).toMatchObject({ run_id: id, pipeline: `p${i}`, jobs: { j000: String(1000 + i) }, phase: "submitted" });
    }
    expect((await store.list()).records).toHaveLength(40);
  });

  it("concurrent updates of the same run leave one whole, valid record (the last rename wins)", async () => {
    const store = new RunStore(root);
    await store.writeRecord(record("r1"));
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.writeRecord(record("r1", { error: `writer ${i}` }))));
    expect((await store.readRecord("r1")).error).toMatch(/^writer \d+$/);
  });

  it("refuses a corrupt record with a clear error naming the file", async () => {
    const store = new RunStore(root);
    await store.writeRecord(record("r1"));
    const file = path.join(root, "runs", "r1", "run.json");
    writeFileSync(file, '{"format": 1, "run_id": "r1", "phase": ');
    await expect(store.readRecord("r1")).rejects.toThrow(RunStoreError);
    await expect(store.readRecord("r1")).rejects.toThrow(`${file}: not valid JSON`);
    writeFileSync(file, JSON.stringify({ ...record("r1"), phase: "exploded", jobs: { j000: "12; rm -rf /" } }));
    await expect(store.readRecord("r1")).rejects.toThrow(/not a valid run record: phase: .*jobs\.j000/s);
    writeFileSync(file, JSON.stringify(record("r2")));
    await expect(store.readRecord("r1")).rejects.toThrow(/the record is of run "r2"/);
  });

  it("says plainly when a run is unknown, and never reads outside its root for a hostile run id", async () => {
    const store = new RunStore(root);
    await expect(store.readRecord("nope")).rejects.toThrow(UnknownRunError);
    await expect(store.readRecord("nope")).rejects.toThrow(/no run "nope" in .*runs/);
    for (const id of ["../../etc/passwd", "..", ".hidden", "a/b", ""]) await expect(store.readRecord(id)).rejects.toThrow(UnknownRunError);
  });

  it("checks a saved plan before using it", async () => {
    const store = new RunStore(root);
    await store.writeRecord(record("r1"));
    await expect(store.readPlan("r1")).rejects.toThrow(/its plan is missing/);
    await writeFile(path.join(root, "runs", "r1", "plan.json"), JSON.stringify({ format: 1, runId: "r1", jobs: [{ id: 3 }] }));
    await expect(store.readPlan("r1")).rejects.toThrow(/plan\.json: not a valid plan: /);
  });

  it("lists records newest first and reports unreadable ones without failing", async () => {
    const store = new RunStore(root);
    await store.writeRecord(record("old", { created: "2026-01-01T00:00:00.000Z" }));
    await store.writeRecord(record("new", { created: "2026-02-01T00:00:00.000Z" }));
    await mkdir(path.join(root, "runs", "broken"), { recursive: true });
    writeFileSync(path.join(root, "runs", "broken", "run.json"), "garbage");
    const { records, problems } = await store.list();
    expect(records.map((r) => r.run_id)).toEqual(["new", "old"]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("broken");
    expect((await new RunStore(path.join(dir, "empty")).list()).records).toEqual([]);
  });
});

describe("RunStore: the plan index (what a status poll reads)", () => {
  /** A compiled plan with a map of staged files (items, their hashes and the items file). */
  function compiled(runId: string): CompiledPlan {
    const specDir = path.join(dir, "spec");
    mkdirSync(path.join(specDir, "models"), { recursive: true });
    for (const name of ["a", "b", "c"]) writeFileSync(path.join(specDir, "models", `${name}.glb`), `bytes of ${name}`);
    const spec = path.join(specDir, "p.yaml");
    writeFileSync(spec, 'name: p\nsteps:\n  - map: m\n    items_glob: "models/*.glb"\n    steps:\n      - step: s\n        run: "true"\n');
    return preparePlan({ spec, cluster: path.join(REPO, "cluster-configs", "localcluster.yaml"), runId }).plan;
  }
  const planPath = (runId: string): string => path.join(root, "runs", runId, "plan.json");
  const indexPath = (runId: string): string => path.join(root, "runs", runId, "plan-index.json");
  /** Points the index at plan.json as it is now (as if it had been written so). */
  function repointIndex(runId: string): void {
    const index = JSON.parse(readFileSync(indexPath(runId), "utf8")) as { plan_file: unknown };
    const info = statSync(planPath(runId));
    index.plan_file = { ino: info.ino, size: info.size, mtime_ms: info.mtimeMs };
    writeFileSync(indexPath(runId), JSON.stringify(index));
  }

  it("writes plan.json whole and an index without what grows with the items; reads the same plan back", async () => {
    const store = new RunStore(root);
    const plan = compiled("r1");
    expect(plan.itemHashes?.["p.m"]).toHaveLength(3);
    await store.writePlan(plan);
    expect(mode(indexPath("r1"))).toBe(0o600);
    expect(JSON.parse(readFileSync(planPath("r1"), "utf8"))).toEqual(JSON.parse(JSON.stringify(plan)));
    const index = JSON.parse(readFileSync(indexPath("r1"), "utf8")) as { plan: Record<string, unknown> };
    expect(Object.keys(index.plan)).not.toContain("items");
    expect(Object.keys(index.plan)).not.toContain("itemHashes");
    expect(Object.keys(index.plan)).not.toContain("files");
    const back = await store.readPlan("r1");
    expect(back.jobs).toEqual(plan.jobs);
    expect(back.items).toEqual(plan.items);
    expect(back.itemHashes).toEqual(plan.itemHashes);
    expect(Object.keys(back.files).sort()).toEqual(Object.keys(plan.files).sort());
    expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(plan)));
    expect("p.m" in back.items && !("nope" in back.items)).toBe(true);
    // A plan without staged files has no itemHashes, read either way.
    const { itemHashes: _hashes, ...plain } = compiled("r2");
    await store.writePlan(plain);
    expect((await store.readPlan("r2")).itemHashes).toBeUndefined();
  });

  it("reads only the index until the items are used: a damaged plan.json is then an error naming it", async () => {
    const store = new RunStore(root);
    const plan = compiled("r1");
    await store.writePlan(plan);
    writeFileSync(planPath("r1"), '{"format": 1, "items": {"p.m": ["a.glb", ');
    repointIndex("r1");
    const back = await store.readPlan("r1");
    expect(back.jobs).toEqual(plan.jobs);
    expect(back.tree).toEqual(plan.tree);
    // Copying the plan (as the retries do) reads nothing either.
    const copy = { ...back, jobs: [...back.jobs] };
    expect(() => copy.items["p.m"]).toThrow(RunStoreError);
    expect(() => back.items["p.m"]).toThrow(`${planPath("r1")}: not valid JSON`);
    expect(() => Object.keys(back.files)).toThrow(`${planPath("r1")}: not valid JSON`);
    // Valid JSON, but not a valid plan: checked as a whole plan.json is.
    writeFileSync(planPath("r1"), JSON.stringify({ ...plan, items: { "p.m": [3] } }));
    repointIndex("r1");
    const again = await store.readPlan("r1");
    expect(() => again.items["p.m"]).toThrow(/plan\.json: not a valid plan: items\."p\.m"\.0: .*expected string/);
  });

  it("does not use an index made from another plan.json: a plan written again since, or a run saved before the index", async () => {
    const store = new RunStore(root);
    const plan = compiled("r1");
    await store.writePlan(plan);
    // plan.json written again without its index (a writer stopped between the two files, or an older hpcpipe).
    const other = { ...plan, jobs: plan.jobs.slice(0, 1), items: { "p.m": ["x.glb"] } };
    writeFileSync(planPath("r1"), JSON.stringify(other));
    const back = await store.readPlan("r1");
    expect(back.jobs).toEqual(other.jobs);
    expect(back.items).toEqual(other.items);
    // A run saved before the index: plan.json only.
    rmSync(indexPath("r1"));
    expect((await store.readPlan("r1")).items).toEqual(other.items);
  });

  it("refuses to mix two plans: plan.json written again after the index was read is an error when the items are used", async () => {
    const store = new RunStore(root);
    const plan = compiled("r1");
    await store.writePlan(plan);
    const back = await store.readPlan("r1");
    await store.writePlan({ ...plan, items: { "p.m": ["x.glb", "y.glb", "z.glb"] } });
    expect(() => back.items["p.m"]).toThrow(/plan\.json was written again while this command was using it/);
    expect((await store.readPlan("r1")).items["p.m"]).toEqual(["x.glb", "y.glb", "z.glb"]);
  });

  it("a damaged index is an error naming it; a plan written again (from a plan read lazily) is whole", async () => {
    const store = new RunStore(root);
    const plan = compiled("r1");
    await store.writePlan(plan);
    await store.writePlan(await store.readPlan("r1"));
    expect(JSON.parse(readFileSync(planPath("r1"), "utf8"))).toEqual(JSON.parse(JSON.stringify(plan)));
    expect((await store.readPlan("r1")).items).toEqual(plan.items);
    writeFileSync(indexPath("r1"), '{"format": 1, "run_id": ');
    await expect(store.readPlan("r1")).rejects.toThrow(`${indexPath("r1")}: not valid JSON`);
    writeFileSync(indexPath("r1"), JSON.stringify({ format: 1, run_id: "r1", plan_file: { ino: 1, size: 1, mtime_ms: 1 }, item_hashes: true, plan: { format: 1, runId: "r1", jobs: [{ id: 3 }] } }));
    await expect(store.readPlan("r1")).rejects.toThrow(/plan-index\.json: not a valid plan index: .*jobs\.0/s);
    writeFileSync(indexPath("r1"), JSON.stringify({ format: 1, run_id: "r2", plan_file: { ino: 1, size: 1, mtime_ms: 1 }, item_hashes: true, plan: { ...JSON.parse(JSON.stringify(plan)), runId: "r2" } }));
    await expect(store.readPlan("r1")).rejects.toThrow(/plan-index\.json: the plan index is of run "r2", not "r1"/);
    // plan.json missing: the same error as without an index.
    rmSync(planPath("r1"));
    await expect(store.readPlan("r1")).rejects.toThrow(/its plan is missing/);
  });
});
