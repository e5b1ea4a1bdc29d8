import type { Node } from "@gltf-transform/core";
import { CompletedState, PipelineStep } from "../../../src/index.js";
import type { Context } from "../../../src/index.js";
import { KEYS, read } from "../context.js";
import type { MeshInfo, MeshInstance } from "../context.js";
import { primitiveInfo } from "../geometry.js";
import { composeTRS, identity, multiply } from "../math.js";
import type { Mat4 } from "../math.js";
import { nameOf } from "../names.js";

/**
 * Lists every mesh with per-primitive statistics (mode, vertices, triangles,
 * material), and walks every scene's node tree to find the nodes that draw a
 * mesh, with their world matrices (parent world * T * R * S, rest pose).
 */
export class CollectMeshesStep extends PipelineStep {
  constructor() {
    super({
      name: "collect_meshes",
      version: "1.0.0",
      requires: [KEYS.document],
      provides: [KEYS.meshes, KEYS.meshInstances],
    });
  }

  override async run(context: Context): Promise<CompletedState> {
    const root = read.document(context).getRoot();
    const allMeshes = root.listMeshes();
    const allMaterials = root.listMaterials();
    const allNodes = root.listNodes();

    const meshes: MeshInfo[] = allMeshes.map((mesh) => {
      const primitives = mesh.listPrimitives().map((p) => primitiveInfo(p, (m) => nameOf(m, allMaterials, "material")));
      return {
        name: nameOf(mesh, allMeshes, "mesh"),
        primitives,
        vertices: primitives.reduce((n, p) => n + p.vertices, 0),
        triangles: primitives.reduce((n, p) => n + p.triangles, 0),
        instances: 0,
      };
    });

    const instances: MeshInstance[] = [];
    const onPath = new Set<Node>();
    const walk = (node: Node, parentWorld: Mat4): void => {
      if (onPath.has(node)) throw new Error(`the node hierarchy has a cycle through '${nameOf(node, allNodes, "node")}'`);
      onPath.add(node);
      const world = multiply(parentWorld, composeTRS(node.getTranslation(), node.getRotation(), node.getScale()));
      const mesh = node.getMesh();
      if (mesh !== null) {
        const index = allMeshes.indexOf(mesh);
        const info = meshes[index];
        if (info !== undefined) info.instances += 1;
        instances.push({ node: nameOf(node, allNodes, "node"), mesh: nameOf(mesh, allMeshes, "mesh"), mesh_index: index, world_matrix: world });
      }
      for (const child of node.listChildren()) walk(child, world);
      onPath.delete(node);
    };
    for (const scene of root.listScenes()) for (const node of scene.listChildren()) walk(node, identity());

    context[KEYS.meshes] = meshes;
    context[KEYS.meshInstances] = instances;
    return CompletedState.ok({ outputs: { meshes: meshes.length, mesh_instances: instances.length } });
  }
}
