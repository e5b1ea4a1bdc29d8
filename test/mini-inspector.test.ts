import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { inflateSync } from "node:zlib";
import { Document, NodeIO } from "@gltf-transform/core";
import { Command } from "commander";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CompletedState, ExitCode } from "../src/index.js";
import type { Context, Logger, PlannedStep } from "../src/index.js";
import { registerInspectCommand } from "../examples/mini-inspector/command.js";
import type { MeshInstance } from "../examples/mini-inspector/context.js";
import { triangleCount } from "../examples/mini-inspector/geometry.js";
import { checkGlb, GlbFormatError } from "../examples/mini-inspector/glb-check.js";
import {
  buildMiniInspector,
  defaultOutPath,
  resolveStepNames,
  runMiniInspector,
  STEP_NAMES,
  UnknownStepError,
} from "../examples/mini-inspector/inspector.js";
import { buildModels, makeModels, MODEL_FILES, sha256 } from "../examples/mini-inspector/make-models.js";
import { crc32 } from "../examples/mini-inspector/png.js";
import { REPORT_SCHEMA } from "../examples/mini-inspector/report.js";
import type { InspectionReport } from "../examples/mini-inspector/report.js";
import { CollectMeshesStep } from "../examples/mini-inspector/steps/collect-meshes.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const FIXTURES = join(ROOT, "test/fixtures/models");
const EXAMPLE_MODELS = join(ROOT, "examples/mini-inspector/models");
const model = (file: string): string => join(FIXTURES, file);

const E2E = "mini_inspector_e2e";
const LEAF_KEYS = [
  `${E2E}.scene_prep.prepare_scene`,
  `${E2E}.scene_prep.import_model`,
  `${E2E}.analysis.collect_meshes`,
  `${E2E}.analysis.compute_counts`,
  `${E2E}.reporting.assemble_report`,
  `${E2E}.reporting.write_json`,
  `${E2E}.cleanup.cleanup_scene`,
];
const STAGE_KEYS = [`${E2E}.scene_prep`, `${E2E}.analysis`, `${E2E}.reporting`, `${E2E}.cleanup`];

let tmp: string;
let dirCount = 0;
/** A fresh, empty directory for one test. */
async function freshDir(label: string): Promise<string> {
  const dir = join(tmp, `${label}-${++dirCount}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mini-inspector-test-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A pino logger that keeps its JSON lines in memory. */
function memoryLogger(): { logger: Logger; events: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), events: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function readReport(path: string): Promise<InspectionReport> {
  return JSON.parse(await readFile(path, "utf8")) as InspectionReport;
}

describe("make-models: the fixture generator", () => {
  it("produces byte-identical files on every run", async () => {
    const first = await buildModels();
    const second = await buildModels();
    expect([...first.keys()]).toEqual([...MODEL_FILES]);
    for (const file of MODEL_FILES) expect(sha256(second.get(file) as Uint8Array), file).toBe(sha256(first.get(file) as Uint8Array));

    const [a, b] = [await freshDir("gen-a"), await freshDir("gen-b")];
    await makeModels(a);
    await makeModels(b);
    for (const file of MODEL_FILES) expect(await readFile(join(b, file)), file).toEqual(await readFile(join(a, file)));
  });

  it("matches the committed models in test/fixtures/models and examples/mini-inspector/models", async () => {
    const fresh = await buildModels();
    const regenerate =
      "regenerate with: npm run build && node dist/examples/mini-inspector/make-models.js examples/mini-inspector/models test/fixtures/models";
    for (const dir of [FIXTURES, EXAMPLE_MODELS]) {
      for (const file of MODEL_FILES) {
        const committed = await readFile(join(dir, file));
        expect(sha256(committed), `${dir}/${file} is stale; ${regenerate}`).toBe(sha256(fresh.get(file) as Uint8Array));
      }
    }
  });

  it("embeds a valid 4x4 RGB PNG (correct chunk CRCs, inflatable image data) in scene.glb", async () => {
    expect(crc32(new TextEncoder().encode("IEND"))).toBe(0xae426082); // the well-known CRC of an IEND chunk
    const doc = await new NodeIO().read(model("scene.glb"));
    const [texture] = doc.getRoot().listTextures();
    const png = texture?.getImage();
    if (!texture || !png) throw new Error("scene.glb has no texture image");
    expect(texture.getMimeType()).toBe("image/png");
    expect(texture.getSize()).toEqual([4, 4]);

    const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
    const types: string[] = [];
    const idat: Uint8Array[] = [];
    for (let at = 8; at < png.length; ) {
      const length = view.getUint32(at);
      const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
      expect(view.getUint32(at + 8 + length), `CRC of ${type}`).toBe(crc32(png.subarray(at + 4, at + 8 + length)));
      if (type === "IDAT") idat.push(png.subarray(at + 8, at + 8 + length));
      types.push(type);
      at += 12 + length;
    }
    expect(types).toEqual(["IHDR", "IDAT", "IEND"]);
    const raw = inflateSync(Buffer.concat(idat));
    expect(raw.length).toBe(4 * (1 + 4 * 3)); // 4 rows, each a filter byte and 4 RGB pixels
    expect([...raw.subarray(0, 7)]).toEqual([0, 230, 230, 230, 40, 40, 40]);
  });
});

describe("geometry and container checks", () => {
  it("counts triangles per primitive mode; points and lines make none", () => {
    expect(triangleCount("TRIANGLES", 36)).toBe(12);
    expect(triangleCount("TRIANGLES", 7)).toBe(2); // a trailing partial triangle draws nothing
    expect(triangleCount("TRIANGLE_STRIP", 4)).toBe(2);
    expect(triangleCount("TRIANGLE_STRIP", 2)).toBe(0);
    expect(triangleCount("TRIANGLE_FAN", 8)).toBe(6);
    expect(triangleCount("TRIANGLE_FAN", 0)).toBe(0);
    for (const mode of ["POINTS", "LINES", "LINE_LOOP", "LINE_STRIP"] as const) expect(triangleCount(mode, 12)).toBe(0);
  });

  it("rejects truncated, foreign and malformed GLB containers with a precise reason", async () => {
    const cube = new Uint8Array(await readFile(model("cube.glb")));
    expect(checkGlb(cube).binLength).toBeGreaterThan(0);
    expect(() => checkGlb(cube.subarray(0, 8))).toThrow(/shorter than the 12-byte GLB header/);
    expect(() => checkGlb(cube.subarray(0, 100))).toThrow(/truncated: the header declares 1876 bytes but the file has 100/);
    expect(() => checkGlb(new TextEncoder().encode('{"asset":{"version":"2.0"}}'))).toThrow(/not a GLB file/);
    const v1 = cube.slice();
    v1[4] = 1;
    expect(() => checkGlb(v1)).toThrow(/GLB version 1/);
    const badChunk = cube.slice();
    new DataView(badChunk.buffer).setUint32(12, 4000, true); // JSON chunk longer than the file
    expect(() => checkGlb(badChunk)).toThrow(GlbFormatError);
  });

  it("computes world matrices that agree with glTF-Transform's own Node.getWorldMatrix", async () => {
    const doc = new Document();
    const mesh = doc.createMesh("m");
    const leaf = doc.createNode("leaf").setMesh(mesh).setTranslation([0.3, -2, 7]).setRotation([0.1, 0.7, -0.1, 0.7]).setScale([1, 2, 0.5]);
    const mid = doc.createNode("mid").setTranslation([-1, 4, 2]).setRotation([0.5, 0.5, 0.5, 0.5]).setScale([3, 3, 3]).addChild(leaf);
    const top = doc.createNode("top").setTranslation([10, 0, -3]).setRotation([0, 0, 0.3826834, 0.9238795]).addChild(mid);
    doc.createScene("s").addChild(top);
    const context: Context = { document: doc };
    const state = await new CollectMeshesStep().run(context);
    expect(state.success).toBe(true);
    const [instance] = context.mesh_instances as MeshInstance[];
    const expected = leaf.getWorldMatrix();
    expect(instance?.node).toBe("leaf");
    instance?.world_matrix.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 10));
  });
});

describe("inspecting the fixtures end to end", () => {
  it("cube.glb: 1 mesh, 1 primitive, 24 vertices, 12 triangles, 1 material; bounds of a 2-unit cube raised by 1", async () => {
    const out = join(await freshDir("cube"), "cube.json");
    const result = await runMiniInspector({ model: model("cube.glb"), out });
    expect(result.exitCode).toBe(ExitCode.OK);
    expect(result.state.success).toBe(true);
    const report = result.report as InspectionReport;
    expect(report.schema).toBe(REPORT_SCHEMA);
    expect(report.model).toEqual({ path: model("cube.glb"), file: "cube.glb", format: "glb", size_bytes: 1876 });
    expect(report.asset).toMatchObject({ version: "2.0", generator: "hpcpipe mini-inspector make-models 1", extensions_used: [] });
    expect(report.counts).toEqual({
      scenes: 1,
      nodes: 1,
      meshes: 1,
      mesh_instances: 1,
      primitives: 1,
      vertices: 24,
      triangles: 12,
      materials: 1,
      textures: 0,
      animations: 0,
    });
    expect(report.bounds).toEqual({ min: [-1, 0, -1], max: [1, 2, 1], size: [2, 2, 2], center: [0, 1, 0] });
    expect(report.meshes).toEqual([
      {
        name: "cube",
        primitives: [
          { mode: "TRIANGLES", indexed: true, vertices: 24, elements: 36, triangles: 12, material: "red", attributes: ["NORMAL", "POSITION", "TEXCOORD_0"] },
        ],
        vertices: 24,
        triangles: 12,
        instances: 1,
      },
    ]);
    expect(report.materials).toEqual([
      { name: "red", base_color_factor: [0.8, 0.1, 0.1, 1], base_color_texture: null, metallic_factor: 0, roughness_factor: 0.5, alpha_mode: "OPAQUE", double_sided: false },
    ]);
    // The file on disk is the same report, and its path is returned.
    expect(result.reportPath).toBe(out);
    expect(await readReport(out)).toEqual(report);
  });

  it("scene.glb: hierarchy, a mesh drawn twice, strip/fan/lines/points, 2 materials, a texture; exact world bounds", async () => {
    const result = await runMiniInspector({ model: model("scene.glb"), out: join(await freshDir("scene"), "scene.json") });
    expect(result.exitCode).toBe(ExitCode.OK);
    const report = result.report as InspectionReport;
    // vertices: ground 4 + box 24 (counted once though drawn twice) + fan 8 + line 2 + point 1
    // triangles: strip 4-2=2 + box 12 + fan 8-2=6 + lines 0 + points 0
    expect(report.counts).toEqual({
      scenes: 1,
      nodes: 6,
      meshes: 3,
      mesh_instances: 4,
      primitives: 5,
      vertices: 39,
      triangles: 20,
      materials: 2,
      textures: 1,
      animations: 0,
    });
    const summary = report.meshes.map((m) => ({
      name: m.name,
      instances: m.instances,
      prims: m.primitives.map((p) => [p.mode, p.indexed, p.vertices, p.triangles, p.material]),
    }));
    expect(summary).toEqual([
      { name: "ground", instances: 1, prims: [["TRIANGLE_STRIP", true, 4, 2, "ground"]] },
      { name: "box", instances: 2, prims: [["TRIANGLES", true, 24, 12, "paint"]] },
      {
        name: "marker",
        instances: 1,
        prims: [
          ["TRIANGLE_FAN", false, 8, 6, "paint"],
          ["LINES", false, 2, 0, null],
          ["POINTS", false, 1, 0, null],
        ],
      },
    ]);
    // Bounds, by hand: the ground spans x and z in [-5, 5] at y = 0; the point of the marker
    // (props z=-5, marker y=3, point y=2.5) sets max y = 5.5; box_b (props z=-5, 45 degrees about Y,
    // half-size 0.5) reaches z = -5 - 0.5 * sqrt(2), lower than an unrotated box would (-5.5).
    const b = report.bounds;
    if (b === null) throw new Error("scene.glb should have bounds");
    expect(b.min[0]).toBeCloseTo(-5, 6);
    expect(b.min[1]).toBeCloseTo(0, 6);
    expect(b.min[2]).toBeCloseTo(-5 - Math.SQRT1_2, 6);
    expect(b.max[0]).toBeCloseTo(5, 6);
    expect(b.max[1]).toBeCloseTo(5.5, 6);
    expect(b.max[2]).toBeCloseTo(5, 6);
    expect(b.size[2]).toBeCloseTo(10 + Math.SQRT1_2, 6);
    expect(report.materials.map((m) => [m.name, m.base_color_texture])).toEqual([
      ["ground", "checker"],
      ["paint", null],
    ]);
    expect(report.textures).toEqual([{ name: "checker", mime_type: "image/png", width: 4, height: 4, size_bytes: expect.any(Number) }]);
  });

  it("animated.gltf (+ external .bin): counts, rest-pose bounds through the parent node, translation and rotation channels", async () => {
    const result = await runMiniInspector({ model: model("animated.gltf"), out: join(await freshDir("anim"), "a.json") });
    expect(result.exitCode).toBe(ExitCode.OK);
    const report = result.report as InspectionReport;
    expect(report.model.format).toBe("gltf");
    expect(report.counts).toEqual({
      scenes: 1,
      nodes: 2,
      meshes: 1,
      mesh_instances: 1,
      primitives: 1,
      vertices: 4,
      triangles: 2,
      materials: 1,
      textures: 0,
      animations: 1,
    });
    // a unit quad around the origin, under spinner (y+1) under pivot (x+1)
    expect(report.bounds).toEqual({ min: [0.5, 0.5, 0], max: [1.5, 1.5, 0], size: [1, 1, 0], center: [1, 1, 0] });
    expect(report.animations).toEqual([
      {
        name: "spin_and_bob",
        channels: [
          { node: "spinner", path: "translation", interpolation: "LINEAR", keyframes: 3 },
          { node: "spinner", path: "rotation", interpolation: "LINEAR", keyframes: 3 },
        ],
        samplers: 2,
        duration_s: 2,
      },
    ]);
  });

  it("empty-scene.glb: a valid model without geometry succeeds with zero counts and no bounds", async () => {
    const result = await runMiniInspector({ model: model("empty-scene.glb"), out: join(await freshDir("empty"), "e.json") });
    expect(result.exitCode).toBe(ExitCode.OK);
    const report = result.report as InspectionReport;
    expect(report.counts).toMatchObject({ scenes: 1, nodes: 1, meshes: 0, primitives: 0, vertices: 0, triangles: 0 });
    expect(report.bounds).toBeNull();
  });

  it("records every step under its dot-namespaced key, in order, all successful", async () => {
    const result = await runMiniInspector({ model: model("cube.glb"), out: join(await freshDir("keys"), "c.json") });
    const states = result.state.step_states ?? {};
    expect(Object.keys(states).filter((k) => LEAF_KEYS.includes(k))).toEqual(LEAF_KEYS);
    expect(Object.keys(states).sort()).toEqual([...LEAF_KEYS, ...STAGE_KEYS].sort());
    for (const [key, state] of Object.entries(states)) {
      expect(state.success, key).toBe(true);
      expect(state.failure, key).toBeNull();
    }
    expect(states[`${E2E}.scene_prep.prepare_scene`]?.provides).toEqual(["scene"]);
    expect(states[`${E2E}.analysis.compute_counts`]?.outputs).toMatchObject({ vertices: 24, triangles: 12 });
    expect(states[`${E2E}.reporting.write_json`]?.outputs).toEqual({ report_path: result.reportPath });
  });

  it("cleanup_scene disposes of the document and removes working state, keeping the results", async () => {
    const context: Context = { model_path: model("cube.glb"), out_path: join(await freshDir("cleanup"), "c.json") };
    const state = await buildMiniInspector().run(context);
    expect(state.success).toBe(true);
    for (const key of ["document", "asset", "scene", "meshes", "mesh_instances"]) expect(context, key).not.toHaveProperty(key);
    for (const key of ["counts", "bounds", "report", "report_path"]) expect(context, key).toHaveProperty(key);
    expect(state.step_states?.[`${E2E}.cleanup.cleanup_scene`]?.outputs).toEqual({
      released: ["document", "asset", "scene", "meshes", "mesh_instances"],
    });
  });

  it("writes the same report bytes on every run (no timestamps or absolute paths in it)", async () => {
    const dir = await freshDir("repeat");
    await runMiniInspector({ model: "test/fixtures/models/scene.glb", out: join(dir, "a.json") });
    await runMiniInspector({ model: "test/fixtures/models/scene.glb", out: join(dir, "b.json") });
    expect(await readFile(join(dir, "b.json"), "utf8")).toBe(await readFile(join(dir, "a.json"), "utf8"));
  });

  it("logs start and success of every step to the given logger", async () => {
    const { logger, events } = memoryLogger();
    await runMiniInspector({ model: model("cube.glb"), out: join(await freshDir("log"), "c.json"), logger });
    const started = events().filter((e) => e.msg === "step start").map((e) => e.step);
    expect(started).toEqual([E2E, STAGE_KEYS[0], LEAF_KEYS[0], LEAF_KEYS[1], STAGE_KEYS[1], LEAF_KEYS[2], LEAF_KEYS[3], STAGE_KEYS[2], LEAF_KEYS[4], LEAF_KEYS[5], STAGE_KEYS[3], LEAF_KEYS[6]]);
    expect(events().filter((e) => e.msg === "step succeeded")).toHaveLength(12);
  });
});

describe("bad inputs fail clearly and write nothing", () => {
  it("broken.glb: STEP_FAILED at import_model, exit 4, the error names the file, no report and no temp file", async () => {
    const dir = await freshDir("broken");
    const out = join(dir, "broken.json");
    const result = await runMiniInspector({ model: model("broken.glb"), out });
    expect(result.state.success).toBe(false);
    expect(result.state.failure).toBe("STEP_FAILED");
    expect(result.exitCode).toBe(ExitCode.STEP_FAILED);
    expect(result.state.meta.failed_step).toBe(`${E2E}.scene_prep.import_model`);
    const leaf = result.state.step_states?.[`${E2E}.scene_prep.import_model`];
    expect(leaf?.error).toBe(`${model("broken.glb")}: cannot read the glTF binary: not a valid GLB: truncated: the header declares 1876 bytes but the file has 936`);
    // nothing after the failure ran
    expect(Object.keys(result.state.step_states ?? {})).toEqual([`${E2E}.scene_prep.prepare_scene`, `${E2E}.scene_prep.import_model`, `${E2E}.scene_prep`]);
    expect(result.report).toBeUndefined();
    expect(result.reportPath).toBeUndefined();
    expect(await readdir(dir)).toEqual([]); // no report, no pipeline_* temp file
  });

  it("leaves an existing report at the out path untouched when the model is broken", async () => {
    const out = join(await freshDir("keep"), "report.json");
    await writeFile(out, '{"previous":true}\n');
    const result = await runMiniInspector({ model: model("broken.glb"), out });
    expect(result.exitCode).toBe(ExitCode.STEP_FAILED);
    expect(await readFile(out, "utf8")).toBe('{"previous":true}\n');
  });

  it.each([
    ["a missing file", "nope.glb", "prepare_scene", /nope\.glb: cannot open: ENOENT/],
    ["a non-glTF file name", "model.obj", "prepare_scene", /model\.obj: not a glTF file name \(expected \.glb or \.gltf, got '\.obj'\)/],
    ["an empty file", "empty.glb", "prepare_scene", /empty\.glb: the file is empty/],
    ["a .glb holding JSON text", "json-inside.glb", "import_model", /json-inside\.glb: cannot read the glTF binary: not a valid GLB: not a GLB file/],
    ["a GLB whose JSON chunk is not JSON", "bad-json.glb", "import_model", /bad-json\.glb: cannot read the glTF binary: .*JSON/],
    ["a .gltf whose .bin is missing", "lonely.gltf", "import_model", /lonely\.gltf: cannot read the glTF file: .*ENOENT.*animated\.bin/],
  ])("%s (%s) fails with STEP_FAILED at %s, naming the file", async (_what, file, step, message) => {
    const dir = await freshDir("bad");
    await writeFile(join(dir, "model.obj"), "o cube\n");
    await writeFile(join(dir, "empty.glb"), "");
    await writeFile(join(dir, "json-inside.glb"), '{"asset":{"version":"2.0"}}');
    const json = new TextEncoder().encode("{not json}  ");
    const glb = new Uint8Array(20 + json.length);
    const view = new DataView(glb.buffer);
    view.setUint32(0, 0x46546c67, true);
    view.setUint32(4, 2, true);
    view.setUint32(8, glb.length, true);
    view.setUint32(12, json.length, true);
    view.setUint32(16, 0x4e4f534a, true);
    glb.set(json, 20);
    await writeFile(join(dir, "bad-json.glb"), glb);
    await copyFile(model("animated.gltf"), join(dir, "lonely.gltf"));

    const outDir = join(dir, "out");
    const result = await runMiniInspector({ model: join(dir, file), out: join(outDir, "r.json") });
    expect(result.exitCode).toBe(ExitCode.STEP_FAILED);
    expect(result.state.meta.failed_step).toMatch(new RegExp(`\\.${step}$`));
    expect(result.state.error).toMatch(message);
    expect(existsSync(outDir)).toBe(false);
  });

  it("an empty model path or out path is a STEP_FAILED, not an exception", async () => {
    const noModel = await runMiniInspector({ model: "", out: join(await freshDir("empty-arg"), "r.json") });
    expect(noModel.exitCode).toBe(ExitCode.STEP_FAILED);
    expect(noModel.state.error).toContain(`model_path must be a path to a .glb or .gltf file, got ""`);
    const noOut = await runMiniInspector({ model: model("cube.glb"), out: " " });
    expect(noOut.exitCode).toBe(ExitCode.STEP_FAILED);
    expect(noOut.state.meta.failed_step).toBe(`${E2E}.reporting.write_json`);
  });

  it("an unwritable out path (an existing directory) fails at write_json with no temp file left behind", async () => {
    const dir = await freshDir("unwritable");
    const out = join(dir, "taken");
    await mkdir(out);
    const result = await runMiniInspector({ model: model("cube.glb"), out });
    expect(result.exitCode).toBe(ExitCode.STEP_FAILED);
    expect(result.state.meta.failed_step).toBe(`${E2E}.reporting.write_json`);
    expect(result.state.error).toContain(`${out}: cannot write the report`);
    expect(await readdir(dir)).toEqual(["taken"]);
    expect(await readdir(out)).toEqual([]);
  });
});

describe("--steps subsets", () => {
  it("resolves names to canonical order without duplicates", () => {
    expect(resolveStepNames(["write_json", "prepare_scene", "prepare_scene", " import_model "])).toEqual([
      "prepare_scene",
      "import_model",
      "write_json",
    ]);
    expect(resolveStepNames()).toEqual([...STEP_NAMES]);
  });

  it("rejects unknown names, and an empty list, with an error listing the valid names", () => {
    expect(() => resolveStepNames(["prepare_scene", "render"])).toThrow(UnknownStepError);
    expect(() => resolveStepNames(["render"])).toThrow(`unknown step 'render' (valid steps: ${STEP_NAMES.join(", ")})`);
    expect(() => resolveStepNames(["", " "])).toThrow(/no step names given \(valid steps: prepare_scene/);
    expect(() => buildMiniInspector(["bogus"])).toThrow(UnknownStepError);
  });

  it("builds the four stages with honest, inferred contracts", () => {
    const pipeline = buildMiniInspector();
    expect(pipeline.name).toBe(E2E);
    expect(pipeline.steps.map((s) => [s.name, s.children.map((c) => c.name)])).toEqual([
      ["scene_prep", ["prepare_scene", "import_model"]],
      ["analysis", ["collect_meshes", "compute_counts"]],
      ["reporting", ["assemble_report", "write_json"]],
      ["cleanup", ["cleanup_scene"]],
    ]);
    expect([...pipeline.requires].sort()).toEqual(["model_path", "out_path"]);
    expect(pipeline.provides).toContain("report_path");
  });

  it("runs only the named steps, keeping their namespaced keys, and writes nothing without write_json", async () => {
    const dir = await freshDir("subset");
    const result = await runMiniInspector({
      model: model("scene.glb"),
      out: join(dir, "r.json"),
      steps: ["compute_counts", "import_model", "prepare_scene", "collect_meshes"],
    });
    expect(result.exitCode).toBe(ExitCode.OK);
    expect(Object.keys(result.state.step_states ?? {}).sort()).toEqual(
      [...LEAF_KEYS.slice(0, 4), `${E2E}.scene_prep`, `${E2E}.analysis`].sort(),
    );
    expect(result.state.step_states?.[`${E2E}.analysis.compute_counts`]?.outputs).toMatchObject({ triangles: 20 });
    expect(result.report).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it("a subset whose inputs nobody provides fails with MISSING_REQUIREMENT (exit 1), naming the step that needed them", async () => {
    const result = await runMiniInspector({ model: model("cube.glb"), out: join(await freshDir("missing"), "r.json"), steps: ["compute_counts"] });
    expect(result.state.failure).toBe("MISSING_REQUIREMENT");
    expect(result.exitCode).toBe(ExitCode.MISSING_REQUIREMENT);
    expect(result.state.error).toMatch(/'document'/);
    expect(result.state.meta.failed_step).toBe(`${E2E}.analysis.compute_counts`);
    expect(result.state.step_states?.[`${E2E}.analysis.compute_counts`]?.meta.missing).toEqual(["document", "meshes", "mesh_instances"]);
  });

  it("cleanup_scene alone needs nothing and succeeds", async () => {
    const result = await runMiniInspector({ model: model("cube.glb"), steps: ["cleanup_scene"] });
    expect(result.exitCode).toBe(ExitCode.OK);
    expect(result.state.step_states?.[`${E2E}.cleanup.cleanup_scene`]?.outputs).toEqual({ released: [] });
  });
});

describe("dry run", () => {
  it("runs nothing, writes nothing, and returns the plan of all twelve entries in order", async () => {
    const dir = await freshDir("dry");
    const { logger, events } = memoryLogger();
    const result = await runMiniInspector({ model: model("cube.glb"), out: join(dir, "r.json"), dryRun: true, logger });
    expect(result.exitCode).toBe(ExitCode.OK);
    expect(result.state.meta.dry_run).toBe(true);
    const plan = result.state.meta.plan as PlannedStep[];
    expect(plan.map((p) => p.key)).toEqual([
      E2E,
      STAGE_KEYS[0],
      LEAF_KEYS[0],
      LEAF_KEYS[1],
      STAGE_KEYS[1],
      LEAF_KEYS[2],
      LEAF_KEYS[3],
      STAGE_KEYS[2],
      LEAF_KEYS[4],
      LEAF_KEYS[5],
      STAGE_KEYS[3],
      LEAF_KEYS[6],
    ]);
    expect(plan.every((p) => p.action === "run" && p.missing.length === 0)).toBe(true);
    expect(result.report).toBeUndefined();
    expect(result.state.step_states ?? {}).toEqual({});
    expect(await readdir(dir)).toEqual([]);
    expect(events().some((e) => e.msg === "step start")).toBe(false);
    expect(events().filter((e) => e.msg === "dry-run plan")).toHaveLength(12);
  });

  it("a dry run of an unsatisfiable subset reports the missing keys as MISSING_REQUIREMENT", async () => {
    const result = await runMiniInspector({ model: model("cube.glb"), steps: ["write_json"], dryRun: true });
    expect(result.exitCode).toBe(ExitCode.MISSING_REQUIREMENT);
    const plan = result.state.meta.plan as PlannedStep[];
    expect(plan.find((p) => p.key === `${E2E}.reporting.write_json`)?.missing).toEqual(["report"]);
  });
});

describe("default report path", () => {
  it("is <model name>.report.json, relative to the current directory", () => {
    expect(defaultOutPath("models/cube.glb")).toBe("cube.report.json");
    expect(defaultOutPath("/x/Animated.GLTF")).toBe("Animated.report.json");
    expect(defaultOutPath("odd.name")).toBe("odd.name.report.json");
  });
});

describe("registerInspectCommand: the `inspect` subcommand", () => {
  const savedExitCode = process.exitCode;
  afterEach(() => {
    process.exitCode = savedExitCode;
  });

  async function runInspect(args: string[]): Promise<{ exitCode: unknown; stdout: string; stderr: string }> {
    let stdout = "";
    let stderr = "";
    const program = new Command("hpcpipe").exitOverride();
    registerInspectCommand(program, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
    process.exitCode = undefined;
    await program.parseAsync(["node", "hpcpipe", "inspect", ...args]);
    const exitCode = process.exitCode;
    process.exitCode = savedExitCode;
    return { exitCode, stdout, stderr };
  }

  it("inspects a model, prints the summary and sets exit code 0", async () => {
    const out = join(await freshDir("cmd"), "c.json");
    const r = await runInspect([model("cube.glb"), "--out", out, "--quiet"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/triangles\s+12/);
    expect(r.stdout).toContain(`report      ${out}`);
    expect(r.stderr).toBe("");
    expect((await readReport(out)).counts.triangles).toBe(12);
  });

  it("reports a broken model on stderr as `hpcpipe inspect: <file>: ...` and sets exit code 4", async () => {
    const r = await runInspect([model("broken.glb"), "--out", join(await freshDir("cmd"), "b.json"), "--quiet"]);
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toBe(
      `hpcpipe inspect: ${model("broken.glb")}: import_model failed (STEP_FAILED, exit 4): cannot read the glTF binary: ` +
        "not a valid GLB: truncated: the header declares 1876 bytes but the file has 936\n",
    );
  });

  it("throws a usage CliError (exit 64) for unknown --steps", async () => {
    await expect(runInspect([model("cube.glb"), "--steps", "nope"])).rejects.toMatchObject({ name: "CliError", exitCode: 64 });
  });
});

/**
 * The CLI is compiled on its own into a temp directory (not dist/), so the
 * test always runs the current sources and never races another build of
 * dist/. The layout matches dist/: <out>/examples/mini-inspector/main.js.
 */
async function buildCli(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mini-inspector-build-"));
  const config = {
    extends: join(ROOT, "tsconfig.build.json"),
    compilerOptions: {
      outDir: join(dir, "out"),
      rootDir: ROOT,
      typeRoots: [join(ROOT, "node_modules/@types")],
      declaration: false,
      sourceMap: false,
    },
    include: [],
    files: [join(ROOT, "examples/mini-inspector/main.ts"), join(ROOT, "examples/mini-inspector/make-models.ts")],
  };
  await writeFile(join(dir, "tsconfig.json"), JSON.stringify(config));
  const tsc = await run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")]);
  if (tsc.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`tsc failed:\n${tsc.stdout}${tsc.stderr}`);
  }
  await writeFile(join(dir, "out/package.json"), '{"type":"module"}\n');
  await symlink(join(ROOT, "node_modules"), join(dir, "out/node_modules"), "dir");
  return dir;
}

function run(file: string, args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(file, args, { cwd, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

describe("the built CLI, run as a child process", () => {
  let buildDir: string;
  let main: string;
  beforeAll(async () => {
    buildDir = await buildCli();
    main = join(buildDir, "out/examples/mini-inspector/main.js");
  });
  afterAll(async () => {
    if (buildDir) await rm(buildDir, { recursive: true, force: true });
  });

  it("inspects scene.glb: exit 0, a summary on stdout, the report on disk, JSON log lines on stderr", async () => {
    const out = join(await freshDir("cli"), "scene.json");
    const r = await run(process.execPath, [main, "test/fixtures/models/scene.glb", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/meshes\s+3\s+instances\s+4/);
    expect(r.stdout).toMatch(/bounds\s+min \(-5, 0, -5\.7071\)\s+max \(5, 5\.5, 5\)/);
    expect(r.stdout).toContain("result      ok, exit 0");
    const logged = r.stderr
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.filter((e) => e.msg === "step succeeded").map((e) => e.step)).toContain(`${E2E}.scene_prep.prepare_scene`);
    expect((await readReport(out)).counts.triangles).toBe(20);
  });

  it("--quiet logs nothing; without --out the report goes to ./<name>.report.json", async () => {
    const cwd = await freshDir("cli-cwd");
    const r = await run(process.execPath, [main, model("cube.glb"), "--quiet"], cwd);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(await readdir(cwd)).toEqual(["cube.report.json"]);
  });

  it("--json prints the CompletedState, which parses back", async () => {
    const r = await run(process.execPath, [main, model("animated.gltf"), "--out", join(await freshDir("cli"), "a.json"), "--json", "-q"]);
    expect(r.code).toBe(0);
    const state = CompletedState.fromJSON(JSON.parse(r.stdout));
    expect(state.success).toBe(true);
    expect(Object.keys(state.step_states ?? {})).toEqual(expect.arrayContaining(LEAF_KEYS));
  });

  it("broken.glb: exit 4, the file named on stderr, no report and no temp file", async () => {
    const dir = await freshDir("cli-broken");
    const r = await run(process.execPath, [main, model("broken.glb"), "--out", join(dir, "b.json"), "-q"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`mini-inspector: ${model("broken.glb")}: import_model failed (STEP_FAILED, exit 4)`);
    expect(r.stdout).toContain("result      failed (STEP_FAILED), exit 4");
    expect(await readdir(dir)).toEqual([]);
  });

  it("--dry-run: exit 0, the plan on stdout, nothing written", async () => {
    const dir = await freshDir("cli-dry");
    const r = await run(process.execPath, [main, model("cube.glb"), "--out", join(dir, "c.json"), "--dry-run", "-q"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\s+compute_counts\s+step\s+run/m);
    expect(await readdir(dir)).toEqual([]);
  });

  it("--steps without the inputs it needs gives exit 1 (MISSING_REQUIREMENT)", async () => {
    const r = await run(process.execPath, [main, model("cube.glb"), "--steps", "compute_counts,assemble_report", "-q"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("MISSING_REQUIREMENT");
  });

  it("usage errors exit 64: unknown --steps (valid names listed), no model, unknown option", async () => {
    const bad = await run(process.execPath, [main, model("cube.glb"), "--steps", "render"]);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain(`valid steps: ${STEP_NAMES.join(", ")}`);
    expect((await run(process.execPath, [main])).code).toBe(64);
    expect((await run(process.execPath, [main, model("cube.glb"), "--frobnicate"])).code).toBe(64);
  });

  it("--help exits 0 and shows an example", async () => {
    const r = await run(process.execPath, [main, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Examples:");
    expect(r.stdout).toContain("$ mini-inspector examples/mini-inspector/models/scene.glb");
  });

  it("make-models writes the same files as the committed fixtures; no OUTDIR is a usage error", async () => {
    const dir = await freshDir("cli-models");
    const r = await run(process.execPath, [join(buildDir, "out/examples/mini-inspector/make-models.js"), dir]);
    expect(r.code).toBe(0);
    for (const file of MODEL_FILES) expect(await readFile(join(dir, file)), file).toEqual(await readFile(model(file)));
    expect((await run(process.execPath, [join(buildDir, "out/examples/mini-inspector/make-models.js")])).code).toBe(64);
  });
});
