import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Format, NodeIO } from "@gltf-transform/core";
import type { Document } from "@gltf-transform/core";
import { buildModels, sha256 } from "../mini-inspector/make-models.js";
import { buildToolkit, TOOLKIT_BUNDLE } from "./build-toolkit.js";

/**
 * The batch validator's model generator: N small glTF models, byte for byte
 * the same on every run, some valid and some deliberately broken, plus
 * `models.txt` (the map's items) and `expected.json` (what a correct run
 * must find).
 *
 * Model i is broken when `brokenEvery > 0` and `i % brokenEvery === brokenEvery - 1`
 * (every K-th model); the broken ones cycle through BROKEN_KINDS, the valid
 * ones through VALID_KINDS. Valid models are variants of the mini inspector's
 * samples (examples/mini-inspector/make-models.ts: the cube, the scene, the
 * animated .gltf + .bin, the empty scene), each moved, scaled and renamed by
 * its index so no two files are the same.
 *
 *   truncated           a GLB cut in half (header intact, chunks run past the end)
 *   bad_json            a GLB whose JSON chunk is cut short (padded with spaces): not JSON
 *   accessor_too_long   a GLB whose POSITION accessor claims 10x its vertices: past its bufferView
 *   index_out_of_range  a GLB whose first index is 999 (24 vertices): the inspector reads it, the validator does not accept it
 *   missing_buffer      a .gltf whose .bin was never written
 */
export const VALID_KINDS = ["cube", "scene", "animated", "empty_scene"] as const;
export const BROKEN_KINDS = ["truncated", "bad_json", "accessor_too_long", "index_out_of_range", "missing_buffer"] as const;
export type ValidKind = (typeof VALID_KINDS)[number];
export type BrokenKind = (typeof BROKEN_KINDS)[number];
export type ModelKind = ValidKind | BrokenKind;

export const GENERATOR = "hpcpipe batch-validate generate 1";
export const EXPECTED_SCHEMA = "hpcpipe.batch_validate.expected/1";
/** Default for `--broken-every`: one model in five is broken. */
export const DEFAULT_BROKEN_EVERY = 5;
/** Where models go inside the output directory; also the prefix of every path in models.txt. */
export const MODELS_DIR = "models";

/** Triangles of each valid kind (the mini inspector's counts: each mesh counted once). */
const TRIANGLES: Record<ValidKind, number> = { cube: 12, scene: 20, animated: 2, empty_scene: 0 };

export interface PlannedModel {
  index: number;
  /** The item: relative to the output (bundle) directory, e.g. `models/0004-truncated.glb`. */
  path: string;
  kind: ModelKind;
  broken: boolean;
  /** Every file written for it (a .gltf has its .bin, except missing_buffer), relative to the output directory. */
  files: string[];
}

export interface ExpectedModel {
  index: number;
  path: string;
  kind: ModelKind;
  /** What gltf-validator must say: no errors. */
  valid: boolean;
  /** Whether the mini inspector reads it (index_out_of_range is readable but invalid). */
  inspectable: boolean;
  /** The inspector's triangle count when inspectable, else null. */
  triangles: number | null;
}

export interface Expected {
  schema: typeof EXPECTED_SCHEMA;
  generator: typeof GENERATOR;
  count: number;
  broken_every: number;
  good: number;
  broken: number;
  /** Models per kind, every kind listed (0 when absent), valid kinds first. */
  by_kind: Record<ModelKind, number>;
  /** Sum of the triangles of the inspectable models. */
  triangles: number;
  models: ExpectedModel[];
}

export interface GenerateOptions {
  /** Every K-th model is broken; 0 = none. Default DEFAULT_BROKEN_EVERY. */
  brokenEvery?: number;
}

export interface GeneratedBatch {
  /** Every file by its path relative to the output directory: the models, `models.txt`, `expected.json`. */
  files: Map<string, Uint8Array>;
  expected: Expected;
  models: PlannedModel[];
}

function checkCount(n: number, what: string, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${what} must be a whole number >= ${min}, got ${String(n)}`);
}

/** Which model is which, without building any: the same for the same arguments. */
export function planModels(n: number, options: GenerateOptions = {}): PlannedModel[] {
  const every = options.brokenEvery ?? DEFAULT_BROKEN_EVERY;
  checkCount(n, "the number of models", 0);
  checkCount(every, "--broken-every", 0);
  const width = Math.max(4, String(Math.max(0, n - 1)).length);
  const models: PlannedModel[] = [];
  let good = 0;
  let bad = 0;
  for (let index = 0; index < n; index++) {
    const broken = every > 0 && index % every === every - 1;
    const kind: ModelKind = broken ? (BROKEN_KINDS[bad++ % BROKEN_KINDS.length] as BrokenKind) : (VALID_KINDS[good++ % VALID_KINDS.length] as ValidKind);
    const stem = `${MODELS_DIR}/${String(index).padStart(width, "0")}-${kind}`;
    const gltf = kind === "animated" || kind === "missing_buffer";
    const path = `${stem}.${gltf ? "gltf" : "glb"}`;
    const files = kind === "animated" ? [path, `${stem}.bin`] : [path];
    models.push({ index, path, kind, broken, files });
  }
  return models;
}

// ---------------------------------------------------------------- GLB surgery

const GLB_MAGIC = 0x46546c67;
const CHUNK_JSON = 0x4e4f534a;
const CHUNK_BIN = 0x004e4942;

interface GlbParts {
  json: Record<string, unknown>;
  bin: Uint8Array;
}

function splitGlb(glb: Uint8Array): GlbParts {
  const view = new DataView(glb.buffer, glb.byteOffset, glb.byteLength);
  if (view.getUint32(0, true) !== GLB_MAGIC) throw new Error("not a GLB");
  const jsonLength = view.getUint32(12, true);
  if (view.getUint32(16, true) !== CHUNK_JSON) throw new Error("the first chunk is not JSON");
  const json = JSON.parse(new TextDecoder().decode(glb.subarray(20, 20 + jsonLength))) as Record<string, unknown>;
  const at = 20 + jsonLength;
  const binLength = view.getUint32(at, true);
  if (view.getUint32(at + 4, true) !== CHUNK_BIN) throw new Error("the second chunk is not BIN");
  return { json, bin: glb.slice(at + 8, at + 8 + binLength) };
}

/** A GLB from a JSON text (padded with spaces to 4 bytes) and a BIN chunk (already 4-byte aligned). */
function joinGlb(jsonText: string, bin: Uint8Array): Uint8Array {
  const raw = new TextEncoder().encode(jsonText);
  const jsonLength = Math.ceil(raw.length / 4) * 4;
  const total = 12 + 8 + jsonLength + 8 + bin.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, GLB_MAGIC, true);
  view.setUint32(4, 2, true);
  view.setUint32(8, total, true);
  view.setUint32(12, jsonLength, true);
  view.setUint32(16, CHUNK_JSON, true);
  out.fill(0x20, 20, 20 + jsonLength);
  out.set(raw, 20);
  const at = 20 + jsonLength;
  view.setUint32(at, bin.length, true);
  view.setUint32(at + 4, CHUNK_BIN, true);
  out.set(bin, at + 8);
  return out;
}

// ---------------------------------------------------------------- variants

const io = new NodeIO();

/** Moves, scales and renames every root node of a copy of the sample, so each index gives different bytes. */
async function variant(sample: Uint8Array, index: number, name: string): Promise<Document> {
  const doc = await io.readBinary(sample);
  const root = doc.getRoot();
  root.getAsset().generator = GENERATOR;
  const scale = 1 + (index % 7) / 10;
  for (const scene of root.listScenes()) {
    scene.setName(name);
    for (const node of scene.listChildren()) {
      const [x, y, z] = node.getTranslation();
      node.setTranslation([x + index, y, z - (index % 3)]);
      const [sx, sy, sz] = node.getScale();
      node.setScale([sx * scale, sy * scale, sz * scale]);
    }
  }
  return doc;
}

/** The samples, each as a GLB (the animated .gltf + .bin is read as one document and re-packed). */
async function samples(): Promise<Record<"cube" | "scene" | "animated" | "empty_scene", Uint8Array>> {
  const files = await buildModels();
  const get = (name: string): Uint8Array => {
    const bytes = files.get(name);
    if (bytes === undefined) throw new Error(`the mini inspector's generator made no ${name}`);
    return bytes;
  };
  const gltf = JSON.parse(new TextDecoder().decode(get("animated.gltf"))) as Parameters<NodeIO["readJSON"]>[0]["json"];
  const animated = await io.readJSON({ json: gltf, resources: { "animated.bin": new Uint8Array(get("animated.bin")) } });
  return { cube: get("cube.glb"), scene: get("scene.glb"), animated: await io.writeBinary(animated), empty_scene: get("empty-scene.glb") };
}

/** A document as .gltf + .bin under `stem` (the .gltf refers to the .bin by its base name). */
async function asGltf(doc: Document, stem: string): Promise<{ gltf: Uint8Array; bin: Uint8Array; binName: string }> {
  const base = stem.slice(stem.lastIndexOf("/") + 1);
  for (const buffer of doc.getRoot().listBuffers()) buffer.setURI(`${base}.bin`);
  const { json, resources } = await io.writeJSON(doc, { format: Format.GLTF, basename: base });
  const bin = resources[`${base}.bin`];
  if (bin === undefined) throw new Error(`expected ${base}.bin among the resources, got ${Object.keys(resources).join(", ")}`);
  return { gltf: new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`), bin, binName: `${base}.bin` };
}

type Samples = Awaited<ReturnType<typeof samples>>;

async function buildModel(m: PlannedModel, s: Samples): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const stem = m.path.replace(/\.(glb|gltf)$/, "");
  const name = `model-${m.index}`;
  switch (m.kind) {
    case "cube":
    case "scene":
    case "empty_scene":
      out.set(m.path, await io.writeBinary(await variant(s[m.kind], m.index, name)));
      break;
    case "animated": {
      const { gltf, bin } = await asGltf(await variant(s.animated, m.index, name), stem);
      out.set(m.path, gltf);
      out.set(`${stem}.bin`, bin);
      break;
    }
    case "truncated": {
      const glb = await io.writeBinary(await variant(s.cube, m.index, name));
      out.set(m.path, glb.slice(0, Math.floor(glb.length / 8) * 4));
      break;
    }
    case "bad_json": {
      const { json, bin } = splitGlb(await io.writeBinary(await variant(s.cube, m.index, name)));
      const text = JSON.stringify(json);
      out.set(m.path, joinGlb(text.slice(0, Math.floor(text.length / 2)), bin));
      break;
    }
    case "accessor_too_long": {
      const { json, bin } = splitGlb(await io.writeBinary(await variant(s.cube, m.index, name)));
      const meshes = json.meshes as { primitives: { attributes: Record<string, number> }[] }[];
      const accessors = json.accessors as { count: number }[];
      const position = accessors[meshes[0]?.primitives[0]?.attributes.POSITION ?? -1];
      if (position === undefined) throw new Error("the cube has no POSITION accessor");
      position.count *= 10;
      out.set(m.path, joinGlb(JSON.stringify(json), bin));
      break;
    }
    case "index_out_of_range": {
      const doc = await variant(s.cube, m.index, name);
      const indices = doc.getRoot().listMeshes()[0]?.listPrimitives()[0]?.getIndices();
      const array = indices?.getArray();
      if (!indices || !array) throw new Error("the cube has no indices");
      const copy = new Uint16Array(array);
      copy[0] = 999;
      indices.setArray(copy);
      out.set(m.path, await io.writeBinary(doc));
      break;
    }
    case "missing_buffer": {
      const { gltf } = await asGltf(await variant(s.animated, m.index, name), stem);
      out.set(m.path, gltf);
      break;
    }
  }
  return out;
}

function expectation(m: PlannedModel): ExpectedModel {
  const valid = !m.broken;
  const inspectable = valid || m.kind === "index_out_of_range";
  const triangles = valid ? TRIANGLES[m.kind as ValidKind] : inspectable ? TRIANGLES.cube : null;
  return { index: m.index, path: m.path, kind: m.kind, valid, inspectable, triangles };
}

/** Builds the whole batch in memory. */
export async function generateBatch(n: number, options: GenerateOptions = {}): Promise<GeneratedBatch> {
  const models = planModels(n, options);
  const s = await samples();
  const files = new Map<string, Uint8Array>();
  for (const m of models) for (const [path, bytes] of await buildModel(m, s)) files.set(path, bytes);
  const byKind = Object.fromEntries([...VALID_KINDS, ...BROKEN_KINDS].map((k) => [k, 0])) as Record<ModelKind, number>;
  for (const m of models) byKind[m.kind]++;
  const expectedModels = models.map(expectation);
  const expected: Expected = {
    schema: EXPECTED_SCHEMA,
    generator: GENERATOR,
    count: n,
    broken_every: options.brokenEvery ?? DEFAULT_BROKEN_EVERY,
    good: models.filter((m) => !m.broken).length,
    broken: models.filter((m) => m.broken).length,
    by_kind: byKind,
    triangles: expectedModels.reduce((sum, m) => sum + (m.triangles ?? 0), 0),
    models: expectedModels,
  };
  const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
  files.set("models.txt", encode(models.map((m) => `${m.path}\n`).join("")));
  files.set("expected.json", encode(`${JSON.stringify(expected, null, 2)}\n`));
  return { files, expected, models };
}

/** This example's own directory (pipeline.yaml, bin/, toolkit/), from the source or from dist/examples/batch-validate/. */
export function exampleDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [here, resolve(here, "../../../examples/batch-validate")]) {
    if (existsSync(join(dir, "pipeline.yaml"))) return dir;
  }
  throw new Error(`cannot find examples/batch-validate/pipeline.yaml near ${here}`);
}

/** A file name the generator writes into models/: only these are removed before writing a new batch. */
const GENERATED_NAME = /^\d{4,}-[a-z_]+\.(glb|gltf|bin)$/;

export interface WriteResult {
  expected: Expected;
  /** Every file written, relative to the output directory. */
  written: { path: string; bytes: number; sha256: string }[];
}

/**
 * Writes a batch into `outDir`: `models/` (earlier generated models there are
 * removed first, other files are left alone), `models.txt` and `expected.json`.
 * Unless `outDir` is this example's own directory, `pipeline.yaml`, `bin/` and
 * the toolkit bundle are copied too, so `outDir/pipeline.yaml` is ready to run,
 * here or on a cluster that shares no filesystem with this machine.
 */
export async function writeBatch(outDir: string, n: number, options: GenerateOptions = {}): Promise<WriteResult> {
  const batch = await generateBatch(n, options);
  const out = resolve(outDir);
  const modelsDir = join(out, MODELS_DIR);
  mkdirSync(modelsDir, { recursive: true });
  for (const name of readdirSync(modelsDir)) if (GENERATED_NAME.test(name)) rmSync(join(modelsDir, name));
  const written: WriteResult["written"] = [];
  for (const [path, bytes] of batch.files) {
    writeFileSync(join(out, path), bytes);
    written.push({ path, bytes: bytes.length, sha256: sha256(bytes) });
  }
  const source = exampleDir();
  if (realpathSync(source) !== realpathSync(out)) {
    copyFileSync(join(source, "pipeline.yaml"), join(out, "pipeline.yaml"));
    mkdirSync(join(out, "bin"), { recursive: true });
    for (const name of readdirSync(join(source, "bin"))) if (name.endsWith(".mjs")) copyFileSync(join(source, "bin", name), join(out, "bin", name));
    // The toolkit travels with the run (nothing on the cluster may point back at this checkout):
    // the one `npm run build` made, or a new one built from the sources.
    const toolkit = join(source, TOOLKIT_BUNDLE);
    if (existsSync(toolkit)) {
      mkdirSync(dirname(join(out, TOOLKIT_BUNDLE)), { recursive: true });
      copyFileSync(toolkit, join(out, TOOLKIT_BUNDLE));
    } else await buildToolkit(join(out, TOOLKIT_BUNDLE));
  }
  return { expected: batch.expected, written };
}

const USAGE =
  "usage: generate OUTDIR N [--broken-every K]\n" +
  "Writes N glTF models (every K-th one broken; default K=5, 0 = none) into OUTDIR/models/,\n" +
  "with OUTDIR/models.txt and OUTDIR/expected.json; unless OUTDIR is the example itself,\n" +
  "also copies pipeline.yaml, bin/ and toolkit/ so OUTDIR/pipeline.yaml runs as it is, e.g.\n" +
  "  node dist/examples/batch-validate/generate.js /tmp/batch200 200 --broken-every 4\n" +
  "  node dist/cli/main.js run /tmp/batch200/pipeline.yaml\n" +
  "  node dist/cli/main.js submit /tmp/batch200/pipeline.yaml --cluster C --wait   # Node 18+ on the cluster\n";

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  const positional: string[] = [];
  let brokenEvery = DEFAULT_BROKEN_EVERY;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--broken-every" || a.startsWith("--broken-every=")) {
      const value = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (value === undefined || !/^\d+$/.test(value)) {
        process.stderr.write(`generate: --broken-every needs a whole number, got ${value === undefined ? "nothing" : JSON.stringify(value)}\n${USAGE}`);
        return 64;
      }
      brokenEvery = Number(value);
    } else if (a.startsWith("-")) {
      process.stderr.write(`generate: unknown option ${a}\n${USAGE}`);
      return 64;
    } else positional.push(a);
  }
  const [outDir, count] = positional;
  if (positional.length !== 2 || outDir === undefined || count === undefined || !/^\d+$/.test(count)) {
    process.stderr.write(USAGE);
    return 64;
  }
  const { expected } = await writeBatch(outDir, Number(count), { brokenEvery });
  const kinds = Object.entries(expected.by_kind)
    .filter(([, c]) => c > 0)
    .map(([k, c]) => `${k} ${c}`)
    .join(", ");
  process.stdout.write(`${resolve(outDir)}: ${expected.count} models, ${expected.good} good, ${expected.broken} broken (${kinds})\n`);
  return 0;
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (isMain) process.exitCode = await main(process.argv.slice(2));
