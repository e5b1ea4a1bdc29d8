import { CompletedState, PipelineStep } from "../../../src/index.js";
import type { Context } from "../../../src/index.js";
import { KEYS, read } from "../context.js";
import type { Counts, WorldBounds } from "../context.js";
import { Bounds, transformPoint } from "../math.js";

/**
 * Totals over the document, and the world-space bounding box: every POSITION
 * of every primitive (points and lines included) of every mesh instance,
 * transformed by the instance's world matrix. Vertex and triangle totals
 * count each mesh once, however many nodes draw it.
 */
export class ComputeCountsStep extends PipelineStep {
  constructor() {
    super({
      name: "compute_counts",
      version: "1.0.0",
      requires: [KEYS.document, KEYS.meshes, KEYS.meshInstances],
      provides: [KEYS.counts, KEYS.bounds],
    });
  }

  override async run(context: Context): Promise<CompletedState> {
    const root = read.document(context).getRoot();
    const meshes = read.meshes(context);
    const instances = read.meshInstances(context);

    const counts: Counts = {
      scenes: root.listScenes().length,
      nodes: root.listNodes().length,
      meshes: meshes.length,
      mesh_instances: instances.length,
      primitives: meshes.reduce((n, m) => n + m.primitives.length, 0),
      vertices: meshes.reduce((n, m) => n + m.vertices, 0),
      triangles: meshes.reduce((n, m) => n + m.triangles, 0),
      materials: root.listMaterials().length,
      textures: root.listTextures().length,
      animations: root.listAnimations().length,
    };

    const box = new Bounds();
    const allMeshes = root.listMeshes();
    const element: number[] = [];
    for (const instance of instances) {
      const mesh = allMeshes[instance.mesh_index];
      if (mesh === undefined) throw new Error(`mesh instance '${instance.node}' points at mesh #${instance.mesh_index}, which does not exist`);
      for (const prim of mesh.listPrimitives()) {
        const position = prim.getAttribute("POSITION");
        if (position === null) continue;
        for (let i = 0, n = position.getCount(); i < n; i++) {
          box.add(transformPoint(instance.world_matrix, position.getElement(i, element)));
        }
      }
    }
    const bounds: WorldBounds | null = box.empty
      ? null
      : {
          min: [...box.min],
          max: [...box.max],
          size: [box.max[0] - box.min[0], box.max[1] - box.min[1], box.max[2] - box.min[2]],
          center: [(box.min[0] + box.max[0]) / 2, (box.min[1] + box.max[1]) / 2, (box.min[2] + box.max[2]) / 2],
        };

    context[KEYS.counts] = counts;
    context[KEYS.bounds] = bounds;
    return CompletedState.ok({ outputs: { ...counts, bounds } });
  }
}
