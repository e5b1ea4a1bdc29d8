import type { Document } from "@gltf-transform/core";
import { CompletedState, PipelineStep } from "../../../src/index.js";
import type { Context } from "../../../src/index.js";
import { KEYS, read } from "../context.js";
import { nameOf } from "../names.js";
import { REPORT_SCHEMA } from "../report.js";
import type { AnimationInfo, InspectionReport, MaterialInfo, TextureInfo } from "../report.js";

/** Puts the findings of the earlier steps, plus materials, textures and animations, into one report object. */
export class AssembleReportStep extends PipelineStep {
  constructor() {
    super({
      name: "assemble_report",
      version: "1.0.0",
      requires: [KEYS.scene, KEYS.document, KEYS.asset, KEYS.meshes, KEYS.counts, KEYS.bounds],
      provides: [KEYS.report],
    });
  }

  override async run(context: Context): Promise<CompletedState> {
    const scene = read.scene(context);
    const document = read.document(context);
    const report: InspectionReport = {
      schema: REPORT_SCHEMA,
      model: { path: scene.path, file: scene.file, format: scene.format, size_bytes: scene.size_bytes },
      asset: read.asset(context),
      counts: read.counts(context),
      bounds: read.bounds(context),
      meshes: read.meshes(context),
      materials: materials(document),
      textures: textures(document),
      animations: animations(document),
    };
    context[KEYS.report] = report;
    return CompletedState.ok({ outputs: { schema: REPORT_SCHEMA } });
  }
}

function materials(document: Document): MaterialInfo[] {
  const root = document.getRoot();
  const all = root.listMaterials();
  const allTextures = root.listTextures();
  return all.map((m) => {
    const texture = m.getBaseColorTexture();
    return {
      name: nameOf(m, all, "material"),
      base_color_factor: [...m.getBaseColorFactor()],
      base_color_texture: texture === null ? null : nameOf(texture, allTextures, "texture"),
      metallic_factor: m.getMetallicFactor(),
      roughness_factor: m.getRoughnessFactor(),
      alpha_mode: m.getAlphaMode(),
      double_sided: m.getDoubleSided(),
    };
  });
}

function textures(document: Document): TextureInfo[] {
  const all = document.getRoot().listTextures();
  return all.map((t) => {
    const size = t.getImage() === null ? null : t.getSize();
    return {
      name: nameOf(t, all, "texture"),
      mime_type: t.getMimeType(),
      width: size?.[0] ?? null,
      height: size?.[1] ?? null,
      size_bytes: t.getImage()?.byteLength ?? 0,
    };
  });
}

function animations(document: Document): AnimationInfo[] {
  const root = document.getRoot();
  const all = root.listAnimations();
  const nodes = root.listNodes();
  return all.map((a) => {
    let duration = 0;
    for (const sampler of a.listSamplers()) {
      const input = sampler.getInput();
      if (input !== null && input.getCount() > 0) duration = Math.max(duration, input.getMax([])[0] ?? 0);
    }
    return {
      name: nameOf(a, all, "animation"),
      channels: a.listChannels().map((c) => {
        const node = c.getTargetNode();
        const sampler = c.getSampler();
        return {
          node: node === null ? null : nameOf(node, nodes, "node"),
          path: c.getTargetPath() ?? "unknown",
          interpolation: sampler?.getInterpolation() ?? "unknown",
          keyframes: sampler?.getInput()?.getCount() ?? 0,
        };
      }),
      samplers: a.listSamplers().length,
      duration_s: duration,
    };
  });
}
