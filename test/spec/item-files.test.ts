// Map items that are local files (src/spec/item-files.ts): items_glob, stage_items, stage_with, items_root.
// The files are found and hashed when the spec loads; items become run-relative paths that keep the
// basename and layout; the plan carries their hashes; every bad input is a SpecError naming the field and line.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { copyBundle, runLocal } from "../../src/app/run-local.js";
import { Pipeline } from "../../src/core/pipeline.js";
import { CommandStep } from "../../src/spec/command-step.js";
import { MapStep as MapStepClass } from "../../src/spec/map-step.js";
import { preparePlan } from "../../src/app/prepare.js";
import { checkSameInputs, ResumeError } from "../../src/app/resume.js";
import { cacheKeyFiles, withInputs } from "../../src/app/bundle-path.js";
import { cacheKeys } from "../../src/cache/keys.js";
import { shortSignature } from "../../src/core/signature.js";
import { expandGlob, resolveItemFiles } from "../../src/spec/item-files.js";
import { loadSpec, SpecError } from "../../src/spec/load.js";
import type { LoadedSpec } from "../../src/spec/load.js";
import type { MapStep } from "../../src/spec/map-step.js";
import { cli } from "../cli/helpers.js";
import { tempDir } from "./helpers.js";

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

let dir: string;
let cleanup: () => void;

/** A small asset library: a glTF with its .bin and a texture, two .glb in nested directories, a note. */
function library(): void {
  const files: Record<string, string> = {
    "models/car/car.gltf": '{"buffers":[{"uri":"car.bin"}],"images":[{"uri":"textures/paint.png"}]}',
    "models/car/car.bin": "car-bytes",
    "models/car/textures/paint.png": "png-bytes",
    "models/props/deep/cone.glb": "cone-bytes",
    "models/props/box.glb": "box-bytes",
    "models/README.txt": "not a model",
  };
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
}

const MAP_STEPS = "    steps:\n      - step: s\n        run: 'test -f \"$item\"'\n";

function write(yaml: string, files: Record<string, string> = {}): string {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const file = join(dir, "spec.yaml");
  writeFileSync(file, yaml);
  return file;
}

function load(mapFields: string, files: Record<string, string> = {}): LoadedSpec {
  return loadSpec(write(`name: t\nsteps:\n  - map: models\n${mapFields}${MAP_STEPS}`, files));
}

function problem(mapFields: string, files: Record<string, string> = {}): SpecError {
  try {
    load(mapFields, files);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return err as SpecError;
  }
  throw new Error("expected a SpecError, but the spec loaded");
}

function mapOf(loaded: LoadedSpec): MapStep {
  return loaded.pipeline.steps[0] as MapStep;
}

beforeEach(() => {
  ({ dir, cleanup } = tempDir("hpcpipe-item-files-"));
  library();
});
afterEach(() => cleanup());

describe("items_glob: the matching local files are the items, staged under inputs/<map>/ with their layout", () => {
  it("items are run-relative paths keeping basename and layout, in path order, with the SHA-256 of each file", () => {
    const loaded = load('    items_glob: ["models/**/*.glb", "models/**/*.gltf"]\n');
    const map = mapOf(loaded);
    expect(map.items).toEqual(["inputs/models/models/car/car.gltf", "inputs/models/models/props/box.glb", "inputs/models/models/props/deep/cone.glb"]);
    expect(map.itemHashes).toEqual([sha('{"buffers":[{"uri":"car.bin"}],"images":[{"uri":"textures/paint.png"}]}'), sha("box-bytes"), sha("cone-bytes")]);
    expect(loaded.inputs.map((f) => f.rel).sort()).toEqual(map.items.map((i) => `work/${i}`).sort());
    const box = loaded.inputs.find((f) => f.rel.endsWith("box.glb"));
    expect(box).toEqual({ abs: join(dir, "models/props/box.glb"), rel: "work/inputs/models/models/props/box.glb", size: 9, sha256: sha("box-bytes") });
  });

  it("`**/` also matches no directory at all, `*` never crosses a /, and a single pattern may be a plain string", () => {
    expect(mapOf(load('    items_glob: "models/props/**/*.glb"\n')).items).toEqual(["inputs/models/models/props/box.glb", "inputs/models/models/props/deep/cone.glb"]);
    expect(mapOf(load('    items_glob: "models/*/*.glb"\n')).items).toEqual(["inputs/models/models/props/box.glb"]);
  });

  it("stage_with stages sibling files (a glTF's .bin and textures) beside the items without making them items", () => {
    const loaded = load('    items_glob: "models/**/*.gltf"\n    stage_with: ["models/car/*.bin", "models/car/textures/**"]\n');
    expect(mapOf(loaded).items).toEqual(["inputs/models/models/car/car.gltf"]);
    expect(loaded.inputs.map((f) => f.rel).sort()).toEqual([
      "work/inputs/models/models/car/car.bin",
      "work/inputs/models/models/car/car.gltf",
      "work/inputs/models/models/car/textures/paint.png",
    ]);
  });

  it("items_root sets the layout root: paths are kept relative to it", () => {
    const loaded = load('    items_glob: "models/props/**/*.glb"\n    items_root: models/props\n');
    expect(mapOf(loaded).items).toEqual(["inputs/models/box.glb", "inputs/models/deep/cone.glb"]);
  });

  it("the compiled plan carries itemHashes by map key, in item order; a map of plain strings has none", () => {
    const file = write(`name: t\nsteps:\n  - map: models\n    items_glob: "models/**/*.glb"\n${MAP_STEPS}  - map: plain\n    items: [a, b]\n${MAP_STEPS}`);
    const { plan } = preparePlan({ spec: file, runId: "20260101-000000-aaaaaa", localRunsDir: join(dir, "runs") });
    expect(plan.items["t.models"]).toEqual(["inputs/models/models/props/box.glb", "inputs/models/models/props/deep/cone.glb"]);
    expect(plan.itemHashes).toEqual({ "t.models": [sha("box-bytes"), sha("cone-bytes")] });
    const plain = write(`name: t\nsteps:\n  - map: plain\n    items: [a, b]\n${MAP_STEPS}`);
    expect("itemHashes" in preparePlan({ spec: plain, runId: "20260101-000000-aaaaaa", localRunsDir: join(dir, "runs") }).plan).toBe(false);
  });

  it("a changed file keeps its item (the path) but changes its hash, the map's signature and the item pipeline's", () => {
    const before = mapOf(load('    items_glob: "models/**/*.glb"\n'));
    writeFileSync(join(dir, "models/props/box.glb"), "box-bytes, edited");
    const after = mapOf(load('    items_glob: "models/**/*.glb"\n'));
    expect(after.items).toEqual(before.items);
    expect(after.itemHashes?.[0]).toBe(sha("box-bytes, edited"));
    expect(shortSignature(after)).not.toBe(shortSignature(before));
    expect(shortSignature(after.itemPipeline(0))).not.toBe(shortSignature(before.itemPipeline(0)));
    expect(shortSignature(after.itemPipeline(1))).toBe(shortSignature(before.itemPipeline(1)));
  });
});

describe("items or items_file of local paths with stage_items: true", () => {
  it("each line is a path relative to the spec's directory or absolute; comments and blank lines are skipped", () => {
    const list = `# models to check\nmodels/props/box.glb\n\n${join(dir, "models/car/car.gltf")}\n`;
    const loaded = load("    items_file: list.txt\n    stage_items: true\n", { "list.txt": list });
    expect(mapOf(loaded).items).toEqual(["inputs/models/models/props/box.glb", "inputs/models/models/car/car.gltf"]);
    expect(mapOf(loaded).itemHashes).toEqual([sha("box-bytes"), sha('{"buffers":[{"uri":"car.bin"}],"images":[{"uri":"textures/paint.png"}]}')]);
  });

  it("inline items work the same; without stage_items they stay plain strings", () => {
    expect(mapOf(load("    items: [models/props/box.glb]\n    stage_items: true\n")).items).toEqual(["inputs/models/models/props/box.glb"]);
    const plain = load("    items: [models/props/box.glb]\n");
    expect(mapOf(plain).items).toEqual(["models/props/box.glb"]);
    expect(mapOf(plain).itemHashes).toBeNull();
    expect(plain.inputs).toEqual([]);
  });

  it("the same file named twice is two items and one staged file", () => {
    const loaded = load("    items_file: list.txt\n    stage_items: true\n", { "list.txt": "models/props/box.glb\n./models/props/box.glb\n" });
    expect(mapOf(loaded).items).toEqual(["inputs/models/models/props/box.glb", "inputs/models/models/props/box.glb"]);
    expect(loaded.inputs).toHaveLength(1);
  });
});

describe("bad item files are refused when the spec loads, naming the field and the line", () => {
  it("a nonexistent path names its file and line", () => {
    const err = problem("    items_file: list.txt\n    stage_items: true\n", { "list.txt": "models/props/box.glb\n# note\nmodels/gone.glb\n" });
    expect(err.path).toBe("steps[0].items_file");
    expect(err.message).toMatch(/spec\.yaml:\d+:\d+: steps\[0\]\.items_file: list\.txt line 3: item file "models\/gone\.glb" does not exist or cannot be read \(.*models\/gone\.glb: /);
  });

  it("every bad line is reported in one pass", () => {
    const err = problem("    items_file: list.txt\n    stage_items: true\n", { "list.txt": "a.glb\nmodels/props\nb.glb\n" });
    expect(err.problems.map((p) => p.expected.split(":")[0])).toEqual(["list.txt line 1", "list.txt line 2", "list.txt line 3"]);
    expect(err.problems[1]?.expected).toMatch(/"models\/props" is a directory .*an item is one file \(items_glob: "models\/props\/\*\*" takes every file in it\)/);
  });

  it("an inline item names its index", () => {
    const err = problem("    items: [models/props/box.glb, nope.glb]\n    stage_items: true\n");
    expect(err.path).toBe("steps[0].items[1]");
    expect(err.expected).toMatch(/item file "nope\.glb" does not exist/);
  });

  it("a glob that matches nothing, and a stage_with pattern that matches nothing", () => {
    expect(problem('    items_glob: "models/**/*.fbx"\n').message).toMatch(/steps\[0\]\.items_glob: items_glob "models\/\*\*\/\*\.fbx" matches no file \(searched .*models\)/);
    const two = problem('    items_glob: ["models/**/*.glb", "nowhere/*.glb"]\n');
    expect(two.path).toBe("steps[0].items_glob[1]");
    expect(two.expected).toMatch(/"nowhere\/\*\.glb" matches no file/);
    const sib = problem('    items_glob: "models/**/*.glb"\n    stage_with: ["models/**/*.bin", "models/**/*.ktx2"]\n');
    expect(sib.path).toBe("steps[0].stage_with[1]");
    expect(sib.expected).toMatch(/stage_with "models\/\*\*\/\*\.ktx2" matches no file/);
  });

  it("a pattern whose directory cannot be read says so instead of matching nothing", () => {
    // Root reads every directory: a file where a directory should be is the error this machine can make.
    expect(problem('    items_glob: "models/props/box.glb/*"\n').expected).toMatch(/"models\/props\/box\.glb\/\*": a directory it searches cannot be read \(.*box\.glb: ENOTDIR/);
  });

  it("a directory named without a wildcard says how to take its files", () => {
    expect(problem('    items_glob: "models/props"\n').expected).toMatch(/"models\/props" is a directory .*write "models\/props\/\*\*" to take every file in it/);
  });

  it("a file outside items_root (by default the spec's directory) is refused, naming items_root", () => {
    const outside = tempDir("hpcpipe-item-outside-");
    try {
      writeFileSync(join(outside.dir, "far.glb"), "far");
      const err = problem("    items_file: list.txt\n    stage_items: true\n", { "list.txt": `${join(outside.dir, "far.glb")}\n` });
      expect(err.expected).toMatch(/list\.txt line 1: .*far\.glb is outside items_root \(.*\); .*set items_root to a directory that holds them all/);
      const err2 = problem('    items_glob: "models/**/*.glb"\n    items_root: models/car\n');
      expect(err2.expected).toMatch(/box\.glb is outside items_root \(.*models\/car\)/);
    } finally {
      outside.cleanup();
    }
  });

  it("items_root must be an existing directory", () => {
    const err = problem('    items_glob: "models/**/*.glb"\n    items_root: models/props/box.glb\n');
    expect(err.path).toBe("steps[0].items_root");
    expect(err.expected).toMatch(/expected an existing directory .*box\.glb is not one/);
  });

  it("a path that is not a regular file (a FIFO) is refused", () => {
    execFileSync("mkfifo", [join(dir, "models/pipe.glb")]);
    expect(problem("    items: [models/pipe.glb]\n    stage_items: true\n").expected).toMatch(/"models\/pipe\.glb" is not a regular file/);
    // A glob takes regular files only: the FIFO is not matched.
    expect(problem('    items_glob: "models/*.glb"\n').expected).toMatch(/"models\/\*\.glb" matches no file/);
  });

  it("the staging fields are refused where they mean nothing", () => {
    expect(problem('    items_glob: "models/**/*.glb"\n    stage_items: true\n').message).toMatch(/steps\[0\]\.stage_items: items_glob always stages the files it matches; remove stage_items/);
    expect(problem('    items: [a]\n    stage_with: "models/**"\n').message).toMatch(/steps\[0\]\.stage_with: stage_with applies to items that are local files: add items_glob, or stage_items: true/);
    expect(problem("    items: [a]\n    stage_items: false\n    items_root: models\n").message).toMatch(/steps\[0\]\.items_root: items_root applies to items that are local files/);
    expect(problem("    items_glob: []\n").message).toMatch(/steps\[0\]\.items_glob: .*at least one pattern/);
    expect(problem('    items_glob: ""\n').message).toMatch(/steps\[0\]\.items_glob: .*non-empty path/);
  });

  it("two maps of one name that both stage files are refused (their files would share inputs/<map>/)", () => {
    const yaml = `name: t\nsteps:\n  - map: m\n    items_glob: "models/**/*.glb"\n${MAP_STEPS}  - pipeline: p\n    steps:\n      - map: m\n        items_glob: "models/**/*.gltf"\n        steps:\n          - step: s\n            run: x\n`;
    try {
      loadSpec(write(yaml));
      throw new Error("loaded");
    } catch (err) {
      expect((err as SpecError).message).toMatch(/steps\[1\]\.steps\[0\]\.map: another map named 'm' \(steps\[0\]\) stages files too/);
    }
  });
});

describe("expandGlob", () => {
  it("wildcards skip names starting with a dot (a local run's .hpcpipe/ copies, .git/); a dot directory named literally is searched", () => {
    mkdirSync(join(dir, ".hpcpipe/runs/t/r1/work/inputs/models/models/props"), { recursive: true });
    writeFileSync(join(dir, ".hpcpipe/runs/t/r1/work/inputs/models/models/props/box.glb"), "old copy");
    writeFileSync(join(dir, "models/props/.hidden.glb"), "hidden");
    const found = expandGlob("**/*.glb", dir);
    expect("files" in found && found.files.map((f) => f.slice(dir.length + 1))).toEqual(["models/props/box.glb", "models/props/deep/cone.glb"]);
    const literal = expandGlob(".hpcpipe/runs/**/*.glb", dir);
    expect("files" in literal && literal.files).toHaveLength(1);
  });

  it("does not follow a symlinked directory, but takes a symlinked file", () => {
    symlinkSync(join(dir, "models/props"), join(dir, "models/linked"));
    symlinkSync(join(dir, "models/props/box.glb"), join(dir, "models/alias.glb"));
    const found = expandGlob("models/**/*.glb", dir);
    expect("files" in found && found.files.map((f) => f.slice(dir.length + 1))).toEqual(["models/alias.glb", "models/props/box.glb", "models/props/deep/cone.glb"]);
  });
});

describe("laying out staged item files for a local run", () => {
  it("copies each file to work/inputs/<map>/<layout>, read-only, beside the bundle; again over an earlier layout", async () => {
    const loaded = load('    items_glob: "models/**/*.gltf"\n    stage_with: "models/car/**"\n');
    const work = join(dir, "run", "work");
    await copyBundle(loaded.specDir, [], work, loaded.inputs);
    await copyBundle(loaded.specDir, [], work, loaded.inputs); // a resumed run lays out again over the read-only files
    expect(readFileSync(join(work, "inputs/models/models/car/textures/paint.png"), "utf8")).toBe("png-bytes");
    expect(statSync(join(work, "inputs/models/models/car/car.gltf")).mode & 0o777).toBe(0o444);
    // A copy, not a link: the user's file is not the run's.
    expect(statSync(join(work, "inputs/models/models/car/car.bin")).ino).not.toBe(statSync(join(dir, "models/car/car.bin")).ino);
  });

  it("a file changed after the spec was loaded is refused, naming it", async () => {
    const loaded = load('    items_glob: "models/**/*.glb"\n');
    writeFileSync(join(dir, "models/props/box.glb"), "changed");
    await expect(copyBundle(loaded.specDir, [], join(dir, "run", "work"), loaded.inputs)).rejects.toThrow(/box\.glb changed since the spec was loaded/);
  });

  it("a bundle file at an item file's path with other contents is refused", () => {
    const item = { abs: "/a/x.glb", rel: "work/inputs/m/x.glb", size: 1, sha256: sha("x") };
    expect(withInputs([{ ...item, abs: "/b/x.glb" }], [item])).toHaveLength(1);
    expect(() => withInputs([{ ...item, abs: "/b/x.glb", sha256: sha("y") }], [item])).toThrow(/bundle file \/b\/x\.glb and map item file \/a\/x\.glb would both be work\/inputs\/m\/x\.glb/);
  });
});

describe("resume", () => {
  it("refuses a run whose item files changed (same paths, other contents)", () => {
    const base = { pipeline: "t", context: {}, items: { "t.m": ["inputs/m/a.glb"] } };
    expect(() => checkSameInputs("r1", { ...base, itemHashes: { "t.m": [sha("a")] } }, { ...base, itemHashes: { "t.m": [sha("a")] } })).not.toThrow();
    expect(() => checkSameInputs("r1", { ...base, itemHashes: { "t.m": [sha("a")] } }, { ...base, itemHashes: { "t.m": [sha("b")] } })).toThrow(ResumeError);
    expect(() => checkSameInputs("r1", { ...base, itemHashes: { "t.m": [sha("a")] } }, { ...base, itemHashes: { "t.m": [sha("b")] } })).toThrow(/item files changed/);
  });
});

describe("hpcpipe plan", () => {
  it("says how many item files a run stages and for which maps; a bad path exits 65 naming the line", async () => {
    const file = write(`name: t\nsteps:\n  - map: models\n    items_glob: "models/**/*.gltf"\n    stage_with: "models/car/**"\n${MAP_STEPS}`);
    const r = await cli("plan", file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/staged item files: 3 file\(s\), \d+ B, under work\/inputs\/ for map items of t\.models \(1\)\n$/);
    writeFileSync(join(dir, "list.txt"), "models/car/car.gltf\nmodels/car/gone.gltf\n");
    const bad = await cli("plan", write(`name: t\nsteps:\n  - map: models\n    items_file: list.txt\n    stage_items: true\n${MAP_STEPS}`));
    expect(bad.code).toBe(65);
    expect(bad.stderr).toMatch(/steps\[0\]\.items_file: list\.txt line 2: item file "models\/car\/gone\.gltf" does not exist/);
  });
});

describe("in code", () => {
  it("resolveItemFiles gives a MapStep its items and hashes, and a pipeline built in code its inputs: it runs locally on the staged copies", async () => {
    const resolved = resolveItemFiles({ map: "m", glob: ["models/**/*.glb"], root: dir, specDir: dir });
    if (!("value" in resolved)) throw new Error(JSON.stringify(resolved.problems));
    const { items, hashes, files } = resolved.value;
    const map = new MapStepClass({
      name: "m",
      items,
      itemHashes: hashes,
      steps: [new CommandStep({ name: "s", command: 'mkdir -p seen && sha256sum < "$item" | cut -c1-64 > "seen/$(basename "$item")"', requires: ["item"] })],
    });
    const prepared = preparePlan({ spec: { pipeline: new Pipeline({ name: "p", steps: [map] }), inputs: files, baseDir: dir }, runId: "20260101-000000-bbbbbb", localRunsDir: join(dir, "runs") });
    expect(prepared.plan.itemHashes).toEqual({ "p.m": [sha("box-bytes"), sha("cone-bytes")] });
    const outcome = await runLocal(prepared);
    expect(outcome.state.success).toBe(true);
    expect(readFileSync(join(outcome.runDir, "work/seen/cone.glb"), "utf8").trim()).toBe(sha("cone-bytes"));
    expect(() => new MapStepClass({ name: "m", items, itemHashes: [hashes[0] as string], steps: [] })).toThrow(/one SHA-256 per item \(2\)/);
  });
});

function prepared0Items(yaml: string): string[] {
  return mapOf(loadSpec(write(yaml))).items as string[];
}

describe("step cache keys", () => {
  it("an edited item file changes only its own item's keys; an edited stage_with file changes every key", () => {
    const yaml = `name: t\nsteps:\n  - map: models\n    items_glob: "models/**/*.glb"\n    stage_with: "models/car/*.bin"\n${MAP_STEPS.replace("run: ", "requires: [item]\n        run: ")}`;
    const keysNow = (): ReadonlyMap<string, string | null> => {
      const prepared = preparePlan({ spec: write(yaml), runId: "20260101-000000-cccccc", localRunsDir: join(dir, "runs") });
      const staged = cacheKeyFiles(prepared.loaded.inputs, prepared.plan);
      // The items' own files are left to plan.itemHashes; the .bin stays with the bundle's files.
      expect(staged.map((f) => f.rel)).toEqual(["work/inputs/models/models/car/car.bin"]);
      const bundle = staged.map((f) => ({ path: f.rel.slice("work/".length), sha256: f.sha256 }));
      return cacheKeys({ plan: prepared.plan, bundle, modules: [], setup: [], ...(prepared.plan.itemHashes ? { itemHashes: prepared.plan.itemHashes } : {}) }).keys;
    };
    const before = keysNow();
    expect([...before.keys()]).toEqual(["t.models.0.s", "t.models.1.s"]);
    writeFileSync(join(dir, "models/props/deep/cone.glb"), "cone, edited");
    const after = keysNow();
    expect(after.get("t.models.0.s")).toBe(before.get("t.models.0.s"));
    expect(after.get("t.models.1.s")).not.toBe(before.get("t.models.1.s"));
    writeFileSync(join(dir, "models/car/car.bin"), "bin, edited");
    const sibling = keysNow();
    expect(sibling.get("t.models.0.s")).not.toBe(after.get("t.models.0.s"));
    expect(sibling.get("t.models.1.s")).not.toBe(after.get("t.models.1.s"));
  });

  it("a stage_with file a step declares in its inputs ({item_stem}.bin) changes only its item's key", () => {
    const yaml = `name: t\nsteps:\n  - map: models\n    items_glob: ["models/**/*.glb", "models/**/*.gltf"]\n    stage_with: "models/car/*.bin"\n${MAP_STEPS.replace("run: ", 'requires: [item]\n        inputs: ["{item_stem}.bin"]\n        run: ')}`;
    const keysNow = (): ReadonlyMap<string, string | null> => {
      const prepared = preparePlan({ spec: write(yaml), runId: "20260101-000000-cccccc", localRunsDir: join(dir, "runs") });
      const bundle = cacheKeyFiles(prepared.loaded.inputs, prepared.plan).map((f) => ({ path: f.rel.slice("work/".length), sha256: f.sha256 }));
      return cacheKeys({ plan: prepared.plan, bundle, modules: [], setup: [], ...(prepared.plan.itemHashes ? { itemHashes: prepared.plan.itemHashes } : {}) }).keys;
    };
    const before = keysNow();
    expect(prepared0Items(yaml)).toEqual(["inputs/models/models/car/car.gltf", "inputs/models/models/props/box.glb", "inputs/models/models/props/deep/cone.glb"]);
    writeFileSync(join(dir, "models/car/car.bin"), "bin, edited");
    const after = keysNow();
    expect(after.get("t.models.0.s")).not.toBe(before.get("t.models.0.s"));
    expect(after.get("t.models.1.s")).toBe(before.get("t.models.1.s"));
    expect(after.get("t.models.2.s")).toBe(before.get("t.models.2.s"));
  });
});
