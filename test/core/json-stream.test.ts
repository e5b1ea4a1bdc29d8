/**
 * The streamed JSON writer (issue 16) produces exactly JSON.stringify's text,
 * in pieces, so a merged result too big for one string is written whole.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { writeJsonAtomic } from "../../src/core/atomic-json.js";
import { CompletedState } from "../../src/core/completed-state.js";
import { jsonChunks, writeJsonTo } from "../../src/core/json-stream.js";

const dir = mkdtempSync(join(tmpdir(), "hpcpipe-json-stream-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A merged result: a map of `n` items, each with its pipeline state and two step states. */
function mergedResult(n: number): CompletedState {
  const steps: Record<string, CompletedState> = {};
  steps["p.each"] = CompletedState.ok({ meta: { items: n, failed_items: [3, 7] } });
  for (let i = 0; i < n; i++) {
    steps[`p.each.${i}`] = CompletedState.ok({ meta: { item: `model-${i}.glb` } });
    steps[`p.each.${i}.a`] = CompletedState.ok({ outputs: { files: [`out/${i}.png`] }, meta: { exit_code: 0, slurm: { task: Math.floor(i / 100) } } });
    steps[`p.each.${i}.b`] = i % 50 === 3 ? CompletedState.fail(`exit 3\nline two "quoted"`, { failure: "STEP_FAILED" }) : CompletedState.ok({ duration_s: i / 7 });
  }
  return new CompletedState({ success: true, timestamp: "2026-12-07T00:00:00.000Z", duration_s: 1.5, meta: { run_id: "r" }, step_states: steps });
}

describe("jsonChunks", () => {
  it("gives JSON.stringify's exact text for values of every shape, indented or not", () => {
    const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i % 3 === 0 ? { deep: [1, { x: undefined, y: null }], s: "a\nb" } : i % 3 === 1 ? undefined : [i, undefined, () => 1]]));
    const values: unknown[] = [
      null, 3, "x", [], {}, { a: undefined }, [undefined],
      big,
      { nested: { list: Array.from({ length: 150 }, (_, i) => (i % 2 === 0 ? { i } : undefined)), big } },
      Array.from({ length: 100 }, (_, i) => ({ i, t: new Date(0), m: new Map() })),
      mergedResult(40),
      { run: mergedResult(30), also: [mergedResult(2)] },
    ];
    for (const value of values) {
      for (const indent of [2, 0, 4]) expect(Array.from(jsonChunks(value, indent)).join("")).toBe(JSON.stringify(value, null, indent));
    }
  });

  it("hands a result of 10,000 items out in pieces of about 1 MiB, the same text as JSON.stringify", () => {
    const state = mergedResult(10_000);
    const chunks = Array.from(jsonChunks(state));
    expect(chunks.length).toBeGreaterThan(3);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThan(2 * 1024 * 1024);
    expect(chunks.join("")).toBe(JSON.stringify(state, null, 2));
  });

  it("writeJsonAtomic and writeJsonTo write that text and a newline; the file reads back as the same state", async () => {
    const state = mergedResult(5_000);
    const path = join(dir, "result.json");
    await writeJsonAtomic(path, state, { mode: 0o600 });
    const text = readFileSync(path, "utf8");
    expect(text).toBe(`${JSON.stringify(state, null, 2)}\n`);
    expect(CompletedState.fromJSON(JSON.parse(text)).step_states?.["p.each.4999.b"]?.duration_s).toBeCloseTo(4999 / 7);
    const out = new PassThrough({ highWaterMark: 1024 });
    const got: Buffer[] = [];
    out.on("data", (d: Buffer) => got.push(d));
    await writeJsonTo(out, state);
    expect(Buffer.concat(got).toString("utf8")).toBe(text);
  });
});
