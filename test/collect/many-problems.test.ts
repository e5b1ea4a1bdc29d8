/**
 * State problems in numbers that grow with a run's items: every reader
 * reports 200,000 of them. Gathering them with `push(...list)` threw
 * "Maximum call stack size exceeded" (a call takes about 120,000 arguments
 * at most): a pack file's bad lines (readStateDir, a transfer's
 * parseFetchedStates, the leftovers of DirSource and SpoolSource), a
 * transfer's file names that are no state's (SpoolSource), and a states
 * directory's unusable files that name no step (DirSource; its listing is
 * faked here, as its files are never opened).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type * as Fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseFetchedStates } from "../../src/app/collect.js";
import { readStateDir } from "../../src/collect/read-states.js";
import { DirSource, SpoolSource } from "../../src/collect/state-source.js";

const COUNT = 200_000;
/** A directory whose listing is faked: COUNT names that are no step's state file. */
const fake = vi.hoisted(() => ({ dir: "" }));

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof Fs>();
  const opendirSync = ((path: string, options?: Fs.OpenDirOptions) => {
    if (fake.dir === "" || path !== fake.dir) return fs.opendirSync(path, options);
    let i = 0;
    return { readSync: () => (i < 200_000 ? { name: `bad name ${i++}.json` } : null), closeSync: () => undefined };
  }) as typeof fs.opendirSync;
  return { ...fs, default: { ...fs, opendirSync }, opendirSync };
});

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-many-problems-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  fake.dir = "";
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const PACK = "p.m.items-0-99.jsonl";
/** A pack file of COUNT lines that name no key (`0`): each one a problem naming the file and its line. */
const badLines = (): Buffer => Buffer.from("0\n".repeat(COUNT));

describe("200,000 state problems", () => {
  it("of one pack file's lines: every reader reports each (not spread into push())", async () => {
    const dir = tempDir();
    const states = join(dir, "states");
    mkdirSync(states);
    writeFileSync(join(states, PACK), badLines());

    const read = await readStateDir(states);
    expect(read.problems).toHaveLength(COUNT);
    expect(read.problems[COUNT - 1]).toEqual({ file: PACK, error: `line ${COUNT}: names no step key (key undefined)` });

    const fetched = parseFetchedStates(new Map([[`states/${PACK}`, badLines()]]));
    expect(fetched.problems).toHaveLength(COUNT);

    const source = new DirSource(states);
    expect(source.leftovers(() => false).stray).toHaveLength(COUNT);
    expect(source.problems).toHaveLength(COUNT);

    const spool = new SpoolSource(join(dir, "spool"));
    try {
      spool.add(`states/${PACK}`, badLines());
      expect(spool.leftovers(() => false).stray).toHaveLength(COUNT);
      expect(spool.problems).toHaveLength(COUNT);
    } finally {
      spool.close();
    }
  });

  it("of a transfer's file names that are no state's (SpoolSource)", () => {
    const spool = new SpoolSource(join(tempDir(), "spool"));
    try {
      for (let i = 0; i < COUNT; i++) spool.add(`states/bad name ${i}.json`, Buffer.from("{}"));
      expect(spool.leftovers(() => false).stray).toHaveLength(COUNT);
      expect(spool.problems).toHaveLength(COUNT);
      expect(spool.problems[0]?.file).toBe("bad name 0.json");
    } finally {
      spool.close();
    }
  });

  it("of a states directory's files that name no step (DirSource)", () => {
    const dir = tempDir();
    fake.dir = join(dir, "states");
    const source = new DirSource(fake.dir);
    expect(source.leftovers(() => false).stray).toHaveLength(COUNT);
    expect(source.problems).toHaveLength(COUNT);
    expect(source.files).toBe(COUNT);
  });
});
