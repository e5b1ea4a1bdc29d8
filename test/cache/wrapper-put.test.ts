// The job wrapper's side of the step cache (templates/lib.sh: _hp_cache_key, _hp_cache_put,
// _hp_restored), with real bash: an entry is one valid line of JSON in its process's file of the step's
// family (created with O_EXCL, then appended to: one file per process, not one per entry), its outputs
// are blobs named by their hash; many writers at once each write their own file and leave no temp file; a
// file at that name that is not this process's own regular file is not written through; an output that is
// not a regular file leaves the step uncached.
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
const FAMILY = "fa".padEnd(64, "1");
const RUN_ID = "20261207-000000-abcdef";

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
  let familyDir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hpcpipe-cacheput-"));
    run = join(dir, "runs", "p", RUN_ID);
    store = join(dir, "store");
    familyDir = join(store, "cache", "f", FAMILY);
    for (const d of [join(run, "cache", "keys"), join(run, "work", "out"), join(run, "ctx"), store]) mkdirSync(d, { recursive: true });
    writeFileSync(join(run, "cache", "store"), `${store}\n\n`);
    writeFileSync(join(run, "cache", "keys", "p.m.{i}.render.keys"), `${NO_CACHE_KEY}\n${KEY}\n`);
    writeFileSync(join(run, "cache", "keys", "p.m.{i}.render.family"), `${FAMILY}\n`);
    lib = join(dir, "lib.sh");
    writeFileSync(lib, libScript());
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The family's files: name -> their lines. */
  const familyFiles = (): Map<string, string[]> =>
    new Map(existsSync(familyDir) ? readdirSync(familyDir).map((f) => [f, readFileSync(join(familyDir, f), "utf8").split("\n").filter((l) => l !== "")]) : []);
  const onlyEntry = () => {
    const files = [...familyFiles().values()];
    expect(files.length).toBe(1);
    expect(files[0]?.length).toBe(1);
    return cacheEntrySchema.parse(JSON.parse(files[0]?.[0] ?? ""));
  };

  const PUT =
    `_hp_cache_put p.m.1.render 'p.m.{i}.render' '{"success":true,"timestamp":"2026-12-07T00:00:00.000Z","duration_s":1,"provides":["size"],"outputs":{"published":{"size":"3"},"files":["out/1.png"]},"error":null,"meta":{},"signature":"abc","failure":null,"key":"p.m.1.render"}' "$RUN/ctx/p.m.1.render.pub" "$OUT"`;
  const put = (content: string, output = "out/1.png") =>
    bash(
      `set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; mkdir -p "$RUN/work/out"; printf %s "$CONTENT" > "$RUN/work/out/1.png.$$" && mv "$RUN/work/out/1.png.$$" "$RUN/work/out/1.png"; ` +
        `printf 'size=3\\n' > "$RUN/ctx/p.m.1.render.pub"; ${PUT}`,
      { LIB: lib, RUN: run, CONTENT: content, OUT: output },
    );

  it("stores the outputs as blobs and the entry as one valid line of JSON, in its family's file of this process", async () => {
    const r = await put("png-bytes");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/step p\.m\.1\.render: stored in the step cache/);
    expect([...familyFiles().keys()]).toEqual([expect.stringMatching(new RegExp(`^${RUN_ID}\\.[A-Za-z0-9.-]+\\.\\d+\\.jsonl$`))]);
    const entry = onlyEntry();
    const sha = createHash("sha256").update("png-bytes").digest("hex");
    expect(entry).toMatchObject({ key: KEY, step: "p.m.1.render", run: RUN_ID, pub: "size=3\n", outputs: [{ path: "out/1.png", sha256: sha }] });
    expect(readFileSync(join(store, "blobs", sha.slice(0, 2), sha), "utf8")).toBe("png-bytes");
    // The run's own file is a copy, still writable; the blob is read-only.
    expect(readdirSync(join(store, "blobs", sha.slice(0, 2)))).toEqual([sha]);
    // No file of one entry (the layout before families).
    expect(readdirSync(join(store, "cache"))).toEqual(["f"]);
  });

  // The 12 writers also rewrite ONE output file under each other's feet (as a process a step left behind
  // might): a blob must be named by the bytes it holds, whatever the file held when it was first hashed.
  it("many writers at once each write their own file of whole entries and leave no temp file", async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => put(`bytes-of-writer-${i}`)));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const files = familyFiles();
    expect(files.size).toBe(12);
    for (const lines of files.values()) {
      expect(lines.length).toBe(1);
      const entry = cacheEntrySchema.parse(JSON.parse(lines[0] ?? ""));
      // Its output blob exists and holds the bytes its name says.
      const blob = join(store, "blobs", entry.outputs[0]?.sha256.slice(0, 2) ?? "", entry.outputs[0]?.sha256 ?? "");
      expect(createHash("sha256").update(readFileSync(blob)).digest("hex")).toBe(entry.outputs[0]?.sha256);
    }
    for (const d of readdirSync(join(store, "blobs"))) expect(readdirSync(join(store, "blobs", d)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  const putNoOutput = () => bash(`set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; ${PUT.replace(' "$OUT"', "")}`, { LIB: lib, RUN: run });
  /** The name this process's file gets (the script computes it the way lib.sh does). */
  const NAME = `name=\${HOSTNAME:-host}; name="$FAMDIR/${RUN_ID}.\${name//[^A-Za-z0-9.-]/_}.$BASHPID.jsonl"; `;

  it("a step without outputs is stored with no process started, and leaves the shell's options and umask as they were", async () => {
    mkdirSync(familyDir, { recursive: true });
    writeFileSync(join(run, "after"), "x");
    // No program can be found: a `mv`, a `mkdir` or a subshell's `cp` would fail and leave the step uncached.
    const r = await bash(
      `set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; umask 0022; PATH=/nonexistent; ` +
        `for n in 1 2 3; do _hp_cache_put p.m.1.render 'p.m.{i}.render' '{"success":true,"timestamp":"2026-12-07T00:00:00.000Z","duration_s":1,"provides":[],"outputs":{"published":{},"files":[]},"error":null,"meta":{},"signature":"abc","failure":null,"key":"p.m.1.render"}' "$RUN/ctx/none.pub"; done; ` +
        `[[ $- != *C* ]] || echo "noclobber left on" >&2; [[ $(umask) == 0022 ]] || echo "umask left at $(umask)" >&2; ` +
        `: > "$RUN/after" || echo "cannot truncate a file" >&2`,
      { LIB: lib, RUN: run },
    );
    expect(r.stderr).not.toMatch(/left|cannot truncate|command not found/);
    expect(r.stderr.match(/stored in the step cache/g)?.length).toBe(3);
    // Three entries of one process: three lines of ONE file.
    const files = [...familyFiles().values()];
    expect(files.length).toBe(1);
    expect(files[0]?.map((l) => cacheEntrySchema.parse(JSON.parse(l)))).toEqual([0, 1, 2].map(() => expect.objectContaining({ key: KEY, step: "p.m.1.render", outputs: [] })));
  });

  it("goes on after its own file an earlier job of this process id left (a cut last line stays apart), and never writes through another's file or a link", async () => {
    mkdirSync(familyDir, { recursive: true });
    const cut = `{"format":1,"key":"${KEY}","step":"p.m.1.render","run":"ear`;
    // Its own file, cut short by a crash: the entry goes on a line of its own.
    let r = await bash(`${NAME}printf %s "$CUT" > "$name"; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; set -C; ${PUT.replace(' "$OUT"', "")}; [[ $- == *C* ]] || echo "noclobber turned off" >&2`, {
      LIB: lib,
      RUN: run,
      FAMDIR: familyDir,
      CUT: cut,
    });
    expect(r.stderr).toMatch(/stored in the step cache/);
    expect(r.stderr).not.toMatch(/turned off/);
    let files = [...familyFiles().values()];
    expect(files[0]?.[0]).toBe(cut);
    expect(cacheEntrySchema.parse(JSON.parse(files[0]?.[1] ?? ""))).toMatchObject({ key: KEY, run: RUN_ID });
    rmSync(familyDir, { recursive: true });
    mkdirSync(familyDir, { recursive: true });
    // A link at its name (to a file elsewhere): not followed, nothing stored.
    writeFileSync(join(dir, "elsewhere"), "mine\n");
    r = await bash(`${NAME}ln -s "$ELSEWHERE" "$name"; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; ${PUT.replace(' "$OUT"', "")}`, { LIB: lib, RUN: run, FAMDIR: familyDir, ELSEWHERE: join(dir, "elsewhere") });
    expect(r.stderr).not.toMatch(/stored in the step cache/);
    expect(readFileSync(join(dir, "elsewhere"), "utf8")).toBe("mine\n");
    if (process.getuid?.() === 0) {
      // Another user's file at its name: left as it is, nothing stored.
      rmSync(familyDir, { recursive: true });
      mkdirSync(familyDir, { recursive: true });
      r = await bash(`${NAME}printf 'theirs\\n' > "$name"; chown 65534 "$name"; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=1; ${PUT.replace(' "$OUT"', "")}`, { LIB: lib, RUN: run, FAMDIR: familyDir });
      expect(r.stderr).not.toMatch(/stored in the step cache/);
      files = [...familyFiles().values()];
      expect(files).toEqual([["theirs"]]);
    }
  });

  it("an output that is not a regular file (a symlink, a directory) leaves the step uncached", async () => {
    writeFileSync(join(dir, "elsewhere"), "x");
    symlinkSync(join(dir, "elsewhere"), join(run, "work", "out", "link.png"));
    const r = await put("png", "out/link.png");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/not stored in the step cache \(output 'out\/link\.png' is not a regular file under work\/\)/);
    expect(familyFiles().size).toBe(0);
  });

  it("a step with no key (line '-', or no keys file), or no family, is not stored", async () => {
    const r = await bash(
      `set -u; source "$LIB"; _HP_RUN_DIR=$RUN; HPCPIPE_TASK=0; _hp_cache_key 'p.m.{i}.render' && echo has; _hp_cache_key 'p.other' && echo has; true`,
      { LIB: lib, RUN: run },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(store, "cache"))).toBe(false);
    // Item 1 has a key, but its step has no family file (a run made before families): not stored.
    rmSync(join(run, "cache", "keys", "p.m.{i}.render.family"));
    const none = await putNoOutput();
    expect(none.stderr).not.toMatch(/stored in the step cache/);
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
