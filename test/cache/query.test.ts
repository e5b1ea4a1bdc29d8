// The step cache's query (src/cache/remote.ts), its script run with a real bash and awk against a store laid
// out as jobs write it: entries in family files (several per family, one per writing process), and files of
// one entry (the layout before families). Only the families asked are read; a cut line, a link, an entry
// that did not succeed and another user's file are not used; the caller's files with a hit are touched.
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CACHE_SCRIPTS, CacheAnswerReader, cacheQueryInput, parseCacheAnswer } from "../../src/cache/remote.js";

const hex = (c: string): string => c.repeat(64);
const FAM_A = hex("a");
const FAM_B = hex("b");
const K = { one: hex("1"), two: hex("2"), three: hex("3"), four: hex("4"), old: hex("5"), failed: hex("6"), theirs: hex("7"), none: hex("8") };

const entry = (key: string, extra: { success?: boolean; pub?: string } = {}): string =>
  JSON.stringify({
    format: 1,
    key,
    step: "p.m.0.a",
    run: "20261207-000000-abcdef",
    state: { success: extra.success ?? true, timestamp: "2026-12-07T00:00:00.000Z", duration_s: 1, provides: [], outputs: { published: {}, files: [] }, error: extra.success === false ? "boom" : null, meta: {}, signature: "s", failure: extra.success === false ? "COMMAND_FAILED" : null, key: "p.m.0.a" },
    pub: extra.pub ?? "",
    outputs: [],
  });

describe("the step cache's query", () => {
  let dir: string;
  let store: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-cachequery-"));
    store = join(dir, "store");
    mkdirSync(join(store, "cache", "f", FAM_A), { recursive: true });
    mkdirSync(join(store, "cache", "f", FAM_B), { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const query = (families: Map<string, string[]>, trustUsers = "") => {
    const { stdin, keys } = cacheQueryInput(families);
    const r = spawnSync("bash", ["-c", CACHE_SCRIPTS.query, "hpcpipe-cache-query", store, "", trustUsers, ""], { input: stdin, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return { answer: parseCacheAnswer(r.stdout, keys), stdout: r.stdout };
  };

  it("finds keys in the family files asked, in the files of one entry, and nowhere else", () => {
    // Two processes' files of family A; a cut last line (a crash) in one; a link; family B holds key four.
    writeFileSync(join(store, "cache", "f", FAM_A, "r.h.1.jsonl"), `${entry(K.one, { pub: "size=3\nnote=é\n" })}\n${entry(K.failed, { success: false })}\n${entry(K.two).slice(0, 50)}`);
    writeFileSync(join(store, "cache", "f", FAM_A, "r.h.2.jsonl"), `${entry(K.three)}\n${entry(K.two)}\n`);
    writeFileSync(join(dir, "planted.jsonl"), `${entry(K.none)}\n`);
    symlinkSync(join(dir, "planted.jsonl"), join(store, "cache", "f", FAM_A, "link.jsonl"));
    writeFileSync(join(store, "cache", "f", FAM_B, "r.h.3.jsonl"), `${entry(K.four)}\n`);
    mkdirSync(join(store, "cache", "55"), { recursive: true });
    writeFileSync(join(store, "cache", "55", `${K.old}.json`), `${entry(K.old)}\n`);
    // Key four is asked of family A: B's file is not read.
    const { answer } = query(new Map([[FAM_A, [K.one, K.two, K.three, K.four, K.old, K.failed, K.none]]]));
    expect([...answer.entries.keys()].sort()).toEqual([K.one, K.two, K.three, K.old].sort());
    expect(answer.entries.get(K.one)?.pub).toBe("size=3\nnote=é\n");
    expect(answer.invalid).toEqual([K.failed]);
    expect(answer.untrusted).toBe(0);
    expect(answer.storePath).toBe(store);
  });

  it("touches the caller's files that held a hit, and only those", () => {
    const used = join(store, "cache", "f", FAM_A, "used.jsonl");
    const idle = join(store, "cache", "f", FAM_A, "idle.jsonl");
    writeFileSync(used, `${entry(K.one)}\n`);
    writeFileSync(idle, `${entry(K.two)}\n`);
    const past = new Date("2020-01-01T00:00:00Z");
    utimesSync(used, past, past);
    utimesSync(idle, past, past);
    query(new Map([[FAM_A, [K.one]]]));
    expect(statSync(used).mtimeMs).toBeGreaterThan(past.getTime());
    expect(statSync(idle).mtimeMs).toBe(past.getTime());
  });

  it.runIf(process.getuid?.() === 0)("counts another user's entries as untrusted unless the config trusts that user", () => {
    const theirs = join(store, "cache", "f", FAM_A, "theirs.jsonl");
    writeFileSync(theirs, `${entry(K.theirs)}\n${entry(K.one)}\n`);
    chownSync(theirs, 65534, 65534);
    writeFileSync(join(store, "cache", "f", FAM_A, "mine.jsonl"), `${entry(K.one)}\n`);
    const asked = new Map([[FAM_A, [K.theirs, K.one]]]);
    // K.one is also in a file of ours: used, and not counted as untrusted.
    let { answer } = query(asked);
    expect([...answer.entries.keys()]).toEqual([K.one]);
    expect(answer.untrusted).toBe(1);
    const name = spawnSync("id", ["-nu", "65534"], { encoding: "utf8" }).stdout.trim();
    ({ answer } = query(asked, name));
    expect([...answer.entries.keys()].sort()).toEqual([K.theirs, K.one].sort());
    expect(answer.untrusted).toBe(0);
  });

  it("says how many keys it read: an answer cut short is an error", () => {
    const { stdout } = query(new Map([[FAM_A, [K.one, K.two]]]));
    expect(stdout).toMatch(/^end 2$/m);
    expect(() => parseCacheAnswer(stdout.replace(/^end 2$/m, ""), [K.one, K.two])).toThrow(/the answer was cut short/);
  });

  it("refuses a key or family that is not 64 hex digits before asking", () => {
    expect(() => cacheQueryInput(new Map([[FAM_A, ["$(rm -rf ~)"]]]))).toThrow(/not a cache key/);
    expect(() => cacheQueryInput(new Map([["../../etc", [K.one]]]))).toThrow(/not a cache family/);
  });

  it("writes each family and its keys into one stdin buffer, and reads the i-th key back from it", () => {
    const hex = (n: number): string => n.toString(16).padStart(64, "0");
    const famB = "b".repeat(64);
    const a = [hex(1), hex(2), hex(3)];
    const b = new Set([hex(10), hex(11)]);
    const { stdin, keys } = cacheQueryInput(new Map<string, Iterable<string>>([[FAM_A, a], [famB, b], ["c".repeat(64), []]]));
    expect(stdin.toString("latin1")).toBe(`F ${FAM_A}\n${a.join("\n")}\nF ${famB}\n${[...b].join("\n")}\nF ${"c".repeat(64)}\n`);
    expect(keys.length).toBe(5);
    expect(Array.from({ length: 6 }, (_, i) => keys.at(i))).toEqual([...a, ...b, undefined]);
    expect([keys.at(-1), keys.at(1.5)]).toEqual([undefined, undefined]);
    expect([keys.has(hex(2)), keys.has(hex(11)), keys.has(hex(4))]).toEqual([true, true, false]);
  });

  it("reads an answer in any chunks the same as whole (a line or a character may be split)", () => {
    writeFileSync(join(store, "cache", "f", FAM_A, "r.jsonl"), `${entry(K.one, { pub: "ünïcödé ✓\n" })}\n${entry(K.two)}\n`);
    const keys = [K.one, K.two, K.three];
    const { stdout } = query(new Map([[FAM_A, keys]]));
    const whole = parseCacheAnswer(stdout, keys);
    const reader = new CacheAnswerReader(keys);
    const bytes = Buffer.from(stdout, "utf8");
    for (let i = 0; i < bytes.length; i += 7) reader.write(bytes.subarray(i, i + 7));
    const chunked = reader.finish();
    expect(chunked.entries).toEqual(whole.entries);
    expect(chunked.entries.get(K.one)?.pub).toBe("ünïcödé ✓\n");
  });
});
