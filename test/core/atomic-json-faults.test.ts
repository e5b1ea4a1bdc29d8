import { readdir, readFile, writeFile } from "node:fs/promises";
import type * as FsPromises from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { writeJsonAtomic } from "../../src/core/index.js";
import { makeTempDir } from "./helpers.js";

/**
 * node:fs/promises as seen by src/core/atomic-json.ts: real, but every call
 * is recorded and `rename` or the file handle's `sync` can be made to fail.
 */
const fault = vi.hoisted(() => ({
  events: [] as string[],
  openedPaths: [] as string[],
  failRename: false,
  failSync: false,
}));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    open: async (...args: Parameters<typeof real.open>) => {
      const path = String(args[0]);
      fault.openedPaths.push(path);
      const fh = await real.open(...args);
      if (args[1] === "r") return fh; // the directory fsync
      fault.events.push(`open ${path}`);
      return new Proxy(fh, {
        get(target, prop, receiver) {
          if (prop === "writeFile") {
            return async (...a: unknown[]) => {
              fault.events.push("write");
              return (target.writeFile as (...x: unknown[]) => Promise<void>)(...a);
            };
          }
          if (prop === "sync") {
            return async () => {
              fault.events.push("sync");
              if (fault.failSync) throw Object.assign(new Error("EIO: injected fsync failure"), { code: "EIO" });
              return target.sync();
            };
          }
          if (prop === "close") {
            return async () => {
              fault.events.push("close");
              return target.close();
            };
          }
          const value: unknown = Reflect.get(target, prop, receiver);
          return typeof value === "function" ? (value as (...x: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
    rename: async (from: string, to: string) => {
      fault.events.push(`rename ${from} -> ${to}`);
      if (fault.failRename) throw Object.assign(new Error("EXDEV: injected rename failure"), { code: "EXDEV" });
      return real.rename(from, to);
    },
  };
});

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await makeTempDir());
  fault.events.length = 0;
  fault.openedPaths.length = 0;
  fault.failRename = false;
  fault.failSync = false;
});
afterEach(async () => {
  await cleanup();
});

describe("writeJsonAtomic, observed at the filesystem calls", () => {
  it("writes a pipeline_ temp file in the target's own directory, fsyncs and closes it, then renames it over the target", async () => {
    const target = join(dir, "out.json");
    await writeJsonAtomic(target, { a: 1 });
    const tmp = fault.openedPaths[0] ?? "";
    expect(dirname(tmp)).toBe(dir);
    expect(basename(tmp)).toMatch(/^pipeline_/);
    expect(fault.events).toEqual([`open ${tmp}`, "write", "sync", "close", `rename ${tmp} -> ${target}`]);
  });

  it("fsyncs the directory after the rename", async () => {
    const target = join(dir, "out.json");
    await writeJsonAtomic(target, { a: 1 });
    expect(fault.openedPaths).toEqual([expect.stringMatching(/pipeline_/), dir]);
  });

  it("uses a different temp file for each write", async () => {
    const target = join(dir, "out.json");
    await writeJsonAtomic(target, 1);
    await writeJsonAtomic(target, 2);
    const temps = fault.openedPaths.filter((p) => p !== dir);
    expect(new Set(temps).size).toBe(2);
  });

  it("when the rename fails after the temp file was written, the temp file is removed and the previous target is intact", async () => {
    const target = join(dir, "state.json");
    await writeFile(target, '{"previous":true}\n');
    fault.failRename = true;
    await expect(writeJsonAtomic(target, { next: true })).rejects.toThrow(/injected rename failure/);
    expect(fault.events).toContain("write");
    expect(await readFile(target, "utf8")).toBe('{"previous":true}\n');
    expect(await readdir(dir)).toEqual(["state.json"]);
  });

  it("when fsync of the temp file fails, nothing is renamed, the file is closed and removed, and the target is intact", async () => {
    const target = join(dir, "state.json");
    await writeFile(target, "old\n");
    fault.failSync = true;
    await expect(writeJsonAtomic(target, { next: true })).rejects.toThrow(/injected fsync failure/);
    expect(fault.events.some((e) => e.startsWith("rename"))).toBe(false);
    expect(fault.events).toContain("close");
    expect(await readFile(target, "utf8")).toBe("old\n");
    expect(await readdir(dir)).toEqual(["state.json"]);
  });
});
