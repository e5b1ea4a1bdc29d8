/**
 * The line-per-item file of a merged result (src/core/item-lines.ts): its
 * writer and reader, the threshold, the iterator over a map's items read
 * inline or from the file, and the streamed merge (a states directory read
 * file by file) giving the same result as the merge of every file at once.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildStepIndex, stepSlots } from "../../src/collect/job-index.js";
import { mergeFromSource, mergeStates, treeHasKey } from "../../src/collect/merge.js";
import type { JobFact } from "../../src/collect/merge.js";
import { readStateDir } from "../../src/collect/read-states.js";
import { DirSource, SpoolSource } from "../../src/collect/state-source.js";
import { parseFetchedStates } from "../../src/app/collect.js";
import { CompletedState } from "../../src/core/completed-state.js";
import { ItemLinesError, ItemLinesWriter, itemsFileOf, itemsInlineMax, ITEMS_FILE, readItemLines } from "../../src/core/item-lines.js";
import { mapItemStates } from "../../src/core/map-items.js";
import type { MapItemState } from "../../src/core/map-items.js";
import { readResultFile, writeResultFile } from "../../src/core/result-file.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { compilePlan, conformanceCases, map, pipeline, stateFile, step } from "../local/helpers.js";

const NOW = "2026-02-01T00:00:00.000Z";
const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-item-lines-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes state files as the wrapper does (one JSON line each) into `dir/states`. */
function writeStates(dir: string, files: Iterable<StateFile>, extra: Record<string, string> = {}): string {
  const states = join(dir, "states");
  mkdirSync(states, { recursive: true });
  for (const f of files) writeFileSync(join(states, `${f.key}.json`), `${JSON.stringify(f)}\n`);
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(states, name), text);
  return states;
}

/** A map of `n` items, two steps each, some failing, with the item text in meta as the wrapper records it. */
function mapRun(n: number, fails: (i: number) => boolean = (i) => i % 7 === 3): { plan: CompiledPlan; files: StateFile[] } {
  const items = Array.from({ length: n }, (_, i) => `item-${i}`);
  const plan = compilePlan(pipeline("p", [step("prep"), map("m", items, [step("a"), step("b")], { continue_on_item_error: true }), step("post")]), "/nonexistent/run");
  const files: StateFile[] = [stateFile("p.prep", true), stateFile("p.post", true)];
  for (let i = 0; i < n; i++) {
    const meta = { exit_code: 0, reason: null, item: items[i] };
    files.push(stateFile(`p.m.${i}.a`, true, { meta, duration_s: 1 + (i % 13) }));
    if (i % 11 === 5) continue; // b never wrote its state: not run, or missing
    const bad = fails(i);
    files.push(stateFile(`p.m.${i}.b`, !bad, { meta: { ...meta, exit_code: bad ? 3 : 0 } }));
    files.push(stateFile(`p.m.${i}`, !bad, { meta: { item: items[i] }, duration_s: 2 + (i % 17) }));
  }
  return { plan, files };
}

const plainItems = (it: Iterable<MapItemState>): unknown[] =>
  [...it].map((x) => ({ index: x.index, item: x.item, state: x.state?.toJSON() ?? null, steps: Object.fromEntries(Object.entries(x.steps).map(([k, v]) => [k, v.toJSON()])) }));

describe("the lines file: writer and reader", () => {
  it("reads back what was written, line by line, and only the asked map's lines", () => {
    const dir = tempDir();
    const w = new ItemLinesWriter(dir);
    const s = CompletedState.ok({ timestamp: NOW, meta: { item: "é/ü" } }).toJSON();
    for (let i = 0; i < 2500; i++) w.write({ map: i % 2 === 0 ? "p.m" : "p.n", index: i, item: `x${i}`, state: s, steps: { a: s } });
    const path = w.finish();
    expect(path.startsWith(dir)).toBe(true);
    const lines = [...readItemLines(path, "p.m")];
    expect(lines).toHaveLength(1250);
    expect(lines[1]).toEqual({ map: "p.m", index: 2, item: "x2", state: s, steps: { a: s } });
    expect([...readItemLines(path)]).toHaveLength(2500);
  });

  it("writes exactly JSON.stringify of each line, across its buffer's ends, multi-byte text and a line longer than the buffer", () => {
    const dir = tempDir();
    const w = new ItemLinesWriter(dir);
    const expected: string[] = [];
    const put = (line: Parameters<ItemLinesWriter["write"]>[0]): void => {
      w.write(line);
      expected.push(`${JSON.stringify(line)}\n`);
    };
    const s = CompletedState.ok({ timestamp: NOW, meta: { item: "é/ü/😀/\u2028" } }).toJSON();
    // ~5,000 lines of 1-3 KiB (several 4 MiB buffers), one of 6 MiB of 3-byte characters, then more.
    for (let i = 0; i < 3000; i++) put({ map: "p.m", index: i, item: "€".repeat(i % 700), state: s, steps: { a: s } });
    put({ map: "p.m", index: 3000, item: "€".repeat(2 << 20), state: null, steps: {} });
    for (let i = 3001; i < 5000; i++) put({ map: "p.m", index: i, item: `x${i}`, state: s, steps: {} });
    const path = w.finish();
    expect(w.count).toBe(5000);
    expect(readFileSync(path).equals(Buffer.from(expected.join(""), "utf8"))).toBe(true);
    expect([...readItemLines(path)].map((l) => l.index)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it("refuses a torn last line, naming the file and the line", () => {
    const dir = tempDir();
    const path = join(dir, ITEMS_FILE);
    const good = JSON.stringify({ map: "p.m", index: 0, item: null, state: null, steps: {} });
    writeFileSync(path, `${good}\n${good.slice(0, 20)}`);
    expect(() => [...readItemLines(path)]).toThrow(ItemLinesError);
    expect(() => [...readItemLines(path)]).toThrow(`${path}: line 2: torn (no newline at its end)`);
  });

  it("refuses a corrupt line (bad JSON, or JSON that is not an item line), naming the file and the line", () => {
    const dir = tempDir();
    const path = join(dir, ITEMS_FILE);
    const good = JSON.stringify({ map: "p.m", index: 0, item: null, state: null, steps: {} });
    writeFileSync(path, `${good}\n${good}\n{"map": "p.m", "ind\n`);
    expect(() => [...readItemLines(path)]).toThrow(`${path}: line 3: not valid JSON`);
    writeFileSync(path, `${good}\n${JSON.stringify({ map: "p.m", index: -1, item: null, state: null, steps: {} })}\n`);
    expect(() => [...readItemLines(path)]).toThrow(`${path}: line 2: not an item line`);
    writeFileSync(path, `${JSON.stringify({ map: "p.m", index: 1, item: null, state: { success: "yes" }, steps: {} })}\n`);
    expect(() => [...readItemLines(path)]).toThrow(`${path}: line 1: not an item line`);
  });

  it("takes the threshold from HPCPIPE_ITEMS_INLINE_MAX, default 1,000, and refuses a bad value", () => {
    expect(itemsInlineMax({})).toBe(1000);
    expect(itemsInlineMax({ HPCPIPE_ITEMS_INLINE_MAX: "0" })).toBe(0);
    expect(itemsInlineMax({ HPCPIPE_ITEMS_INLINE_MAX: "25" })).toBe(25);
    expect(() => itemsInlineMax({ HPCPIPE_ITEMS_INLINE_MAX: "-1" })).toThrow(/HPCPIPE_ITEMS_INLINE_MAX must be a whole number/);
    expect(() => itemsInlineMax({ HPCPIPE_ITEMS_INLINE_MAX: "many" })).toThrow(/HPCPIPE_ITEMS_INLINE_MAX/);
  });
});

describe("the streamed merge (a states directory read file by file)", () => {
  it.each(conformanceCases)("%s: gives the same CompletedState as the merge of every file read at once", async (_n, tree) => {
    const dir = tempDir();
    const plan = compilePlan(tree, join(dir, "run"));
    // Every leaf ran and succeeded except every third; plus an unknown state, a bad file and a badly named file.
    const slots = [...buildStepIndex(plan).keys()];
    const files = slots.map((k, i) => stateFile(k, i % 3 !== 1));
    const statesDir = writeStates(dir, [...files, stateFile(`${plan.tree.key}.zzz`, true)], { [`${slots[0] ?? "x"}.json`]: "{", "not a key!.json": "{}", ".p.a.json.tmp.1": "{" });
    const facts = new Map<string, JobFact>(plan.jobs.map((j) => [j.id, { state: "COMPLETED", reason: null }]));
    const { states, problems } = await readStateDir(statesDir);
    const before = mergeStates(plan, states, { now: NOW, jobFacts: facts, problems });
    const source = new DirSource(statesDir);
    const after = mergeFromSource(plan, source, { now: NOW, jobFacts: facts });
    expect(after.toJSON()).toEqual(before.toJSON());
    expect(after.meta.unknown_states).toEqual([`${plan.tree.key}.zzz`]);
    expect(new Set(source.problems.map((p) => p.file))).toEqual(new Set(problems.map((p) => p.file)));
    expect(source.files).toBe(states.size + problems.length);
  });

  it("a map of 200 items: the same result, failed and missing steps included", async () => {
    const dir = tempDir();
    const { plan, files } = mapRun(200);
    const statesDir = writeStates(dir, files);
    const facts = new Map<string, JobFact>(plan.jobs.map((j) => [j.id, { state: "COMPLETED", reason: null }]));
    const { states, problems } = await readStateDir(statesDir);
    const before = mergeStates(plan, states, { now: NOW, jobFacts: facts, problems });
    const after = mergeFromSource(plan, new DirSource(statesDir), { now: NOW, jobFacts: facts });
    expect(after.toJSON()).toEqual(before.toJSON());
  });

  it("answers every step key as buildStepIndex does, without a row per item (chunked maps)", () => {
    const items = Array.from({ length: 25 }, (_, i) => `i${i}`);
    const plan = compilePlan(pipeline("p", [step("s"), map("m", items, [step("a"), step("b")], { maxArraySize: 10 })]), "/nonexistent/run");
    const slots = stepSlots(plan);
    const full = buildStepIndex(plan);
    expect(full.size).toBe(1 + 25 * 2);
    for (const [key, slot] of full) expect(slots.get(key)).toEqual(slot);
    for (const key of ["p.m.25.a", "p.m.01.a", "p.m.3.c", "p.x"]) expect(slots.get(key)).toBeUndefined();
  });

  it("knows which keys are steps of the tree (a map's items within its count)", () => {
    const { plan } = mapRun(12);
    for (const key of ["p", "p.prep", "p.m", "p.m.0", "p.m.11.b", "p.post"]) expect(treeHasKey(plan, key)).toBe(true);
    for (const key of ["p.m.12", "p.m.12.a", "p.m.01.a", "p.m.x", "p.m.3.c", "q.prep", "p.prepx"]) expect(treeHasKey(plan, key)).toBe(false);
  });
});

describe("the spooled merge (state files from a transfer, spooled to disk as they arrive)", () => {
  it("gives the same CompletedState as the merge of the fetched files held in memory, and removes its spool", () => {
    const dir = tempDir();
    const { plan, files } = mapRun(150);
    const fetched = new Map<string, Buffer | { error: string }>();
    for (const f of files) fetched.set(`states/${f.key}.json`, Buffer.from(`${JSON.stringify(f)}\n`));
    // A bad file of a step, one too large (the transfer's error), a state no step has, a bad name, an unexpected path.
    fetched.set("states/p.m.4.a.json", Buffer.from("{"));
    fetched.set("states/p.m.5.a.json", { error: "skipped: 2000000 bytes exceeds the limit of 1048576 bytes per file" });
    fetched.set("states/p.zzz.json", Buffer.from(JSON.stringify(stateFile("p.zzz", true))));
    fetched.set("states/bad name!.json", Buffer.from("{}"));
    fetched.set("elsewhere/x.json", Buffer.from("{}"));
    const facts = new Map<string, JobFact>(plan.jobs.map((j) => [j.id, { state: "COMPLETED", reason: null }]));
    const remote = parseFetchedStates(fetched);
    const before = mergeStates(plan, remote.states, { now: NOW, jobFacts: facts, problems: remote.problems });

    const spool = new SpoolSource(join(dir, "spool"));
    for (const [path, file] of fetched) spool.add(path, file);
    // A retried transfer hands some files over again: they count once.
    spool.add("states/p.m.1.a.json", fetched.get("states/p.m.1.a.json") as Buffer);
    expect(spool.files).toBe(remote.files);
    const after = mergeFromSource(plan, spool, { now: NOW, jobFacts: facts });
    spool.close();
    expect(after.toJSON()).toEqual(before.toJSON());
    expect(after.meta.unknown_states).toEqual(["p.zzz"]);
    expect(after.step_states?.["p.m.4.a"]?.error).toMatch(/unusable: not valid JSON/);
    expect(after.step_states?.["p.m.5.a"]?.error).toMatch(/exceeds the limit/);
    expect(new Set(spool.problems.map((p) => p.file))).toEqual(new Set(remote.problems.map((p) => p.file)));
    expect(existsSync(join(dir, "spool"))).toBe(false);
  });
});

describe("large maps: items in the lines file, the iterator either way", () => {
  async function merged(n: number, max: number): Promise<{ inline: CompletedState; lined: CompletedState; dir: string; plan: CompiledPlan }> {
    const dir = tempDir();
    const { plan, files } = mapRun(n);
    const statesDir = writeStates(dir, files);
    const facts = new Map<string, JobFact>(plan.jobs.map((j) => [j.id, { state: "COMPLETED", reason: null }]));
    const { states, problems } = await readStateDir(statesDir);
    const inline = mergeStates(plan, states, { now: NOW, jobFacts: facts, problems });
    const lined = mergeFromSource(plan, new DirSource(statesDir), { now: NOW, jobFacts: facts, items: { dir, max } });
    return { inline, lined, dir, plan };
  }

  it("at the threshold the items stay inline; one item more and they go to the lines file", async () => {
    const at = await merged(30, 30);
    expect(at.lined.toJSON()).toEqual(at.inline.toJSON());
    expect(itemsFileOf(at.lined)).toBeUndefined();
    const over = await merged(30, 29);
    expect(over.lined.step_states?.["p.m"]?.meta.item_lines).toMatchObject({ file: ITEMS_FILE, items: 30 });
    expect(itemsFileOf(over.lined)).toBeDefined();
  });

  it("mapItemStates yields the same items from the lines file as from step_states, before and after result.json is written and read", async () => {
    const { inline, lined, dir } = await merged(120, 10);
    const expected = plainItems(mapItemStates(inline, "p.m"));
    expect(expected).toHaveLength(120);
    expect(plainItems(mapItemStates(lined, "p.m"))).toEqual(expected);
    const resultPath = join(dir, "out", "result.json");
    mkdirSync(join(dir, "out"));
    await writeResultFile(resultPath, lined);
    expect(itemsFileOf(lined)).toBe(join(dir, "out", ITEMS_FILE));
    const read = await readResultFile(resultPath);
    expect(plainItems(mapItemStates(read, "p.m"))).toEqual(expected);
    // A second home (a local run's directory and the run store) gets its own copy.
    mkdirSync(join(dir, "store"));
    await writeResultFile(join(dir, "store", "result.json"), read);
    expect(plainItems(mapItemStates(await readResultFile(join(dir, "store", "result.json")), "p.m"))).toEqual(expected);
    expect(readFileSync(join(dir, "store", ITEMS_FILE), "utf8")).toBe(readFileSync(join(dir, "out", ITEMS_FILE), "utf8"));
  });

  it("result.json keeps the map's counts, its failed items (states too) and its slowest items; the rest of the result is unchanged", async () => {
    const { inline, lined } = await merged(120, 10);
    const summary = lined.step_states?.["p.m"]?.meta.item_lines as Record<string, unknown>;
    const items = [...mapItemStates(inline, "p.m")];
    const bad = items.filter((x) => x.state === null ? Object.values(x.steps).some((s) => !s.success) : !x.state.success).map((x) => x.index);
    expect(summary).toMatchObject({ items: 120, failed: bad.length, ok: 120 - bad.length, not_run: 0, failed_items: bad });
    expect((summary.slowest as Array<{ duration_s: number }>)[0]?.duration_s).toBe(Math.max(...items.map((x) => x.state?.duration_s ?? 0)));
    // Outside the map's items, the same keys and states; the failed items' states are kept inline.
    const inlineStates = inline.step_states ?? {};
    const slow = (summary.slowest as Array<{ index: number }>).map((s) => s.index);
    const keep = (k: string): boolean => !/^p\.m\.\d+/.test(k) || bad.includes(Number(k.split(".")[2])) || slow.includes(Number(k.split(".")[2]));
    const expectedKeys = Object.keys(inlineStates).filter(keep);
    expect(Object.keys(lined.step_states ?? {})).toEqual(expectedKeys);
    for (const k of expectedKeys) {
      const want = inlineStates[k]?.toJSON();
      const got = lined.step_states?.[k]?.toJSON();
      if (k === "p.m") delete got?.meta.item_lines;
      expect(got).toEqual(want);
    }
    expect(lined.toJSON().success).toBe(inline.success);
  });

  it("an unreadable lines file is a clear error, naming the map", async () => {
    const { lined } = await merged(20, 5);
    const copy = CompletedState.fromJSON(JSON.parse(JSON.stringify(lined)));
    expect(() => [...mapItemStates(copy, "p.m")]).toThrow(/the items of map "p\.m" are in result\.items\.jsonl beside the result's result\.json/);
  });
});
