// The local hash cache (src/store/hash-cache.ts): an unchanged file keeps its hash without being read;
// an edit is noticed even when it keeps the size and puts the modification time back (the change time
// moves); a corrupt cache file is ignored.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashWithCache } from "../../src/store/hash-cache.js";

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

describe("the local hash cache", () => {
  let dir: string;
  let a: string;
  let b: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-hashcache-"));
    a = join(dir, "a.glb");
    b = join(dir, "b.glb");
    writeFileSync(a, "model a");
    writeFileSync(b, "model b");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("reuses the hash of a file that did not change, without reading it", async () => {
    const first = await hashWithCache([a, b], dir);
    expect(first.map((f) => f.sha256)).toEqual([sha("model a"), sha("model b")]);
    expect(statSync(join(dir, "hash-cache.json")).mode & 0o777).toBe(0o600);
    // The cache says another hash for a: a second run that returns it did not read the file.
    const cacheFile = join(dir, "hash-cache.json");
    const cache = JSON.parse(readFileSync(cacheFile, "utf8")) as { files: Record<string, unknown[]> };
    (cache.files[a] as unknown[])[4] = "f".repeat(64);
    writeFileSync(cacheFile, JSON.stringify(cache));
    const again = await hashWithCache([a, b], dir);
    expect(again.map((f) => f.sha256)).toEqual(["f".repeat(64), sha("model b")]);
  });

  it("notices an edit that keeps the size and puts the modification time back", async () => {
    await hashWithCache([a], dir);
    const ref = join(dir, "ref");
    execFileSync("cp", ["-p", a, ref]);
    const before = statSync(a, { bigint: true });
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(a, "model A");
    execFileSync("touch", ["-r", ref, a]);
    expect(statSync(a, { bigint: true }).mtimeNs).toBe(before.mtimeNs);
    expect((await hashWithCache([a], dir))[0]?.sha256).toBe(sha("model A"));
  });

  it("ignores a corrupt cache file and writes a good one", async () => {
    writeFileSync(join(dir, "hash-cache.json"), '{"format":1,"files":{"x":[1,"2","3",4,"not a hash"]}');
    expect((await hashWithCache([a], dir))[0]?.sha256).toBe(sha("model a"));
    expect(JSON.parse(readFileSync(join(dir, "hash-cache.json"), "utf8")).files[a][4]).toBe(sha("model a"));
  });
});
