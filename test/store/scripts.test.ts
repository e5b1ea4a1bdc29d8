/**
 * The store's remote scripts run by a local bash (they need bash and coreutils; perl only speeds up
 * the layout): receive verifies and shards, layout hard-links with and without perl on the PATH.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { STORE_SCRIPTS } from "../../src/store/index.js";

const dir = mkdtempSync(join(tmpdir(), "hpcpipe-store-scripts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");

/** A PATH with every tool the scripts use except perl. */
function pathWithoutPerl(): string {
  const bin = join(dir, "bin-no-perl");
  if (existsSync(bin)) return bin;
  mkdirSync(bin, { recursive: true });
  for (const tool of ["bash", "cat", "chmod", "cp", "find", "hostname", "ln", "mkdir", "mv", "rm", "sha256sum", "tar", "touch", "xargs", "id", "sort"]) {
    const found = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (found) symlinkSync(found, join(bin, tool));
  }
  return bin;
}

function run(script: string, args: string[], input: Buffer | string, env: NodeJS.ProcessEnv = process.env): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", script, "test", ...args], { input, env, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the store scripts with a local bash", () => {
  const store = join(dir, "store");
  const files = { "a.gltf": '{"buffers":[{"uri":"a.bin"}]}', "a.bin": "BIN", "deep/b.txt": "b", "deep/same.bin": "BIN" };
  const hashes = Object.fromEntries(Object.entries(files).map(([p, t]) => [p, sha(t)]));

  it("receive: a tar of blobs named by their hash, verified and sharded, read-only; a wrong one is dropped", () => {
    const src = join(dir, "src");
    mkdirSync(src);
    for (const t of new Set(Object.values(files))) writeFileSync(join(src, sha(t)), t);
    writeFileSync(join(src, sha("not this")), "tampered");
    const tar = execFileSync("tar", ["-c", "-C", src, "."]);
    const r = run(STORE_SCRIPTS.receive, [store, ""], tar);
    expect(r.stdout).toContain(`bad ${sha("not this")}`);
    expect(r.stdout).toContain("stored 3");
    for (const t of new Set(Object.values(files))) {
      const blob = join(store, "blobs", sha(t).slice(0, 2), sha(t));
      expect(readFileSync(blob, "utf8")).toBe(t);
      expect(statSync(blob).mode & 0o777).toBe(0o444);
    }
  });

  it("receive without perl (one mv a shard) stores the same", () => {
    const other = join(dir, "store-no-perl");
    const src = join(dir, "src2");
    mkdirSync(src);
    for (const t of ["x", "y", "z"]) writeFileSync(join(src, sha(t)), t);
    const r = run(STORE_SCRIPTS.receive, [other, ""], execFileSync("tar", ["-c", "-C", src, "."]), { ...process.env, PATH: pathWithoutPerl() });
    expect(r.stdout.trim()).toBe("stored 3");
    for (const t of ["x", "y", "z"]) expect(readFileSync(join(other, "blobs", sha(t).slice(0, 2), sha(t)), "utf8")).toBe(t);
  });

  for (const perl of [true, false]) {
    it(`layout ${perl ? "with perl" : "without perl (one ln a file)"}: hard links under the run's work/, the same names`, () => {
      const runDir = join(dir, `run-${perl ? "perl" : "noperl"}`);
      mkdirSync(runDir);
      const records = Object.keys(files).map((p) => `${hashes[p]} work/${p}\0`).join("");
      const env = perl ? process.env : { ...process.env, PATH: pathWithoutPerl() };
      if (!perl) expect(spawnSync("bash", ["-c", "command -v perl"], { env }).status).not.toBe(0);
      const r = run(STORE_SCRIPTS.layout, [store, runDir], records, env);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe("laid 4 0");
      for (const [p, t] of Object.entries(files)) {
        const f = join(runDir, "work", p);
        expect(readFileSync(f, "utf8")).toBe(t);
        expect(statSync(f).nlink).toBeGreaterThanOrEqual(2);
        expect(statSync(f).ino).toBe(statSync(join(store, "blobs", hashes[p]?.slice(0, 2) ?? "", hashes[p] ?? "")).ino);
      }
    });
  }

  it("layout refuses a corrupt blob: nothing is laid out, the blob is removed and named", () => {
    const t = files["deep/b.txt"];
    const blob = join(store, "blobs", sha(t).slice(0, 2), sha(t));
    execFileSync("chmod", ["u+w", blob]);
    writeFileSync(blob, "changed");
    const runDir = join(dir, "run-corrupt");
    mkdirSync(runDir);
    const r = run(STORE_SCRIPTS.layout, [store, runDir], `${sha(t)} work/deep/b.txt\0`);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`corrupt ${sha(t)}`);
    expect(() => statSync(blob)).toThrow();
    expect(spawnSync("find", [runDir, "-type", "f"], { encoding: "utf8" }).stdout).toBe("");
  });
});
