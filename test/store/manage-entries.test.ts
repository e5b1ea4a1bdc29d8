// `cache ls` / `cache prune` over the step cache's entries (src/store/manage.ts), its script run with a real
// bash: entries are the files of one entry (the layout before families) plus the lines of family files; a
// family file is pruned as a whole once unused for the age, and its directory with it when empty.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { manageStore } from "../../src/store/manage.js";
import type { Transport } from "../../src/transport/index.js";

/** Runs exec's argv with a local bash; nothing else is needed here. */
const localBash: Transport = {
  exec: (argv) => {
    const [cmd, ...args] = argv.map((w) => String(typeof w === "string" ? w : (w as { path: string }).path));
    const r = spawnSync(cmd as string, args, { encoding: "utf8" });
    return Promise.resolve({ code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr });
  },
  putFiles: () => Promise.reject(new Error("not here")),
  getFiles: () => Promise.reject(new Error("not here")),
  close: () => Promise.resolve(),
  roundTrips: 0,
};

describe("the store's step cache entries", () => {
  let store: string;
  const old = new Date("2020-01-01T00:00:00Z");
  beforeEach(() => {
    store = mkdtempSync(join(tmpdir(), "hpcpipe-manage-"));
    const famA = join(store, "cache", "f", "a".repeat(64));
    const famB = join(store, "cache", "f", "b".repeat(64));
    mkdirSync(famA, { recursive: true });
    mkdirSync(famB, { recursive: true });
    mkdirSync(join(store, "cache", "11"), { recursive: true });
    writeFileSync(join(store, "cache", "11", `${"1".repeat(64)}.json`), "{}\n");
    writeFileSync(join(store, "cache", "11", `${"2".repeat(64)}.json`), "{}\n");
    utimesSync(join(store, "cache", "11", `${"1".repeat(64)}.json`), old, old);
    writeFileSync(join(famA, "r.h.1.jsonl"), "{}\n{}\n{}\n");
    utimesSync(join(famA, "r.h.1.jsonl"), old, old);
    writeFileSync(join(famB, "r.h.2.jsonl"), "{}\n{}\n");
    mkdirSync(join(store, "cache", ".query.abc123"));
    utimesSync(join(store, "cache", ".query.abc123"), old, old);
  });
  afterEach(() => rmSync(store, { recursive: true, force: true }));

  it("counts the lines of family files as entries, and prunes a family file as a whole", async () => {
    const usage = await manageStore(localBash, store, { olderThanMinutes: 60, prune: false });
    expect(usage).toMatchObject({ entries: 2 + 3 + 2, entriesBytes: 3 + 3 + 9 + 6, prunableEntries: 1 + 3, prunableEntriesBytes: 3 + 9 });
    expect(existsSync(join(store, "cache", "f", "a".repeat(64), "r.h.1.jsonl"))).toBe(true);
    await manageStore(localBash, store, { olderThanMinutes: 60, prune: true });
    // Family a's only file went, and its directory; b's stays; the old layout's unused entry went; a query's temp dir left a day ago went.
    expect(readdirSync(join(store, "cache", "f"))).toEqual(["b".repeat(64)]);
    expect(readdirSync(join(store, "cache", "11"))).toEqual([`${"2".repeat(64)}.json`]);
    expect(existsSync(join(store, "cache", ".query.abc123"))).toBe(false);
    const after = await manageStore(localBash, store, { olderThanMinutes: 60, prune: false });
    expect(after).toMatchObject({ entries: 1 + 2, prunableEntries: 0 });
  });
});
