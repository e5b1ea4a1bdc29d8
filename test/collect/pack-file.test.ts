/**
 * Pack files (issue 16): one state file per packed map task,
 * `states/<pack>.items-<first>-<last>.jsonl`, read by every reader with the
 * format's rules (a pack line wins over `states/<key>.json`, the last line of
 * a key wins, a torn last line is ignored, a corrupt line or a key outside
 * the file's range is a problem naming the file and line). The files here are
 * written by hand, exactly per /work/shared-notes/pack-format.md.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseFetchedStates } from "../../src/app/collect.js";
import { doneSteps, statesOf } from "../../src/app/resume.js";
import { mergeFromSource, mergeStates } from "../../src/collect/merge.js";
import type { JobFact } from "../../src/collect/merge.js";
import { PACK_FILE_MAX_BYTES, PackIndex, packOfFileName, parsePackFile } from "../../src/collect/pack-file.js";
import { readStateDir } from "../../src/collect/read-states.js";
import { DirSource, SpoolSource } from "../../src/collect/state-source.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { STATE_FILE_MAX_BYTES } from "../../src/plan/state-file.js";
import { TarReader } from "../../src/transport/tar-reader.js";
import { compilePlan, map, pipeline, stateFile, step } from "../local/helpers.js";

const NOW = "2026-02-01T00:00:00.000Z";
const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-pack-file-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const line = (s: StateFile): string => `${JSON.stringify(s)}\n`;

/** A map `p.m` of `n` items with steps a and b; item i's b fails when `fails(i)`. */
function mapPlan(n: number): CompiledPlan {
  const items = Array.from({ length: n }, (_, i) => `item-${i}`);
  return compilePlan(pipeline("p", [step("prep"), map("m", items, [step("a"), step("b")], { continue_on_item_error: true })]), "/nonexistent/run");
}

/** Item i's three states, in the order the wrapper writes them: its step lines, then its unit line. */
function itemStates(i: number, fails: (i: number) => boolean = (k) => k % 7 === 3): StateFile[] {
  const meta = { exit_code: 0, reason: null, item: `item-${i}`, log: `logs/p.m.items-${i - (i % 100)}-${i - (i % 100) + 99}.s${i % 2}` };
  const bad = fails(i);
  return [
    stateFile(`p.m.${i}.a`, true, { meta, signature: "sig-a" }),
    stateFile(`p.m.${i}.b`, !bad, { meta: { ...meta, exit_code: bad ? 3 : 0 }, signature: "sig-b" }),
    stateFile(`p.m.${i}`, !bad, { meta: { item: `item-${i}` } }),
  ];
}

/** The lines of items first..last as one pack file's text. */
function packText(first: number, last: number, fails?: (i: number) => boolean): string {
  let text = "";
  for (let i = first; i <= last; i++) for (const s of itemStates(i, fails)) text += line(s);
  return text;
}

const facts = (plan: CompiledPlan): Map<string, JobFact> => new Map(plan.jobs.map((j) => [j.id, { state: "COMPLETED", reason: null }]));

describe("pack file names and the index of ranges", () => {
  it("reads <pack>.items-<first>-<last>.jsonl and refuses anything else", () => {
    expect(packOfFileName("p.m.items-100-199.jsonl")).toEqual({ pack: "p.m", first: 100, last: 199 });
    expect(packOfFileName("validate.items-0-0.jsonl")).toEqual({ pack: "validate", first: 0, last: 0 });
    expect(packOfFileName("p.m.items-01-99.jsonl")).toBeNull();
    expect(packOfFileName("p.m.items-99-1.jsonl")).toBeNull();
    expect(packOfFileName("p.m.items-0-99.json")).toBeNull();
    expect(packOfFileName("bad name!.items-0-9.jsonl")).toBeNull();
    expect(packOfFileName("p.m.0.json")).toBeNull();
  });

  it("maps a key to the pack file whose range holds its item, for a pack name with dots, without one entry per key", () => {
    const index = new PackIndex();
    for (let first = 0; first < 1000; first += 100) index.add(`p.m.items-${first}-${first + 99}.jsonl`);
    index.add("p.outer.3.inner.items-0-9.jsonl");
    index.add("p.m2.items-0-99.jsonl");
    expect(index.size).toBe(12);
    expect(index.filesOf("p.m.150.a")).toEqual(["p.m.items-100-199.jsonl"]);
    expect(index.filesOf("p.m.150")).toEqual(["p.m.items-100-199.jsonl"]);
    expect(index.filesOf("p.m.999.b.c")).toEqual(["p.m.items-900-999.jsonl"]);
    expect(index.filesOf("p.m.1000.a")).toEqual([]);
    expect(index.filesOf("p.m.01.a")).toEqual([]);
    expect(index.filesOf("p.m.x.a")).toEqual([]);
    expect(index.filesOf("p.m2.5.a")).toEqual(["p.m2.items-0-99.jsonl"]);
    expect(index.filesOf("p.outer.3.inner.7.s")).toEqual(["p.outer.3.inner.items-0-9.jsonl"]);
    expect(index.filesOf("p.prep")).toEqual([]);
  });
});

describe("parsePackFile", () => {
  const name = { pack: "p.m", first: 0, last: 99 };
  const file = "p.m.items-0-99.jsonl";

  it("keeps each key's last line, ignores a torn last line, and makes corrupt lines and keys outside the range problems naming the file and line", () => {
    const [a, b, unit] = itemStates(4);
    const again = stateFile("p.m.4.a", false, { error: "second attempt failed" });
    const badSchema = JSON.stringify({ ...stateFile("p.m.5.a", true), success: "yes" });
    const text =
      line(a as StateFile) + // 1
      line(b as StateFile) + // 2
      '{"key":"p.m.6.a","succ\n' + // 3: corrupt
      line(stateFile("p.m.100.a", true)) + // 4: item 100 is not in 0..99
      line(stateFile("p.x.1.a", true)) + // 5: another pack's key
      `${badSchema}\n` + // 6: p.m.5.a, not a valid state
      line(again) + // 7: p.m.4.a again: wins
      "\n" + // 8: empty
      line(unit as StateFile) + // 9
      JSON.stringify(stateFile("p.m.4.b", false)); // torn: ignored
    const c = parsePackFile(file, name, Buffer.from(text));
    expect([...c.byKey.keys()]).toEqual(["p.m.4.b", "p.m.5.a", "p.m.4.a", "p.m.4"]);
    expect(c.byKey.get("p.m.4.a")).toMatchObject({ ok: true, line: 7, state: { success: false, error: "second attempt failed" } });
    expect(c.byKey.get("p.m.4.b")).toMatchObject({ ok: true, line: 2, state: { success: true } });
    expect(c.byKey.get("p.m.5.a")).toMatchObject({ ok: false, file, line: 6 });
    expect(c.byKey.get("p.m.5.a")?.ok === false && c.byKey.get("p.m.5.a")).toMatchObject({ error: expect.stringMatching(/^line 6: not a valid state: success/) });
    expect(c.stray.map((p) => p.file)).toEqual([file, file, file, file]);
    expect(c.stray.map((p) => p.error)).toEqual([
      expect.stringMatching(/^line 3: not valid JSON/),
      'line 4: key "p.m.100.a" is not an item 0..99 of "p.m", as the file name says',
      'line 5: key "p.x.1.a" is not an item 0..99 of "p.m", as the file name says',
      "line 8: empty line",
    ]);
  });

  it("refuses lines whose fields are of the wrong type or out of range (the fast check lets zod name them), and keeps the valid lines' states as zod gives them", () => {
    const bad: Array<Record<string, unknown>> = [
      { ...stateFile("p.m.1.a", true), duration_s: "0.5" },
      { ...stateFile("p.m.1.b", true), exit_code: 1.5 },
      { ...stateFile("p.m.1", true), meta: ["x"] },
      { ...stateFile("p.m.2.a", true), slurm: { job_id: 7, task: 0 } },
      { ...stateFile("p.m.2.b", true), attempt: 0 },
      { ...stateFile("p.m.2", true), failure: "OOPS" },
    ];
    // A valid line with its fields in another order and an unknown field: zod's order, the unknown field left out.
    const valid = Object.fromEntries(Object.entries({ ...stateFile("p.m.3.a", true), extra: "x" }).reverse());
    const text = bad.map((s) => `${JSON.stringify(s)}\n`).join("") + `${JSON.stringify(valid)}\n` + '{"key":"p.m.3.b","success":tru\n';
    const c = parsePackFile(file, name, Buffer.from(text));
    const errors = [...c.byKey.values()].map((l) => (l.ok ? `ok ${l.line}` : l.error));
    expect(errors).toEqual([
      expect.stringMatching(/^line 1: not a valid state: duration_s: .*number/),
      expect.stringMatching(/^line 2: not a valid state: exit_code: .*int/),
      expect.stringMatching(/^line 3: not a valid state: meta: .*(record|object)/),
      expect.stringMatching(/^line 4: not a valid state: slurm\.job_id: .*string/),
      expect.stringMatching(/^line 5: not a valid state: attempt: .*>=\s*1/),
      expect.stringMatching(/^line 6: not a valid state: failure: /),
      "ok 7",
    ]);
    for (const l of c.byKey.values()) if (!l.ok) expect(l.file).toBe(file);
    const state = c.byKey.get("p.m.3.a");
    expect(state?.ok === true && Object.keys(state.state)).toEqual(Object.keys(stateFile("p.m.3.a", true)));
    expect(c.stray).toEqual([{ file, error: expect.stringMatching(/^line 8: not valid JSON/) }]);
  });

  it("refuses a line over the state file cap and a file over the pack file cap", () => {
    const big = line(stateFile("p.m.1.a", true, { meta: { pad: "x".repeat(STATE_FILE_MAX_BYTES) } }));
    const c = parsePackFile(file, name, Buffer.from(line(stateFile("p.m.0.a", true)) + big));
    expect([...c.byKey.keys()]).toEqual(["p.m.0.a"]);
    expect(c.stray[0]?.error).toMatch(/^line 2: \d+ bytes, over the 1048576-byte limit of a state$/);
    const huge = parsePackFile(file, name, Buffer.alloc(PACK_FILE_MAX_BYTES + 1, 0x20));
    expect(huge.byKey.size).toBe(0);
    expect(huge.stray).toEqual([{ file, error: `pack file is ${PACK_FILE_MAX_BYTES + 1} bytes, over the ${PACK_FILE_MAX_BYTES}-byte limit` }]);
  });
});

/**
 * A run of 250 items in both layouts at once: items 0..199 in two pack files, 200..249 as per-key files, and
 * the faults a reader must handle. Returns the states directory.
 */
function mixedRun(dir: string): string {
  const states = join(dir, "states");
  mkdirSync(states, { recursive: true });
  writeFileSync(join(states, "p.prep.json"), line(stateFile("p.prep", true)));
  // Item 5's b was restored at submission as a failure (per-key file); its pack line (a success) wins.
  writeFileSync(join(states, "p.m.5.b.json"), line(stateFile("p.m.5.b", false)));
  // A per-key file that is corrupt, shadowed by a pack line: not a problem.
  writeFileSync(join(states, "p.m.6.a.json"), "{");
  let first = packText(0, 99);
  // Item 7 holds a key no step of the plan has: an unknown state.
  first += line(stateFile("p.m.7.zzz", true));
  writeFileSync(join(states, "p.m.items-0-99.jsonl"), first);
  let second = packText(100, 199);
  second += '{"key":"p.m.150.a",\n'; // corrupt
  second += line(stateFile("p.m.42.a", true)); // not in 100..199
  second += line({ ...stateFile("p.m.120.b", true), duration_s: -1 } as StateFile); // p.m.120.b: not a valid state
  second += JSON.stringify(stateFile("p.m.110.a", false)); // torn: the earlier line of p.m.110.a stays
  writeFileSync(join(states, "p.m.items-100-199.jsonl"), second);
  for (let i = 200; i < 250; i++) for (const s of itemStates(i)) writeFileSync(join(states, `${s.key}.json`), line(s));
  // Never read: a pack temp of a killed task, a slot directory, a badly named .jsonl.
  writeFileSync(join(states, ".p.m.items-200-299.jsonl.tmp.123"), "{");
  mkdirSync(join(states, ".pack-p.m.items-200-299"));
  writeFileSync(join(states, ".pack-p.m.items-200-299", "s0.jsonl"), "{");
  writeFileSync(join(states, "p.m.jsonl"), line(stateFile("p.m.0.a", false)));
  return states;
}

/** The per-key files a transfer of `states/*.json*` gives for a states directory (as the cluster's tar would). */
function fetchedFrom(states: string): Map<string, Buffer | { error: string }> {
  const out = new Map<string, Buffer | { error: string }>();
  const names = execFileSync("bash", ["-c", 'cd "$1" && for f in *.json*; do printf "%s\\n" "$f"; done', "-", states], { encoding: "utf8" }).trim().split("\n");
  for (const n of names) out.set(`states/${n}`, readFileSync(join(states, n)));
  return out;
}

describe("both layouts in one states directory", () => {
  it("every reader gives the same merge: pack lines win, torn lines are ignored, corrupt lines and wrong keys are problems naming the file and line", async () => {
    const dir = tempDir();
    const plan = mapPlan(250);
    const states = mixedRun(dir);
    const read = await readStateDir(states);
    const byMap = mergeStates(plan, read.states, { now: NOW, jobFacts: facts(plan), problems: read.problems });
    const dirSource = new DirSource(states);
    const byDir = mergeFromSource(plan, dirSource, { now: NOW, jobFacts: facts(plan) });
    const fetched = parseFetchedStates(fetchedFrom(states));
    const byFetch = mergeStates(plan, fetched.states, { now: NOW, jobFacts: facts(plan), problems: fetched.problems });
    const spool = new SpoolSource(join(dir, "spool"));
    for (const [path, file] of fetchedFrom(states)) spool.add(path, file);
    const bySpool = mergeFromSource(plan, spool, { now: NOW, jobFacts: facts(plan) });
    spool.close();

    for (const other of [byDir, byFetch, bySpool]) expect(other.toJSON()).toEqual(byMap.toJSON());
    const steps = byMap.step_states ?? {};
    expect(steps["p.m.5.b"]?.success).toBe(true);
    expect(steps["p.m.6.a"]?.success).toBe(true);
    expect(steps["p.m.3.b"]?.success).toBe(false);
    expect(steps["p.m.110.a"]?.success).toBe(true);
    expect(steps["p.m.150.a"]?.success).toBe(true);
    expect(steps["p.m.230.a"]?.success).toBe(true);
    expect(steps["p.m.234.b"]?.success).toBe(false);
    expect(steps["p.m.120.b"]).toMatchObject({ success: false, meta: { state_file: "states/p.m.items-100-199.jsonl" } });
    expect(steps["p.m.120.b"]?.error).toMatch(/^state file states\/p\.m\.items-100-199\.jsonl is unusable: line 303: not a valid state: duration_s/);
    expect(byMap.meta.unknown_states).toEqual(["p.m.7.zzz"]);
    expect(byMap.meta.state_problems).toEqual([
      { file: "p.m.items-100-199.jsonl", error: expect.stringMatching(/^line 301: not valid JSON/) },
      { file: "p.m.items-100-199.jsonl", error: 'line 302: key "p.m.42.a" is not an item 100..199 of "p.m", as the file name says' },
      { file: "p.m.jsonl", error: 'file name "p.m.jsonl" is not <step key>.items-<first>-<last>.jsonl' },
    ]);
    expect(dirSource.files).toBe(3 + 2 + 1 + 50 * 3);
    expect(new Set(dirSource.problems.map((p) => `${p.file} ${p.error.slice(0, 9)}`))).toEqual(
      new Set(["p.m.jsonl file name", "p.m.items-100-199.jsonl line 301:", "p.m.items-100-199.jsonl line 302:", "p.m.items-100-199.jsonl line 303:"]),
    );
  });

  it("where two pack files' ranges overlap (a resume packed the items differently), the later range's line wins in every reader", async () => {
    const dir = tempDir();
    const plan = mapPlan(200);
    const states = join(dir, "states");
    mkdirSync(states);
    // By name, items-100-199 sorts before items-50-149; by range it comes after, and wins.
    writeFileSync(join(states, "p.m.items-50-149.jsonl"), packText(50, 149, () => true));
    writeFileSync(join(states, "p.m.items-100-199.jsonl"), packText(100, 199, () => false));
    writeFileSync(join(states, "p.m.items-0-49.jsonl"), packText(0, 49));
    const read = await readStateDir(states);
    expect(read.states.get("p.m.120.b")?.success).toBe(true);
    expect(read.states.get("p.m.60.b")?.success).toBe(false);
    const byMap = mergeStates(plan, read.states, { now: NOW, jobFacts: facts(plan), problems: read.problems });
    const byDir = mergeFromSource(plan, new DirSource(states), { now: NOW, jobFacts: facts(plan) });
    const files = [...fetchedFrom(states)].reverse();
    const fetched = parseFetchedStates(new Map(files));
    const spool = new SpoolSource(join(dir, "spool"));
    for (const [path, file] of files) spool.add(path, file);
    const bySpool = mergeFromSource(plan, spool, { now: NOW, jobFacts: facts(plan) });
    spool.close();
    expect(fetched.states.get("p.m.120.b")?.success).toBe(true);
    for (const other of [byDir, bySpool]) expect(other.toJSON()).toEqual(byMap.toJSON());
    expect(byMap.step_states?.["p.m.120.b"]?.success).toBe(true);
  });

  it("a large map read item by item (release after each) parses each pack file once", () => {
    const dir = tempDir();
    const plan = mapPlan(1000);
    const states = join(dir, "states");
    mkdirSync(states);
    writeFileSync(join(states, "p.prep.json"), line(stateFile("p.prep", true)));
    for (let first = 0; first < 1000; first += 100) writeFileSync(join(states, `p.m.items-${first}-${first + 99}.jsonl`), packText(first, first + 99));
    const loads: string[] = [];
    class Counting extends DirSource {
      protected override loadPack(file: string): ReturnType<DirSource["loadPack"]> {
        loads.push(file);
        return super.loadPack(file);
      }
    }
    const merged = mergeFromSource(plan, new Counting(states), { now: NOW, jobFacts: facts(plan), items: { dir, max: 10 } });
    expect(loads.sort()).toEqual(Array.from({ length: 10 }, (_, k) => `p.m.items-${k * 100}-${k * 100 + 99}.jsonl`).sort());
    expect(merged.meta.unknown_states).toBeUndefined();
    expect(merged.meta.state_problems).toBeUndefined();
  });

  it("a resume reads done steps from pack lines first (a failed pack line beats a successful per-key file)", () => {
    const dir = tempDir();
    const plan = mapPlan(100);
    const states = join(dir, "states");
    mkdirSync(states);
    writeFileSync(join(states, "p.prep.json"), line(stateFile("p.prep", true, { signature: "sig-prep" })));
    writeFileSync(join(states, "p.m.3.b.json"), line(stateFile("p.m.3.b", true, { signature: "sig-b" })));
    writeFileSync(join(states, "p.m.items-0-99.jsonl"), packText(0, 99));
    const source = new DirSource(states);
    const withSigs = { ...plan, jobs: plan.jobs.map((j) => ({ ...j, bodies: j.bodies.map((b) => ({ ...b, steps: b.steps.map((s) => ({ ...s, signature: s.key.endsWith(".a") ? "sig-a" : s.key.endsWith(".b") ? "sig-b" : "sig-prep" })) })) })) };
    const done = doneSteps(withSigs, statesOf(source));
    expect(done.has("p.prep")).toBe(true);
    expect(done.has("p.m.0.a")).toBe(true);
    expect(done.has("p.m.3.a")).toBe(true);
    expect(done.has("p.m.3.b")).toBe(false);
    expect(done.has("p.m.4.b")).toBe(true);
    expect(done.size).toBe(1 + 100 + 100 - 14); // items 3, 10, ..., 94 failed b
  });

  it("a pack file over the size cap is one problem naming it; its keys are missing, not guessed", async () => {
    const dir = tempDir();
    const plan = mapPlan(100);
    const states = join(dir, "states");
    mkdirSync(states);
    const big = join(states, "p.m.items-0-99.jsonl");
    writeFileSync(big, packText(0, 99));
    truncateSync(big, PACK_FILE_MAX_BYTES + 1);
    const merged = mergeFromSource(plan, new DirSource(states), { now: NOW, jobFacts: facts(plan) });
    expect(merged.meta.state_problems).toEqual([{ file: "p.m.items-0-99.jsonl", error: `pack file is ${PACK_FILE_MAX_BYTES + 1} bytes, over the ${PACK_FILE_MAX_BYTES}-byte limit` }]);
    expect(merged.step_states?.["p.m.0.a"]?.meta.state_problem).toBeUndefined();
    const read = await readStateDir(states);
    expect(read.states.size).toBe(0);
    expect(read.problems).toEqual(merged.meta.state_problems);
  });

  it("the transfer's per-file cap is a pack file's: a per-key file over the state cap is refused alike by the spool and the in-memory reader", () => {
    const dir = tempDir();
    const plan = mapPlan(100);
    const files = new Map<string, Buffer | { error: string }>([
      ["states/p.prep.json", Buffer.from(line(stateFile("p.prep", true, { meta: { pad: "x".repeat(STATE_FILE_MAX_BYTES) } })))],
      ["states/p.m.items-0-99.jsonl", Buffer.from(packText(0, 99))],
      ["states/p.m.0.a.json.bak", Buffer.from("{")],
    ]);
    const fetched = parseFetchedStates(files);
    const byMap = mergeStates(plan, fetched.states, { now: NOW, jobFacts: facts(plan), problems: fetched.problems });
    const spool = new SpoolSource(join(dir, "spool"));
    for (const [path, file] of files) spool.add(path, file);
    expect(spool.files).toBe(2);
    expect(fetched.files).toBe(2);
    const bySpool = mergeFromSource(plan, spool, { now: NOW, jobFacts: facts(plan) });
    spool.close();
    expect(bySpool.toJSON()).toEqual(byMap.toJSON());
    expect(byMap.step_states?.["p.prep"]?.meta.state_problem).toMatch(/^state file is \d+ bytes, over the 1048576-byte limit$/);
    expect(byMap.step_states?.["p.m.0.a"]?.success).toBe(true);
  });

  it("the spool takes pack files from a real tar stream (the cluster's transfer) and removes itself", () => {
    const dir = tempDir();
    const plan = mapPlan(250);
    const states = mixedRun(dir);
    // As the SSH transport builds it: every match of states/*.json*, names starting with ./
    const tar = execFileSync("bash", ["-c", 'cd "$1" && for f in states/*.json*; do printf "%s\\0" "./$f"; done | tar -c -f - --no-recursion --null -T -', "-", dir]);
    const spool = new SpoolSource(join(dir, "spool"));
    const reader = new TarReader({ maxFileBytes: PACK_FILE_MAX_BYTES, maxTotalBytes: 2 ** 40, onFile: (path, file) => spool.add(path, file) });
    for (let at = 0; at < tar.length; at += 7000) reader.write(tar.subarray(at, at + 7000));
    expect(reader.end().size).toBe(0);
    expect(spool.files).toBe(3 + 2 + 1 + 50 * 3);
    const read = mergeFromSource(plan, new DirSource(states), { now: NOW, jobFacts: facts(plan) });
    const spooled = mergeFromSource(plan, spool, { now: NOW, jobFacts: facts(plan) });
    spool.close();
    expect(spooled.toJSON()).toEqual(read.toJSON());
    expect(spooled.step_states?.["p.m.5.b"]?.success).toBe(true);
    expect(existsSync(join(dir, "spool"))).toBe(false);
  });
});
