// The job wrapper's side of the step cache (templates/lib.sh: _hp_cache_key, _hp_cache_put,
// _hp_restored), with real bash: an entry is one valid line of JSON created under its final name (O_EXCL),
// its outputs are blobs named by their hash; many writers of one key at once leave one good entry and no
// temp file; a cut entry is replaced; an output that is not a regular file leaves the step uncached.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cacheEntrySchema } from "../../src/cache/remote.js";
import { NO_CACHE_KEY } from "../../src/cache/restore.js";
import { libScript } from "../../src/render/render.js";

const KEY = "ab".padEnd(64, "0");

function bash(script: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("the wrapper's step cache writes", () => {
  let dir: string;
  let run: string;
  let store: string;
  let lib: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-cacheput-"));
    run = join(dir, "runs", "p", "20261207-000000-abcdef");
    store = join(dir, "store");
    for (const d of [join(run, "cache", "keys"), join(run, "work", "out"), join(run, "ctx"), store]) mkdirSync(d, { recursive: true });
    writeFileSync(join(run, "cache", "store"), `${store}\n\n`);
    writeFileSync(join(run, "cache", "keys", "p.m.{i}.render.keys"), `${NO_CACHE_KEY}\n${KEY}\n`);
    lib = join(dir, "lib.sh");
    writeFileSync(lib, libScript());
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const put = (content: string, output = "out/1.png") =>
    bash(
      `set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; mkdir -p "$RUN/work/out"; printf %s "$CONTENT" > "$RUN/work/out/1.png.$$" && mv "$RUN/work/out/1.png.$$" "$RUN/work/out/1.png"; ` +
        `printf 'size=3\\n' > "$RUN/ctx/p.m.1.render.pub"; ` +
        `_hp_cache_put p.m.1.render 'p.m.{i}.render' '{"success":true,"timestamp":"2026-12-07T00:00:00.000Z","duration_s":1,"provides":["size"],"outputs":{"published":{"size":"3"},"files":["out/1.png"]},"error":null,"meta":{},"signature":"abc","failure":null,"key":"p.m.1.render"}' "$RUN/ctx/p.m.1.render.pub" "$OUT"`,
      { LIB: lib, RUN: run, CONTENT: content, OUT: output },
    );

  it("stores the outputs as blobs and the entry as one valid line of JSON, under the item's key", async () => {
    const r = await put("png-bytes");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/step p\.m\.1\.render: stored in the step cache/);
    const entry = cacheEntrySchema.parse(JSON.parse(readFileSync(join(store, "cache", "ab", `${KEY}.json`), "utf8")));
    const sha = createHash("sha256").update("png-bytes").digest("hex");
    expect(entry).toMatchObject({ key: KEY, step: "p.m.1.render", run: "20261207-000000-abcdef", pub: "size=3\n", outputs: [{ path: "out/1.png", sha256: sha }] });
    expect(readFileSync(join(store, "blobs", sha.slice(0, 2), sha), "utf8")).toBe("png-bytes");
    // The run's own file is a copy, still writable; the blob is read-only.
    expect(readdirSync(join(store, "blobs", sha.slice(0, 2)))).toEqual([sha]);
  });

  // The 12 writers also rewrite ONE output file under each other's feet (as a process a step left behind
  // might): a blob must be named by the bytes it holds, whatever the file held when it was first hashed.
  it("many writers of one key at once leave one good entry and no temp file", async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => put(`bytes-of-writer-${i}`)));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const shard = join(store, "cache", "ab");
    expect(readdirSync(shard)).toEqual([`${KEY}.json`]);
    const entry = cacheEntrySchema.parse(JSON.parse(readFileSync(join(shard, `${KEY}.json`), "utf8")));
    // Its output blob exists and holds the bytes its name says.
    const blob = join(store, "blobs", entry.outputs[0]?.sha256.slice(0, 2) ?? "", entry.outputs[0]?.sha256 ?? "");
    expect(createHash("sha256").update(readFileSync(blob)).digest("hex")).toBe(entry.outputs[0]?.sha256);
    for (const d of readdirSync(join(store, "blobs"))) expect(readdirSync(join(store, "blobs", d)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  // Entries are created with O_EXCL under their final name, in this shell: the first writer's stays, a cut
  // one is replaced, and the shell's noclobber and umask are what they were.
  const putNoOutput = (setup = "") =>
    bash(
      `set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; umask 0022; ${setup}` +
        `_hp_cache_put p.m.1.render 'p.m.{i}.render' '{"success":true,"timestamp":"2026-12-07T00:00:00.000Z","duration_s":1,"provides":[],"outputs":{"published":{},"files":[]},"error":null,"meta":{},"signature":"abc","failure":null,"key":"p.m.1.render"}' "$RUN/ctx/none.pub"; ` +
        `[[ $- != *C* ]] || echo "noclobber left on" >&2; [[ $(umask) == 0022 ]] || echo "umask left at $(umask)" >&2; ` +
        `: > "$RUN/after" || echo "cannot truncate a file" >&2`,
      { LIB: lib, RUN: run },
    );
  const entryPath = (): string => join(store, "cache", "ab", `${KEY}.json`);

  it("a step without outputs is stored with no process started, and leaves the shell's options and umask as they were", async () => {
    mkdirSync(join(store, "cache", "ab"), { recursive: true });
    writeFileSync(join(run, "after"), "x");
    // No program can be found: a `mv`, a `mkdir` or a subshell's `cp` would fail and leave the step uncached.
    const r = await putNoOutput('PATH=/nonexistent; ');
    expect(r.stderr).not.toMatch(/left|cannot truncate|command not found/);
    expect(r.stderr).toMatch(/stored in the step cache/);
    expect(cacheEntrySchema.parse(JSON.parse(readFileSync(entryPath(), "utf8")))).toMatchObject({ key: KEY, step: "p.m.1.render", outputs: [] });
    expect(readdirSync(join(store, "cache", "ab"))).toEqual([`${KEY}.json`]);
  });

  it("keeps an entry another run wrote first, and replaces one a crash cut short", async () => {
    mkdirSync(join(store, "cache", "ab"), { recursive: true });
    const first = `{"format":1,"key":"${KEY}","step":"p.m.1.render","run":"first","state":{},"pub":"","outputs":[]}\n`;
    writeFileSync(entryPath(), first);
    expect((await putNoOutput("set -C; ")).stderr).not.toMatch(/stored in the step cache/);
    expect(readFileSync(entryPath(), "utf8")).toBe(first);
    // A writer that was killed mid-line: no closing brace and newline. The next writer replaces it.
    writeFileSync(entryPath(), first.slice(0, 40));
    const r = await putNoOutput();
    expect(r.stderr).toMatch(/stored in the step cache/);
    expect(r.stderr).not.toMatch(/left|cannot truncate/);
    expect(cacheEntrySchema.parse(JSON.parse(readFileSync(entryPath(), "utf8")))).toMatchObject({ run: "20261207-000000-abcdef" });
    expect(readdirSync(join(store, "cache", "ab"))).toEqual([`${KEY}.json`]);
  });

  it("an output that is not a regular file (a symlink, a directory) leaves the step uncached", async () => {
    writeFileSync(join(dir, "elsewhere"), "x");
    symlinkSync(join(dir, "elsewhere"), join(run, "work", "out", "link.png"));
    const r = await put("png", "out/link.png");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/not stored in the step cache \(output 'out\/link\.png' is not a regular file under work\/\)/);
    expect(existsSync(join(store, "cache", "ab", `${KEY}.json`))).toBe(false);
  });

  it("a step with no key (line '-', or no keys file) is not stored", async () => {
    const r = await bash(
      `set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=0; _hp_cache_key 'p.m.{i}.render' && echo has; _hp_cache_key 'p.other' && echo has; true`,
      { LIB: lib, RUN: run },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(store, "cache"))).toBe(false);
  });

  it("skips a step whose state was restored from the cache with this signature, and only then", async () => {
    mkdirSync(join(run, "states"), { recursive: true });
    const state = (extra: string, sig = "abc") => `{"success":true,"timestamp":"t","duration_s":1,"provides":[],"outputs":{},"error":null,"meta":{},"signature":"${sig}","failure":null,"key":"p.s"${extra}}\n`;
    const check = async (): Promise<boolean> => (await bash(`source "$LIB"; _HP_RUN_DIR=$RUN; _hp_restored p.s abc`, { LIB: lib, RUN: run })).code === 0;
    writeFileSync(join(run, "states", "p.s.json"), state(`,"cached":{"run":"r","step":"p.s","key":"${KEY}"}`));
    expect(await check()).toBe(true);
    writeFileSync(join(run, "states", "p.s.json"), state(""));
    expect(await check()).toBe(false);
    writeFileSync(join(run, "states", "p.s.json"), state(`,"cached":{"run":"r","step":"p.s","key":"${KEY}"}`, "other"));
    expect(await check()).toBe(false);
  });
});

describe("a packed task's cache keys", () => {
  it("are its items' lines of each keys file, read once by the task's shell from byte 65 x the first item", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hpcpipe-cacheslice-"));
    try {
      const run = join(dir, "run");
      mkdirSync(join(run, "cache", "keys"), { recursive: true });
      writeFileSync(join(run, "cache", "store"), `${join(dir, "store")}\n\n`);
      const keyOf = (i: number): string => createHash("sha256").update(`item ${i}`).digest("hex");
      // 1,000 items; item 7 has no key.
      const lines = Array.from({ length: 1000 }, (_, i) => (i === 7 ? NO_CACHE_KEY : keyOf(i)));
      writeFileSync(join(run, "cache", "keys", "p.m.{i}.a.keys"), `${lines.join("\n")}\n`);
      const lib = join(dir, "lib.sh");
      writeFileSync(lib, libScript());
      // The task of items 500-599 (the slice), then items 0-9 (another task), asked item by item as the steps would.
      const script =
        'set -u; source "$LIB"; _HP_RUN_DIR=$RUN; ' +
        "_hp_cache_slices 500 100; for HPCPIPE_TASK in 500 501 599; do _hp_cache_key 'p.m.{i}.a' && echo \"$HPCPIPE_TASK $REPLY\" || echo \"$HPCPIPE_TASK none\"; done; " +
        "_hp_cache_slices 0 10; for HPCPIPE_TASK in 0 7 9; do _hp_cache_key 'p.m.{i}.a' && echo \"$HPCPIPE_TASK $REPLY\" || echo \"$HPCPIPE_TASK none\"; done";
      const out = await new Promise<string>((resolve) => {
        const child = spawn("bash", ["-c", script], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LIB: lib, RUN: run }, stdio: ["ignore", "pipe", "ignore"] });
        let text = "";
        child.stdout.on("data", (d: Buffer) => (text += d.toString()));
        child.on("close", () => resolve(text));
      });
      expect(out.trim().split("\n")).toEqual([`500 ${keyOf(500)}`, `501 ${keyOf(501)}`, `599 ${keyOf(599)}`, `0 ${keyOf(0)}`, "7 none", `9 ${keyOf(9)}`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
