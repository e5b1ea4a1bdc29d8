// Cache keys of step instances (src/cache/keys.ts): a stale hit is worse than a miss, so each input of
// a step is changed in turn and shown to change its key (and the keys after it), and only those.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cacheKeys, effectiveHits, expandInput } from "../../src/cache/keys.js";
import type { CacheKeyInput } from "../../src/cache/keys.js";
import { preparePlan } from "../../src/app/prepare.js";

const dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Variant {
  items?: string[];
  quality?: string;
  prepRun?: string;
  twoRun?: string;
  oneOutputs?: string;
  twoExtra?: string;
}

let counter = 0;
/** A pipeline: prep (publishes greeting), a map over models (inspect, then render), then a summary. */
function planOf(v: Variant = {}) {
  const file = path.join(dir, `p${counter++}.yaml`);
  const items = v.items ?? ["models/a.glb", "models/b.gltf", "models/c.glb"];
  writeFileSync(
    file,
    [
      "name: keyed",
      "context:",
      `  quality: ${JSON.stringify(v.quality ?? "high")}`,
      "steps:",
      "  - step: prep",
      `    run: ${JSON.stringify(v.prepRun ?? 'echo "greeting=hi" >> "$HPCPIPE_PUBLISH"')}`,
      "    provides: [greeting]",
      "  - map: models",
      `    items: ${JSON.stringify(items)}`,
      "    as: model",
      "    steps:",
      "      - step: inspect",
      '        run: node bin/inspect.mjs "$model"',
      "        requires: [model]",
      '        inputs: ["{item_stem}.*"]',
      `        outputs: [${JSON.stringify(v.oneOutputs ?? "out/inspect/{item}.json")}]`,
      "      - step: render",
      `        run: ${JSON.stringify(v.twoRun ?? 'blender -b "$model" --quality "$quality"')}`,
      "        requires: [model, quality]",
      '        inputs: ["{item}"]',
      ...(v.twoExtra ? [`        ${v.twoExtra}`] : []),
      "  - step: summary",
      "    run: cat out/inspect/* > out/summary.txt",
      "    outputs: [out/summary.txt]",
      "",
    ].join("\n"),
  );
  return preparePlan({ spec: file, cluster: "local", runId: "20261207-000000-aaaaaa" }).plan;
}

const BUNDLE = [
  { path: "bin/inspect.mjs", sha256: "1".repeat(64) },
  { path: "models/a.glb", sha256: "a".repeat(64) },
  { path: "models/b.gltf", sha256: "b".repeat(64) },
  { path: "models/b.bin", sha256: "c".repeat(64) },
  { path: "models/c.glb", sha256: "d".repeat(64) },
];

function keysOf(plan: ReturnType<typeof planOf>, over: Partial<CacheKeyInput> = {}): ReadonlyMap<string, string | null> {
  return cacheKeys({ plan, bundle: BUNDLE, modules: ["blender/4.2"], setup: [], ...over }).keys;
}

const STEPS = ["keyed.prep", "keyed.models.0.inspect", "keyed.models.0.render", "keyed.models.1.inspect", "keyed.models.1.render", "keyed.models.2.inspect", "keyed.models.2.render", "keyed.summary"];

/** The steps whose keys differ between two key maps. */
function changed(a: ReadonlyMap<string, string | null>, b: ReadonlyMap<string, string | null>): string[] {
  expect([...a.keys()]).toEqual([...b.keys()]);
  return [...a.keys()].filter((k) => a.get(k) !== b.get(k));
}

describe("cache keys", () => {
  const base = keysOf(planOf());

  it("gives every step instance a SHA-256 key, in execution order, the same on every computation", () => {
    expect([...base.keys()]).toEqual(STEPS);
    for (const k of base.values()) expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(base.values()).size).toBe(STEPS.length);
    expect(changed(base, keysOf(planOf()))).toEqual([]);
  });

  it("a context value changes the keys of the steps that require it and of the steps after them, only", () => {
    expect(changed(base, keysOf(planOf({ quality: "low" })))).toEqual(["keyed.models.0.render", "keyed.models.1.render", "keyed.models.2.render", "keyed.summary"]);
  });

  it("a changed item changes that item's steps and the steps after the map, only", () => {
    // The model replaced in the list and in the bundle.
    const replaced = [...BUNDLE.filter((f) => !f.path.startsWith("models/b.")), { path: "models/b2.gltf", sha256: "5".repeat(64) }];
    const k = keysOf(planOf({ items: ["models/a.glb", "models/b2.gltf", "models/c.glb"] }), { bundle: replaced });
    expect(changed(base, k)).toEqual(["keyed.models.1.inspect", "keyed.models.1.render", "keyed.summary"]);
    // Left in the bundle, models/b.gltf is no item's input any more: a bundle file no step declares is code, and keys every step.
    const left = keysOf(planOf({ items: ["models/a.glb", "models/b2.gltf", "models/c.glb"] }), { bundle: [...BUNDLE, { path: "models/b2.gltf", sha256: "5".repeat(64) }] });
    expect(changed(base, left)).toEqual(STEPS);
  });

  it("a declared input file's content changes only the steps that declare it (and what follows); a sibling matched by a glob counts", () => {
    const edit = (p: string) => BUNDLE.map((f) => (f.path === p ? { ...f, sha256: "e".repeat(64) } : f));
    // models/b.bin: only inspect declares it ({item_stem}.*); render declares {item} (the .gltf) only.
    expect(changed(base, keysOf(planOf(), { bundle: edit("models/b.bin") }))).toEqual(["keyed.models.1.inspect", "keyed.models.1.render", "keyed.summary"]);
    expect(changed(base, keysOf(planOf(), { bundle: edit("models/c.glb") }))).toEqual(["keyed.models.2.inspect", "keyed.models.2.render", "keyed.summary"]);
  });

  it("a bundle file no step declares (the code) changes every key: editing a script changes no command text", () => {
    const edited = BUNDLE.map((f) => (f.path === "bin/inspect.mjs" ? { ...f, sha256: "f".repeat(64) } : f));
    expect(changed(base, keysOf(planOf(), { bundle: edited }))).toEqual(STEPS);
    expect(changed(base, keysOf(planOf(), { bundle: [...BUNDLE, { path: "bin/new.sh", sha256: "2".repeat(64) }] }))).toEqual(STEPS);
  });

  it("the cluster config's modules and setup lines change every key", () => {
    expect(changed(base, keysOf(planOf(), { modules: ["blender/4.3"] }))).toEqual(STEPS);
    expect(changed(base, keysOf(planOf(), { setup: ["export OMP_NUM_THREADS=1"] }))).toEqual(STEPS);
  });

  it("a step's definition changes its key and the keys after it; an upstream step's changes everything downstream", () => {
    expect(changed(base, keysOf(planOf({ twoRun: 'blender -b "$model" -q "$quality"' })))).toEqual(["keyed.models.0.render", "keyed.models.1.render", "keyed.models.2.render", "keyed.summary"]);
    expect(changed(base, keysOf(planOf({ prepRun: 'echo "greeting=hello" >> "$HPCPIPE_PUBLISH"' })))).toEqual(STEPS);
  });

  it("the item's index is in the key only of steps that can see it", () => {
    // Items reordered: a step that cannot see its index keeps its key under the item's new index.
    const moved = keysOf(planOf({ items: ["models/c.glb", "models/a.glb", "models/b.gltf"] }));
    expect(moved.get("keyed.models.0.inspect")).toBe(base.get("keyed.models.2.inspect"));
    // With an output named by the index, it does not.
    const byIndex = keysOf(planOf({ oneOutputs: "out/inspect/{i}.json" }));
    const byIndexMoved = keysOf(planOf({ oneOutputs: "out/inspect/{i}.json", items: ["models/c.glb", "models/a.glb", "models/b.gltf"] }));
    expect(byIndexMoved.get("keyed.models.0.inspect")).not.toBe(byIndex.get("keyed.models.2.inspect"));
  });

  it("a staged item keys by its content hash, not its path", () => {
    // Staged items are not bundle files: the bundle is the code alone.
    const code = { bundle: BUNDLE.slice(0, 1) };
    const plan = planOf({ oneOutputs: "out/inspect/{i}.json" });
    const hashes = { "keyed.models": ["a".repeat(64), "b".repeat(64), "d".repeat(64)] };
    const a = keysOf(plan, { ...code, itemHashes: hashes });
    const renamed = keysOf(planOf({ oneOutputs: "out/inspect/{i}.json", items: ["models/a.glb", "models/renamed.gltf", "models/c.glb"] }), { ...code, itemHashes: hashes });
    expect(changed(a, renamed)).toEqual([]);
    const other = keysOf(plan, { ...code, itemHashes: { "keyed.models": ["a".repeat(64), "9".repeat(64), "d".repeat(64)] } });
    expect(changed(a, other)).toEqual(["keyed.models.1.inspect", "keyed.models.1.render", "keyed.summary"]);
    // An output named after the item lands at a path made of its value: a rename changes that step's key.
    const byName = keysOf(planOf(), { ...code, itemHashes: hashes });
    const byNameRenamed = keysOf(planOf({ items: ["models/a.glb", "models/renamed.gltf", "models/c.glb"] }), { ...code, itemHashes: hashes });
    expect(changed(byName, byNameRenamed)).toEqual(["keyed.models.1.inspect", "keyed.models.1.render", "keyed.summary"]);
  });

  it("cache: false leaves a step and every step after it in its chain without a key", () => {
    const k = keysOf(planOf({ twoExtra: "cache: false" }));
    expect([...k.entries()].filter(([, v]) => v === null).map(([s]) => s)).toEqual(["keyed.models.0.render", "keyed.models.1.render", "keyed.models.2.render", "keyed.summary"]);
  });

  it("restores a hit only when every step before it in its chain is restored too", () => {
    const all = cacheKeys({ plan: planOf(), bundle: BUNDLE, modules: [], setup: [] });
    const keyOf = (s: string) => all.keys.get(s) as string;
    const hits = new Set(STEPS.filter((s) => s !== "keyed.models.1.inspect").map(keyOf));
    const restored = effectiveHits(all, hits);
    // Item 1's render and the summary have entries, but item 1's inspect runs again: so do they.
    expect([...restored]).toEqual(["keyed.prep", "keyed.models.0.inspect", "keyed.models.0.render", "keyed.models.2.inspect", "keyed.models.2.render"]);
    expect([...effectiveHits(all, new Set(STEPS.map(keyOf)))]).toEqual(STEPS);
  });
});

describe("input patterns", () => {
  it("expands {i}, {item} and {item_stem}", () => {
    expect(expandInput("out/{i}/{item_stem}.*", 3, "models/x.tar.gz")).toBe("out/3/models/x.tar.*");
    expect(expandInput("{item}", 0, "models/.hidden")).toBe("models/.hidden");
    expect(expandInput("{item_stem}", 0, "noext")).toBe("noext");
  });
  it("globs: * within a segment, ** across, a directory names what is under it", () => {
    const files = ["models/a.glb", "models/deep/a.glb", "models/deep/er/b.glb", "a+b(c).txt"].map((path, i) => ({ path, sha256: String(i).repeat(64) }));
    // Declared files key only the steps that declare them; the rest (code) keys every step: so compare declared sets.
    const declared = (pattern: string): string[] => {
      const plan = planOf();
      plan.jobs.forEach((j) => j.bodies.forEach((b) => b.steps.forEach((s) => s.key === "keyed.prep" && (s.inputs = [pattern]))));
      const base = cacheKeys({ plan: planOf(), bundle: files, modules: [], setup: [] }).declared;
      return [...cacheKeys({ plan, bundle: files, modules: [], setup: [] }).declared].filter((f) => !base.has(f)).sort();
    };
    expect(declared("models/deep/*.glb")).toEqual(["models/deep/a.glb"]);
    // models/a.glb is an item's input already (the baseline): ** adds the deeper ones.
    expect(declared("models/**/*.glb")).toEqual(["models/deep/a.glb", "models/deep/er/b.glb"]);
    expect(declared("models/deep")).toEqual(["models/deep/a.glb", "models/deep/er/b.glb"]);
    expect(declared("a+b(c).txt")).toEqual(["a+b(c).txt"]);
  });
  it("keeps a map's item keys compact and reads them back as a Map would: in execution order, by concrete key, by family", () => {
    const all = cacheKeys({ plan: planOf({ twoExtra: "cache: false" }), bundle: BUNDLE, modules: [], setup: [] });
    const k = all.keys;
    // Execution order: prep, then each item's inspect and render, then the summary.
    expect([...k.keys()]).toEqual(["keyed.prep", ...[0, 1, 2].flatMap((i) => [`keyed.models.${i}.inspect`, `keyed.models.${i}.render`]), "keyed.summary"]);
    expect(k.size).toBe(8);
    expect([...k.values()]).toEqual([...k.entries()].map(([, v]) => v));
    const inspect1 = k.get("keyed.models.1.inspect");
    expect(inspect1).toMatch(/^[0-9a-f]{64}$/);
    expect(k.get("keyed.models.1.render")).toBeNull();
    expect(new Set([k.get("keyed.models.0.inspect"), inspect1, k.get("keyed.models.2.inspect")]).size).toBe(3);
    // Only a concrete key of an item that exists is one: no other index, no leading zero, no other step.
    for (const not of ["keyed.models.3.inspect", "keyed.models.01.inspect", "keyed.models.-1.inspect", "keyed.models.{i}.inspect", "keyed.models.1.other", "keyed.models.1.inspectx"]) {
      expect([not, k.get(not), k.has(not)]).toEqual([not, undefined, false]);
    }
    // Each family's keys are those of its steps' instances that have one.
    const family = all.families.get("keyed.models.{i}.inspect") as string;
    expect([...(all.byFamily.get(family) ?? [])]).toEqual([0, 1, 2].map((i) => k.get(`keyed.models.${i}.inspect`)));
    expect(all.byFamily.get(family)?.size).toBe(3);
    const keyed = [...k.values()].filter((v) => v !== null).sort();
    expect([...all.byFamily.values()].flatMap((f) => [...f]).sort()).toEqual(keyed);
  });

  it("keys a map of more items than a call can take as arguments (its end is digested from an array, not spread)", () => {
    const plan = planOf();
    const mapKey = Object.keys(plan.items)[0] as string;
    // 200,000 items: spreading their ends into one call threw "Maximum call stack size exceeded" (a 1,000,000-item submit did).
    plan.items[mapKey] = Array.from({ length: 200_000 }, (_, i) => `models/${i}.glb`);
    const keys = cacheKeys({ plan, bundle: BUNDLE, modules: [], setup: [] }).keys;
    expect(keys.size).toBe(2 * 200_000 + 2);
    expect(keys.get("keyed.summary")).toMatch(/^[0-9a-f]{64}$/);
  });
});
