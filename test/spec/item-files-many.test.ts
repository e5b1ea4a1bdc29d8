/**
 * An items_glob that matches more files than a call can take as arguments
 * (200,000 here; a 1,000,000-item map is allowed): the spec loads. Spreading
 * the matched files into `splice()` (the sorted, deduplicated list) or into
 * `push()` (the run's staged inputs) threw "Maximum call stack size exceeded".
 * The directory listing and the hashing are faked so no 200,000 files are
 * written: the directory `many/` of the spec's directory lists them, and
 * every file has the same digest.
 */
import type { Dirent } from "node:fs";
import type * as Fs from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { resolveItemFiles } from "../../src/spec/item-files.js";
import { loadSpec } from "../../src/spec/load.js";
import type { MapStep } from "../../src/spec/map-step.js";
import type * as Hash from "../../src/store/hash.js";
import { tempDir } from "./helpers.js";

const COUNT = 200_000;
const fake = vi.hoisted(() => ({ dir: "" }));

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof Fs>();
  const entry = (name: string): Dirent => ({ name, isDirectory: () => false, isFile: () => true, isSymbolicLink: () => false }) as unknown as Dirent;
  const readdirSync = ((path: string, options?: unknown) =>
    fake.dir !== "" && path === fake.dir
      ? Array.from({ length: 200_000 }, (_, i) => entry(`m${String(i).padStart(6, "0")}.glb`))
      : (fs.readdirSync as (p: string, o?: unknown) => unknown)(path, options)) as typeof fs.readdirSync;
  return { ...fs, default: { ...fs, readdirSync }, readdirSync };
});

vi.mock("../../src/store/hash.js", async (importOriginal) => {
  const hash = await importOriginal<typeof Hash>();
  return { ...hash, hashFileSync: () => ({ size: 1, sha256: "0".repeat(64) }) };
});

const tmp = tempDir("hpcpipe-item-files-many-");
fake.dir = join(tmp.dir, "many");
afterAll(() => tmp.cleanup());

describe("items_glob over 200,000 files", () => {
  it("resolves every file once, sorted (the list is not spread into splice())", () => {
    const resolved = resolveItemFiles({ map: "m", glob: ["many/*.glb", "many/m00000*.glb"], root: tmp.dir, specDir: tmp.dir });
    if (!("value" in resolved)) throw new Error(`expected items, got ${JSON.stringify(resolved.problems[0])}`);
    const { items, files } = resolved.value;
    expect(items).toHaveLength(COUNT);
    expect(items[0]).toBe("inputs/m/many/m000000.glb");
    expect(items[COUNT - 1]).toBe("inputs/m/many/m199999.glb");
    expect(files).toHaveLength(COUNT);
  });

  it("loads the spec with every file staged as an input (the files are not spread into push())", async () => {
    const { writeFileSync } = await import("node:fs");
    const file = join(tmp.dir, "spec.yaml");
    writeFileSync(file, "name: t\nsteps:\n  - map: m\n    items_glob: many/*.glb\n    items_per_task: 100\n    steps:\n      - step: s\n        run: 'test -f \"$item\"'\n");
    const loaded = loadSpec(file);
    const map = loaded.pipeline.steps[0] as MapStep;
    expect(map.items).toHaveLength(COUNT);
    expect(loaded.inputs).toHaveLength(COUNT);
    expect(loaded.inputs[COUNT - 1]?.rel).toBe("work/inputs/m/many/m199999.glb");
  });
});
