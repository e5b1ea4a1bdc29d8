// The step cache's answer (src/cache/remote.ts parseCacheAnswer): hits with their entries, and "gone" for
// a hit whose output blob the store no longer holds (a miss); a "gone" for no hit is ignored.
import { describe, expect, it } from "vitest";
import { parseCacheAnswer } from "../../src/cache/remote.js";

const K1 = "a".repeat(64);
const K2 = "b".repeat(64);
const SHA = "c".repeat(64);

function entry(key: string): string {
  const state = { success: true, timestamp: "2026-01-01T00:00:00.000Z", duration_s: 1, provides: [], outputs: {}, error: null, meta: {}, signature: "s", failure: null, key: "p.one" };
  return JSON.stringify({ format: 1, key, step: "p.one", run: "r", state, pub: "", outputs: [{ path: "out/x.png", sha256: SHA }] });
}

describe("the step cache's answer", () => {
  it("names the hits whose output blobs are gone", () => {
    const answer = parseCacheAnswer(`store /s\nhit 0 ${entry(K1)}\ngone 0\nhit 1 ${entry(K2)}\nend 2\n`, [K1, K2]);
    expect([...answer.entries.keys()]).toEqual([K1, K2]);
    expect([...answer.gone]).toEqual([K1]);
  });

  it("ignores a gone line for a key that is not a usable hit", () => {
    const answer = parseCacheAnswer(`store /s\nhit 0 {not json\ngone 0\ngone 1\nend 2\n`, [K1, K2]);
    expect(answer.invalid).toEqual([K1]);
    expect(answer.gone.size).toBe(0);
  });
});
