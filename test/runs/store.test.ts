import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { RunStore, RunStoreError, UnknownRunError } from "../../src/runs/index.js";
import type { RunRecord } from "../../src/runs/index.js";

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
