import { Document } from "@gltf-transform/core";
import type { Context } from "../../src/index.js";
import type { Mat4 } from "./math.js";
import type { InspectionReport } from "./report.js";

/**
 * The context keys the mini inspector's steps read and write. Inputs come
 * from the caller; the rest are set by exactly one step each.
 *
 *   model_path     input   path of the .glb/.gltf file, as given
 *   out_path       input   where write_json puts the report
 *   scene          prepare_scene   the checked input file (SceneInfo)
 *   document       import_model    the parsed glTF (a @gltf-transform/core Document)
 *   asset          import_model    the file's asset block and extensions (AssetInfo)
 *   meshes         collect_meshes  per-mesh, per-primitive statistics (MeshInfo[])
 *   mesh_instances collect_meshes  every node that draws a mesh, with its world matrix
 *   counts         compute_counts  document-wide totals (Counts)
 *   bounds         compute_counts  world-space bounding box, or null if there is no geometry
 *   report         assemble_report the report object (InspectionReport)
 *   report_path    write_json      absolute path of the written report
 */
export const KEYS = {
  modelPath: "model_path",
  outPath: "out_path",
  scene: "scene",
  document: "document",
  asset: "asset",
  meshes: "meshes",
  meshInstances: "mesh_instances",
  counts: "counts",
  bounds: "bounds",
  report: "report",
  reportPath: "report_path",
} as const;

/** The input file, checked and located by prepare_scene. */
export interface SceneInfo {
  /** The path as the caller gave it (used in messages and the report). */
  path: string;
  /** The same path made absolute. */
  absolute_path: string;
  file: string;
  format: "glb" | "gltf";
  size_bytes: number;
}

/** The file's `asset` and extension lists, as written (not as glTF-Transform rewrites them). */
export interface AssetInfo {
  version: string;
  min_version: string | null;
  generator: string | null;
  copyright: string | null;
  extensions_used: string[];
  extensions_required: string[];
}

export type PrimitiveModeName =
  | "POINTS"
  | "LINES"
  | "LINE_LOOP"
  | "LINE_STRIP"
  | "TRIANGLES"
  | "TRIANGLE_STRIP"
  | "TRIANGLE_FAN";

export interface PrimitiveInfo {
  mode: PrimitiveModeName;
  indexed: boolean;
  /** Elements in the POSITION accessor (0 when a primitive has none). */
  vertices: number;
  /** Index count if indexed, else the vertex count: what the draw call consumes. */
  elements: number;
  triangles: number;
  material: string | null;
  attributes: string[];
}

export interface MeshInfo {
  name: string;
  primitives: PrimitiveInfo[];
  vertices: number;
  triangles: number;
  /** Nodes in the scenes that draw this mesh. */
  instances: number;
}

export interface MeshInstance {
  node: string;
  mesh: string;
  /** Index of the mesh in the document's mesh list. */
  mesh_index: number;
  /** Node-to-world matrix, column-major. */
  world_matrix: Mat4;
}

export interface Counts {
  scenes: number;
  nodes: number;
  meshes: number;
  mesh_instances: number;
  primitives: number;
  vertices: number;
  triangles: number;
  materials: number;
  textures: number;
  animations: number;
}

export interface WorldBounds {
  min: [number, number, number];
  max: [number, number, number];
  size: [number, number, number];
  center: [number, number, number];
}

/**
 * Reads a key that the orchestrator has already checked is present, and
 * checks its type: a wrong type is a programming error, so it throws.
 */
function get<T>(context: Context, key: string, ok: (v: unknown) => boolean, what: string): T {
  const value = context[key];
  if (!ok(value)) throw new TypeError(`context '${key}' should be ${what}, got ${describe(value)}`);
  return value as T;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "no prototype"})`;
  return typeof v;
}

const isObject = (v: unknown): boolean => typeof v === "object" && v !== null && !Array.isArray(v);

export const read = {
  scene: (c: Context): SceneInfo =>
    get<SceneInfo>(c, KEYS.scene, (v) => isObject(v) && typeof (v as SceneInfo).absolute_path === "string", "a SceneInfo"),
  document: (c: Context): Document =>
    get<Document>(c, KEYS.document, (v) => v instanceof Document, "a @gltf-transform/core Document"),
  meshes: (c: Context): MeshInfo[] => get<MeshInfo[]>(c, KEYS.meshes, Array.isArray, "an array of MeshInfo"),
  meshInstances: (c: Context): MeshInstance[] =>
    get<MeshInstance[]>(c, KEYS.meshInstances, Array.isArray, "an array of MeshInstance"),
  asset: (c: Context): AssetInfo =>
    get<AssetInfo>(c, KEYS.asset, (v) => isObject(v) && typeof (v as AssetInfo).version === "string", "an AssetInfo"),
  counts: (c: Context): Counts => get<Counts>(c, KEYS.counts, isObject, "a Counts object"),
  bounds: (c: Context): WorldBounds | null =>
    get<WorldBounds | null>(c, KEYS.bounds, (v) => v === null || isObject(v), "a WorldBounds object or null"),
  report: (c: Context): InspectionReport => get<InspectionReport>(c, KEYS.report, isObject, "an InspectionReport"),
};
