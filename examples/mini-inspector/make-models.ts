import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Document, Format, NodeIO } from "@gltf-transform/core";
import type { Buffer as GltfBuffer, Material, Primitive } from "@gltf-transform/core";
import { checkerboard, encodePngRgb } from "./png.js";

/**
 * Writes the mini inspector's sample models, byte for byte the same on every
 * run (no timestamps, no random ids, stored-deflate PNG, a fixed generator string):
 *
 *   cube.glb         1 mesh, 1 primitive (indexed TRIANGLES), 24 vertices, 12 triangles, 1 material
 *   scene.glb        6 nodes in a hierarchy, 3 meshes (one drawn twice), 5 primitives
 *                    (indexed STRIP, uint32-indexed TRIANGLES, non-indexed FAN, LINES, POINTS),
 *                    2 materials, 1 embedded 4x4 PNG texture
 *   animated.gltf    + animated.bin: a quad under a pivot node, and an animation with a
 *                    translation and a rotation sampler (LINEAR, 3 keyframes over 2 s)
 *   empty-scene.glb  a valid file with one scene, one node and no meshes
 *   broken.glb       the first half of cube.glb: a truncated GLB that must be rejected
 *
 * The expected counts and bounds of each are in test/mini-inspector.test.ts.
 */
export const MODEL_FILES = ["cube.glb", "scene.glb", "animated.gltf", "animated.bin", "empty-scene.glb", "broken.glb"] as const;

const GENERATOR = "hpcpipe mini-inspector make-models 1";

/** glTF primitive modes used here (Primitive.Mode is typed as a loose record). */
const MODE = { POINTS: 0, LINES: 1, TRIANGLE_STRIP: 5, TRIANGLE_FAN: 6 } as const;

function newDocument(): Document {
  const doc = new Document();
  doc.getRoot().getAsset().generator = GENERATOR;
  return doc;
}

/** 24 vertices (4 per face, so each face has its own normal) and 12 triangles, counter-clockwise from outside. */
function boxGeometry(half: number): { positions: number[]; normals: number[]; uvs: number[]; indices: number[] } {
  // normal, u, v with u x v = normal
  const faces: [number[], number[], number[]][] = [
    [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
    [[-1, 0, 0], [0, 0, 1], [0, 1, 0]],
    [[0, 1, 0], [1, 0, 0], [0, 0, -1]],
    [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
    [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
    [[0, 0, -1], [-1, 0, 0], [0, 1, 0]],
  ];
  const positions: number[] = [];
  const normals: number[] = [];
  const uvs: number[] = [];
  const indices: number[] = [];
  const corners: [number, number, number, number][] = [
    [-1, -1, 0, 1],
    [1, -1, 1, 1],
    [1, 1, 1, 0],
    [-1, 1, 0, 0],
  ];
  faces.forEach(([n, u, v], f) => {
    for (const [su, sv, tu, tv] of corners) {
      for (let i = 0; i < 3; i++) positions.push(half * ((n[i] ?? 0) + su * (u[i] ?? 0) + sv * (v[i] ?? 0)));
      normals.push(...n);
      uvs.push(tu, tv);
    }
    const b = f * 4;
    indices.push(b, b + 1, b + 2, b, b + 2, b + 3);
  });
  return { positions, normals, uvs, indices };
}

function vec(doc: Document, buffer: GltfBuffer, type: "VEC2" | "VEC3" | "VEC4" | "SCALAR", values: number[]) {
  return doc.createAccessor().setType(type).setArray(new Float32Array(values)).setBuffer(buffer);
}

function boxPrimitive(doc: Document, buffer: GltfBuffer, material: Material, wideIndices: boolean): Primitive {
  const g = boxGeometry(1);
  const indices = doc
    .createAccessor()
    .setType("SCALAR")
    .setArray(wideIndices ? new Uint32Array(g.indices) : new Uint16Array(g.indices))
    .setBuffer(buffer);
  return doc
    .createPrimitive()
    .setAttribute("POSITION", vec(doc, buffer, "VEC3", g.positions))
    .setAttribute("NORMAL", vec(doc, buffer, "VEC3", g.normals))
    .setAttribute("TEXCOORD_0", vec(doc, buffer, "VEC2", g.uvs))
    .setIndices(indices)
    .setMaterial(material);
}

/** A 2x2x2 cube (vertices at +-1) on a node raised by 1, so its world bounds are [-1,0,-1]..[1,2,1]. */
function cube(): Document {
  const doc = newDocument();
  const buffer = doc.createBuffer("buffer");
  const red = doc.createMaterial("red").setBaseColorFactor([0.8, 0.1, 0.1, 1]).setMetallicFactor(0).setRoughnessFactor(0.5);
  const mesh = doc.createMesh("cube").addPrimitive(boxPrimitive(doc, buffer, red, false));
  const node = doc.createNode("cube").setMesh(mesh).setTranslation([0, 1, 0]);
  doc.createScene("scene").addChild(node);
  doc.getRoot().setDefaultScene(doc.getRoot().listScenes()[0] ?? null);
  return doc;
}

/**
 * root
 *   ground   10x10 textured plane at y=0 (indexed TRIANGLE_STRIP, 4 vertices, 2 triangles)
 *   box_a    box mesh, translation (2, 0.5, 0), scale 0.5
 *   props    translation (0, 0, -5)
 *     box_b  box mesh, translation (-2, 0.5, 0), 45 degrees about Y, scale 0.5
 *     marker translation (0, 3, 0): a vertical hexagon fan (8 vertices, 6 triangles),
 *            a line to y=2 and a point at y=2.5 (neither has triangles)
 * World bounds: min (-5, 0, -5 - sqrt(0.5)), max (5, 5.5, 5).
 */
function scene(): Document {
  const doc = newDocument();
  const buffer = doc.createBuffer("buffer");

  const png = encodePngRgb(4, 4, checkerboard(4, 4, [230, 230, 230], [40, 40, 40]));
  const checker = doc.createTexture("checker").setMimeType("image/png").setImage(png).setURI("checker.png");
  const ground = doc
    .createMaterial("ground")
    .setBaseColorTexture(checker)
    .setBaseColorFactor([1, 1, 1, 1])
    .setMetallicFactor(0)
    .setRoughnessFactor(0.9);
  const paint = doc.createMaterial("paint").setBaseColorFactor([0.2, 0.4, 0.9, 1]).setMetallicFactor(0.1).setRoughnessFactor(0.4);

  const plane = doc
    .createPrimitive()
    .setMode(MODE.TRIANGLE_STRIP)
    .setAttribute("POSITION", vec(doc, buffer, "VEC3", [-5, 0, 5, 5, 0, 5, -5, 0, -5, 5, 0, -5]))
    .setAttribute("NORMAL", vec(doc, buffer, "VEC3", [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0]))
    .setAttribute("TEXCOORD_0", vec(doc, buffer, "VEC2", [0, 5, 5, 5, 0, 0, 5, 0]))
    .setIndices(doc.createAccessor().setType("SCALAR").setArray(new Uint16Array([0, 1, 2, 3])).setBuffer(buffer))
    .setMaterial(ground);
  const groundMesh = doc.createMesh("ground").addPrimitive(plane);
  const boxMesh = doc.createMesh("box").addPrimitive(boxPrimitive(doc, buffer, paint, true));

  const fan = [0, 0, 0];
  for (let k = 0; k <= 6; k++) fan.push(Math.cos((k * Math.PI) / 3), Math.sin((k * Math.PI) / 3), 0);
  const markerMesh = doc
    .createMesh("marker")
    .addPrimitive(
      doc.createPrimitive().setMode(MODE.TRIANGLE_FAN).setAttribute("POSITION", vec(doc, buffer, "VEC3", fan)).setMaterial(paint),
    )
    .addPrimitive(doc.createPrimitive().setMode(MODE.LINES).setAttribute("POSITION", vec(doc, buffer, "VEC3", [0, 0, 0, 0, 2, 0])))
    .addPrimitive(doc.createPrimitive().setMode(MODE.POINTS).setAttribute("POSITION", vec(doc, buffer, "VEC3", [0, 2.5, 0])));

  const s = Math.sin(Math.PI / 8);
  const c = Math.cos(Math.PI / 8);
  const props = doc
    .createNode("props")
    .setTranslation([0, 0, -5])
    .addChild(doc.createNode("box_b").setMesh(boxMesh).setTranslation([-2, 0.5, 0]).setRotation([0, s, 0, c]).setScale([0.5, 0.5, 0.5]))
    .addChild(doc.createNode("marker").setMesh(markerMesh).setTranslation([0, 3, 0]));
  const root = doc
    .createNode("root")
    .addChild(doc.createNode("ground").setMesh(groundMesh))
    .addChild(doc.createNode("box_a").setMesh(boxMesh).setTranslation([2, 0.5, 0]).setScale([0.5, 0.5, 0.5]))
    .addChild(props);
  doc.getRoot().setDefaultScene(doc.createScene("scene").addChild(root));
  return doc;
}

/**
 * pivot (translation (1, 0, 0))
 *   spinner (translation (0, 1, 0)): a 1x1 quad in the XY plane, indexed TRIANGLES
 * Animation "spin_and_bob" on spinner, keyframes at 0, 1, 2 s: translation
 * (0,1,0) -> (0,2,0) -> (0,1,0) and rotation about Y 0 -> 90 -> 180 degrees.
 * Rest-pose world bounds: (0.5, 0.5, 0) .. (1.5, 1.5, 0).
 */
function animated(): Document {
  const doc = newDocument();
  const buffer = doc.createBuffer("buffer").setURI("animated.bin");
  const material = doc.createMaterial("blade").setBaseColorFactor([1, 0.8, 0.2, 1]).setDoubleSided(true);
  const quad = doc
    .createPrimitive()
    .setAttribute("POSITION", vec(doc, buffer, "VEC3", [-0.5, -0.5, 0, 0.5, -0.5, 0, 0.5, 0.5, 0, -0.5, 0.5, 0]))
    .setIndices(doc.createAccessor().setType("SCALAR").setArray(new Uint16Array([0, 1, 2, 0, 2, 3])).setBuffer(buffer))
    .setMaterial(material);
  const spinner = doc.createNode("spinner").setMesh(doc.createMesh("blade").addPrimitive(quad)).setTranslation([0, 1, 0]);
  const pivot = doc.createNode("pivot").setTranslation([1, 0, 0]).addChild(spinner);
  doc.getRoot().setDefaultScene(doc.createScene("scene").addChild(pivot));

  const times = vec(doc, buffer, "SCALAR", [0, 1, 2]);
  const h = Math.SQRT1_2;
  const move = doc.createAnimationSampler().setInput(times).setOutput(vec(doc, buffer, "VEC3", [0, 1, 0, 0, 2, 0, 0, 1, 0])).setInterpolation("LINEAR");
  const turn = doc.createAnimationSampler().setInput(times).setOutput(vec(doc, buffer, "VEC4", [0, 0, 0, 1, 0, h, 0, h, 0, 1, 0, 0])).setInterpolation("LINEAR");
  doc
    .createAnimation("spin_and_bob")
    .addSampler(move)
    .addSampler(turn)
    .addChannel(doc.createAnimationChannel().setTargetNode(spinner).setTargetPath("translation").setSampler(move))
    .addChannel(doc.createAnimationChannel().setTargetNode(spinner).setTargetPath("rotation").setSampler(turn));
  return doc;
}

function emptyScene(): Document {
  const doc = newDocument();
  doc.getRoot().setDefaultScene(doc.createScene("empty").addChild(doc.createNode("empty")));
  return doc;
}

/** Every sample file, by name, in memory. */
export async function buildModels(): Promise<Map<string, Uint8Array>> {
  const io = new NodeIO();
  const files = new Map<string, Uint8Array>();
  const cubeGlb = await io.writeBinary(cube());
  files.set("cube.glb", cubeGlb);
  files.set("scene.glb", await io.writeBinary(scene()));
  const { json, resources } = await io.writeJSON(animated(), { format: Format.GLTF, basename: "animated" });
  files.set("animated.gltf", new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`));
  const bin = resources["animated.bin"];
  if (bin === undefined) throw new Error(`expected animated.bin among the resources, got ${Object.keys(resources).join(", ")}`);
  files.set("animated.bin", bin);
  files.set("empty-scene.glb", await io.writeBinary(emptyScene()));
  // Cut on a 4-byte boundary so the header is intact but the chunks run past the end.
  files.set("broken.glb", cubeGlb.slice(0, Math.floor(cubeGlb.length / 8) * 4));
  return files;
}

export interface WrittenModel {
  file: string;
  path: string;
  bytes: number;
  sha256: string;
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Writes every sample file into `outDir` (created if needed). */
export async function makeModels(outDir: string): Promise<WrittenModel[]> {
  await mkdir(outDir, { recursive: true });
  const written: WrittenModel[] = [];
  for (const [file, bytes] of await buildModels()) {
    const path = join(outDir, file);
    await writeFile(path, bytes);
    written.push({ file, path, bytes: bytes.length, sha256: sha256(bytes) });
  }
  return written;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv.some((a) => a.startsWith("-"))) {
    process.stderr.write(
      "usage: make-models OUTDIR [OUTDIR...]\n" +
        "Writes the mini inspector's sample glTF models into each OUTDIR, e.g.\n" +
        "  node dist/examples/mini-inspector/make-models.js examples/mini-inspector/models test/fixtures/models\n",
    );
    return argv.includes("--help") || argv.includes("-h") ? 0 : 64;
  }
  for (const dir of argv) {
    for (const m of await makeModels(resolve(dir))) process.stdout.write(`${m.sha256}  ${m.path} (${m.bytes} bytes)\n`);
  }
  return 0;
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (isMain) process.exitCode = await main(process.argv.slice(2));
