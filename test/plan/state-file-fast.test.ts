/**
 * stateFileFast (src/plan/state-file.ts): the written-out checks a million pack
 * lines go through instead of zod. For every value, it either gives exactly
 * what stateFileSchema gives (same fields, same order) or null (then zod
 * decides); it never accepts what the schema refuses.
 */
import { describe, expect, it } from "vitest";
import { parseStateFile, STATE_FILE_FAST_COVERS, stateFileFast, stateFileSchema } from "../../src/plan/state-file.js";

/** A state line with every optional field, as the wrapper writes it. */
const FULL = {
  success: false,
  timestamp: "2026-12-07T00:00:00.001Z",
  duration_s: 0.021,
  provides: ["x", "y"],
  outputs: { published: {}, files: [] },
  error: "command exited with status 3",
  meta: { exit_code: 3, reason: null, item: "a/b.glb", log: "logs/p.m.items-0-99.s0" },
  signature: "4f1303545624",
  failure: "STEP_FAILED",
  key: "p.m.0.b",
  slurm: { job_id: "2", array_job_id: "1", array_task_id: "0", task: 0 },
  host: "vm",
  exit_code: 3,
  attempt: 1,
  cached: { run: "r1", step: "p.m.0.b", key: "a".repeat(64), ran: "2026-12-06T00:00:00.000Z" },
};

/** The same value through fresh JSON (what the readers pass). */
const fresh = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

/** Fast and zod agree on `value`; returns whether the fast path took it. */
function agree(value: unknown): boolean {
  const fast = stateFileFast(fresh(value));
  const zod = stateFileSchema.safeParse(fresh(value));
  if (fast === null) return false;
  expect(zod.success, `the fast path accepted what zod refuses: ${JSON.stringify(value)}`).toBe(true);
  // Same fields in the same order, nested too.
  expect(JSON.stringify(fast)).toBe(JSON.stringify(zod.data));
  expect(fast).toEqual(zod.data);
  return true;
}

const omit = (o: Record<string, unknown>, k: string): Record<string, unknown> => {
  const { [k]: _, ...rest } = o;
  return rest;
};

/** Values of every JSON type, wrong for most fields. */
const ODD: unknown[] = [null, true, false, 0, -1, 1.5, -0.5, 2 ** 53, "", "x", "x".repeat(70), "x".repeat(300), [], ["x"], [1], {}, { a: 1 }];

describe("stateFileFast", () => {
  it("knows every field of the schema (a field added to stateFileSchema must be added to stateFileFast too)", () => {
    expect(STATE_FILE_FAST_COVERS).toBe(true);
  });

  it("takes the wrapper's lines (every optional field, or none) and gives what zod gives", () => {
    expect(agree(FULL)).toBe(true);
    let bare: Record<string, unknown> = FULL;
    for (const k of ["slurm", "host", "exit_code", "attempt", "cached"]) bare = omit(bare, k);
    expect(agree(bare)).toBe(true);
    expect(agree({ ...FULL, success: true, error: null, failure: null, exit_code: null })).toBe(true);
    expect(agree({ ...FULL, slurm: { task: 4, job_id: "9" } })).toBe(true);
    expect(agree({ ...FULL, cached: omit(FULL.cached, "ran") })).toBe(true);
  });

  it("returns a line whose fields are the schema's, in its order, as it is (no copy)", () => {
    const line = fresh(FULL);
    expect(stateFileFast(line)).toBe(line);
    const reordered = fresh({ ...FULL, slurm: { task: 0, job_id: "2" } });
    expect(stateFileFast(reordered)).not.toBe(reordered);
    expect(agree(reordered)).toBe(true);
  });

  it("gives zod's field order and drops unknown fields, whatever order the line has", () => {
    const reversed: Record<string, unknown> = Object.fromEntries(Object.entries({ ...FULL, extra: 1 } as Record<string, unknown>).reverse());
    reversed.slurm = { task: 1, extra: "x", array_task_id: "3", job_id: "5" };
    expect(agree(reversed)).toBe(true);
    expect(Object.keys(stateFileFast(fresh(reversed)) ?? {})).toEqual([
      "success", "timestamp", "duration_s", "provides", "outputs", "error", "meta", "signature", "failure", "key", "slurm", "host", "exit_code", "attempt", "cached",
    ]);
    expect(Object.keys(stateFileFast(fresh(reversed))?.slurm ?? {})).toEqual(["job_id", "array_task_id", "task"]);
  });

  it("refuses every field of a wrong type, a missing required field, or a value out of range (zod then names it)", () => {
    let refused = 0;
    for (const field of Object.keys(FULL)) {
      const required = !["slurm", "host", "exit_code", "attempt", "cached"].includes(field);
      if (required) {
        expect(stateFileFast(fresh(omit(FULL, field)))).toBeNull();
        refused++;
      }
      for (const odd of ODD) {
        if (!agree({ ...FULL, [field]: odd })) refused++;
      }
    }
    for (const field of Object.keys(FULL.slurm)) for (const odd of ODD) if (!agree({ ...FULL, slurm: { ...FULL.slurm, [field]: odd } })) refused++;
    for (const field of Object.keys(FULL.cached)) for (const odd of ODD) if (!agree({ ...FULL, cached: { ...FULL.cached, [field]: odd } })) refused++;
    expect(refused).toBeGreaterThan(200);
    // Some by name: each is null from the fast path, and zod says why.
    for (const bad of [
      { ...FULL, duration_s: "0.5" },
      { ...FULL, duration_s: -1 },
      { ...FULL, exit_code: 1.5 },
      { ...FULL, attempt: 0 },
      { ...FULL, failure: "OOPS" },
      { ...FULL, meta: [] },
      { ...FULL, outputs: null },
      { ...FULL, provides: ["x".repeat(257)] },
      { ...FULL, key: "bad key" },
      { ...FULL, slurm: { ...FULL.slurm, task: -1 } },
      { ...FULL, cached: { ...FULL.cached, extra: 1 } },
      { ...FULL, cached: { ...FULL.cached, key: "A".repeat(64) } },
    ]) {
      expect(stateFileFast(fresh(bad))).toBeNull();
      const r = parseStateFile(fresh(bad));
      expect(r.success).toBe(false);
    }
  });

  it("leaves a __proto__ key and values that are not JSON's to zod", () => {
    const proto = JSON.parse(`{${JSON.stringify(FULL).slice(1, -1).replace('"meta":{', '"meta":{"__proto__":{"x":1},')}}`) as unknown;
    expect(stateFileFast(proto)).toBeNull();
    expect(parseStateFile(proto)).toEqual(stateFileSchema.safeParse(proto));
    expect(stateFileFast({ ...FULL, duration_s: Infinity })).toBeNull();
    expect(stateFileFast({ ...FULL, duration_s: NaN })).toBeNull();
    expect(stateFileFast({ ...FULL, meta: new Map() })).toBeNull();
    expect(stateFileFast(Object.assign(Object.create(null) as object, FULL))).toBeNull();
  });

  it("agrees with zod on random mutations of a line", () => {
    // A fixed-seed generator: the same cases every run.
    let seed = 16;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = <T>(list: readonly T[]): T => list[rand(list.length)] as T;
    let fast = 0;
    let refused = 0;
    for (let n = 0; n < 3000; n++) {
      const v = fresh(FULL) as Record<string, unknown>;
      for (let m = rand(3); m >= 0; m--) {
        const target = rand(4) === 0 ? (v.slurm as Record<string, unknown> | undefined) : rand(4) === 0 ? (v.cached as Record<string, unknown> | undefined) : v;
        if (target === undefined || typeof target !== "object" || target === null) continue;
        const field = pick([...Object.keys(target), "extra"]);
        const how = rand(3);
        if (how === 0) delete target[field];
        else target[field] = pick(ODD);
      }
      if (agree(v)) fast++;
      else {
        if (!stateFileSchema.safeParse(fresh(v)).success) refused++;
      }
    }
    // Both kinds are met: valid mutations (optional fields dropped, unknown ones added) and invalid ones.
    expect(fast).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(1000);
  });
});
