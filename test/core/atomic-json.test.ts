import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeJsonAtomic } from "../../src/core/index.js";
import { makeTempDir } from "./helpers.js";

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await makeTempDir());
});
afterEach(async () => {
  await cleanup();
});

const tempFiles = async (d: string): Promise<string[]> => (await readdir(d)).filter((f) => f.startsWith("pipeline_"));

describe("writeJsonAtomic", () => {
  it("writes exactly the JSON with 2-space indent and a trailing newline, leaving no pipeline_ temp file", async () => {
    const target = join(dir, "report.json");
    const data = { name: "scene", counts: { meshes: 3 }, list: [1, "two", null] };
    await writeJsonAtomic(target, data);
    expect(await readFile(target, "utf8")).toBe(`${JSON.stringify(data, null, 2)}\n`);
    expect(await readdir(dir)).toEqual(["report.json"]);
  });

  it("honours the indent option", async () => {
    const target = join(dir, "compact.json");
    await writeJsonAtomic(target, { a: [1, 2] }, { indent: 0 });
    expect(await readFile(target, "utf8")).toBe('{"a":[1,2]}\n');
  });

  it("creates the file with mode 0644 by default and with the given mode otherwise", async () => {
    const a = join(dir, "a.json");
    const b = join(dir, "b.json");
    const old = process.umask(0);
    try {
      await writeJsonAtomic(a, 1);
      await writeJsonAtomic(b, 1, { mode: 0o600 });
    } finally {
      process.umask(old);
    }
    expect((await stat(a)).mode & 0o777).toBe(0o644);
    expect((await stat(b)).mode & 0o777).toBe(0o600);
  });

  it("replaces an existing file's content entirely", async () => {
    const target = join(dir, "state.json");
    await writeFile(target, JSON.stringify({ old: "x".repeat(1000) }));
    await writeJsonAtomic(target, { new: true });
    expect(JSON.parse(await readFile(target, "utf8"))).toEqual({ new: true });
    expect(await tempFiles(dir)).toEqual([]);
  });

  it("a value JSON cannot serialise (BigInt) leaves the previous content intact and no temp file", async () => {
    const target = join(dir, "state.json");
    await writeFile(target, '{"previous":1}\n');
    await expect(writeJsonAtomic(target, { n: 10n })).rejects.toThrow(TypeError);
    expect(await readFile(target, "utf8")).toBe('{"previous":1}\n');
    expect(await tempFiles(dir)).toEqual([]);
  });

  it("a circular value leaves the previous content intact and no temp file", async () => {
    const target = join(dir, "state.json");
    await writeFile(target, '{"previous":2}\n');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(writeJsonAtomic(target, circular)).rejects.toThrow();
    expect(await readFile(target, "utf8")).toBe('{"previous":2}\n');
    expect(await tempFiles(dir)).toEqual([]);
  });

  it("when the rename fails (the target is a directory) the temp file is removed and the directory is untouched", async () => {
    const target = join(dir, "occupied");
    await mkdir(target);
    await writeFile(join(target, "keep.txt"), "kept");
    await expect(writeJsonAtomic(target, { a: 1 })).rejects.toThrow();
    expect((await stat(target)).isDirectory()).toBe(true);
    expect(await readdir(target)).toEqual(["keep.txt"]);
    expect(await readdir(dir)).toEqual(["occupied"]);
  });

  it("fails without leaving anything when the target's directory does not exist", async () => {
    await expect(writeJsonAtomic(join(dir, "missing", "x.json"), {})).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });

  it("concurrent writers to the same target leave one complete, valid JSON from one of them and no temp files", async () => {
    const target = join(dir, "shared.json");
    const payloads = Array.from({ length: 25 }, (_, i) => ({ writer: i, body: "y".repeat(20_000 + i) }));
    await Promise.all(payloads.map((p) => writeJsonAtomic(target, p)));
    const final = JSON.parse(await readFile(target, "utf8")) as { writer: number; body: string };
    expect(payloads[final.writer]).toEqual(final);
    expect(await tempFiles(dir)).toEqual([]);
    expect(await readdir(dir)).toEqual(["shared.json"]);
  });

  it("a reader racing a series of writes always sees one whole version, never a half-written file", async () => {
    const target = join(dir, "big.json");
    const version = (i: number): { v: number; blob: string } => ({ v: i, blob: String(i % 10).repeat(2_000_000) });
    await writeJsonAtomic(target, version(0));
    let writing = true;
    const writer = (async () => {
      for (let i = 1; i <= 8; i++) await writeJsonAtomic(target, version(i));
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const parsed = JSON.parse(await readFile(target, "utf8")) as { v: number; blob: string };
      expect(parsed.blob).toBe(String(parsed.v % 10).repeat(2_000_000));
      reads += 1;
    }
    await writer;
    expect(reads).toBeGreaterThan(0);
    expect((JSON.parse(await readFile(target, "utf8")) as { v: number }).v).toBe(8);
  });
});
