import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formatBytes, hashFile, parseMissing, storeDir } from "../../src/store/index.js";
import { tarStream } from "../../src/transport/index.js";

const dir = mkdtempSync(join(tmpdir(), "hpcpipe-store-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of gen) parts.push(b);
  return Buffer.concat(parts);
}

describe("parseMissing: the store's answer as index ranges", () => {
  it("reads single indexes and ranges, and the count it read", () => {
    expect(parseMissing("0\n3-5\n9\nend 10\n", 10)).toEqual({ missing: [0, 3, 4, 5, 9], recovered: 0 });
    expect(parseMissing("recovered 2\nend 4\n", 4)).toEqual({ missing: [], recovered: 2 });
  });
  it("refuses an answer cut short, or ranges outside the hashes sent", () => {
    expect(() => parseMissing("0-3\n", 4)).toThrow(/read no hashes of 4: the answer was cut short/);
    expect(() => parseMissing("0-3\nend 3\n", 4)).toThrow(/read 3 hashes of 4/);
    expect(() => parseMissing("2-7\nend 4\n", 4)).toThrow(/bad range "2-7" for 4 hashes/);
    expect(() => parseMissing("5-2\nend 9\n", 9)).toThrow(/bad range/);
  });
  it("a million missing blobs make a one-line answer", () => {
    expect(parseMissing("0-999999\nend 1000000\n", 1_000_000).missing).toHaveLength(1_000_000);
  });
});

describe("tarStream", () => {
  it("streams files that GNU tar extracts byte for byte", async () => {
    const a = join(dir, "a");
    writeFileSync(a, Buffer.alloc(1500, 7));
    const archive = await collect(
      tarStream([
        { path: "x/one", size: 1500, mode: 0o444, open: async function* () { yield readFileSync(a); } },
        { path: "two", size: 3, mode: 0o400, open: async function* () { yield Buffer.from("abc"); } },
      ]),
    );
    const out = mkdtempSync(join(dir, "out-"));
    execFileSync("tar", ["-x", "-f", "-", "-C", out], { input: archive });
    expect(readFileSync(join(out, "x/one"))).toEqual(Buffer.alloc(1500, 7));
    expect(readFileSync(join(out, "two"), "utf8")).toBe("abc");
  });
  it("fails when a file is not the size that was hashed (changed while sending)", async () => {
    const short = tarStream([{ path: "f", size: 10, mode: 0o400, open: async function* () { yield Buffer.from("abc"); } }]);
    await expect(collect(short)).rejects.toThrow(/f changed while it was being sent \(3 of 10 bytes\)/);
    const long = tarStream([{ path: "f", size: 2, mode: 0o400, open: async function* () { yield Buffer.from("abc"); } }]);
    await expect(collect(long)).rejects.toThrow(/f grew while it was being sent/);
  });
  it("writes sizes over 8 GiB in GNU tar's base-256 form", async () => {
    const gen = tarStream([{ path: "huge", size: 9 * 1024 ** 3, mode: 0o400, open: async function* () { /* not read */ } }]);
    const header = (await gen.next()).value as Buffer;
    // tar lists the entry, then stops at the end of the input (the 9 GiB are not there): read what it listed.
    const listed = spawnSync("tar", ["-tv", "-f", "-"], { input: Buffer.concat([header, Buffer.alloc(1024)]), encoding: "utf8" });
    expect(listed.stdout.trim()).toMatch(/ 9663676416 .* huge$/);
  });
  it("refuses unsafe paths", async () => {
    await expect(collect(tarStream([{ path: "../x", size: 0, mode: 0o400, open: async function* () {} }]))).rejects.toThrow(/contains '\.\.'/);
  });
});

describe("store helpers", () => {
  it("hashFile streams SHA-256", async () => {
    const f = join(dir, "h");
    writeFileSync(f, "hello\n");
    expect(await hashFile(f)).toEqual({ sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", size: 6 });
  });
  it("the store is under the workdir unless the config names one", () => {
    expect(storeDir({ workdir: "$HOME/hpcpipe/" })).toBe("$HOME/hpcpipe/.hpcpipe/store");
    expect(storeDir({ workdir: "$HOME/hpcpipe", store: "/shared/store" })).toBe("/shared/store");
  });
  it("formatBytes", () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(12.5 * 1024 ** 2), formatBytes(3 * 1024 ** 3)]).toEqual(["512 B", "1.5 KiB", "12.5 MiB", "3.0 GiB"]);
  });
});

describe("pull helpers", async () => {
  const { declaredOutputs, outputGlob, pullDestination } = await import("../../src/store/index.js");
  it("output globs: * and ? within a directory, ** across", () => {
    expect(outputGlob("out/*.png").test("out/a.png")).toBe(true);
    expect(outputGlob("out/*.png").test("out/sub/a.png")).toBe(false);
    expect(outputGlob("out/**").test("out/sub/a.png")).toBe(true);
    expect(outputGlob("**/*.png").test("out/sub/a.png")).toBe(true);
    expect(outputGlob("out/frame-??.png").test("out/frame-07.png")).toBe(true);
    expect(outputGlob("out/a+b.txt").test("out/a+b.txt")).toBe(true);
  });
  it("destinations stay under --to", () => {
    expect(pullDestination("/tmp/x", "out/a.png")).toBe("/tmp/x/out/a.png");
    for (const bad of ["../a", "/etc/passwd", "out/../../a", "", "out//a", "./a"]) expect(() => pullDestination("/tmp/x", bad), bad).toThrow(/refusing output path/);
  });
  it("declared outputs come from the states' outputs.files; absolute ones are set apart", () => {
    const states = {
      a: { outputs: { files: ["out/b.txt", "out/a.txt"] } },
      b: { outputs: { files: ["/scratch/x.exr", "out/a.txt"] } },
      c: { outputs: { published: {} } },
    };
    expect(declaredOutputs(states)).toEqual({ paths: ["out/a.txt", "out/b.txt"], outside: ["/scratch/x.exr"] });
  });
});
