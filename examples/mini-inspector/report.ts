import type { AssetInfo, Counts, MeshInfo, SceneInfo, WorldBounds } from "./context.js";

/** Bumped whenever a field changes meaning or disappears. */
export const REPORT_SCHEMA = "hpcpipe.mini_inspector.report/1";

export interface MaterialInfo {
  name: string;
  base_color_factor: number[];
  base_color_texture: string | null;
  metallic_factor: number;
  roughness_factor: number;
  alpha_mode: string;
  double_sided: boolean;
}

export interface TextureInfo {
  name: string;
  mime_type: string;
  /** Pixel size read from the image header; null if the format is not recognised. */
  width: number | null;
  height: number | null;
  size_bytes: number;
}

export interface AnimationChannelInfo {
  node: string | null;
  path: string;
  interpolation: string;
  keyframes: number;
}

export interface AnimationInfo {
  name: string;
  channels: AnimationChannelInfo[];
  samplers: number;
  /** Latest keyframe time over all samplers, in seconds. */
  duration_s: number;
}

/**
 * What the inspector writes. It holds no timestamps or absolute paths, so the
 * same model gives the same bytes wherever and whenever it is inspected; run
 * details (timing, step results) are in the pipeline's CompletedState.
 */
export interface InspectionReport {
  schema: typeof REPORT_SCHEMA;
  model: Pick<SceneInfo, "path" | "file" | "format" | "size_bytes">;
  asset: AssetInfo;
  counts: Counts;
  /** World-space bounds of all geometry in the scenes at rest pose; null when there is none. */
  bounds: WorldBounds | null;
  meshes: MeshInfo[];
  materials: MaterialInfo[];
  textures: TextureInfo[];
  animations: AnimationInfo[];
}
