import type { Material, Primitive } from "@gltf-transform/core";
import type { PrimitiveInfo, PrimitiveModeName } from "./context.js";

/** glTF primitive.mode values (WebGL enums) by name. */
export const MODE_NAMES: Record<number, PrimitiveModeName> = {
  0: "POINTS",
  1: "LINES",
  2: "LINE_LOOP",
  3: "LINE_STRIP",
  4: "TRIANGLES",
  5: "TRIANGLE_STRIP",
  6: "TRIANGLE_FAN",
};

/**
 * Triangles drawn from `elements` vertices (indices if indexed) in a mode:
 * a list uses 3 per triangle (a remainder draws nothing), a strip or fan
 * makes one per vertex after the second; points and lines make none.
 */
export function triangleCount(mode: PrimitiveModeName, elements: number): number {
  switch (mode) {
    case "TRIANGLES":
      return Math.floor(elements / 3);
    case "TRIANGLE_STRIP":
    case "TRIANGLE_FAN":
      return Math.max(0, elements - 2);
    default:
      return 0;
  }
}

export function modeName(mode: number): PrimitiveModeName {
  const name = MODE_NAMES[mode];
  if (name === undefined) throw new RangeError(`unknown primitive mode ${mode}`);
  return name;
}

/** Statistics of one primitive; `materialName` labels its material (names are optional in glTF). */
export function primitiveInfo(prim: Primitive, materialName: (m: Material) => string): PrimitiveInfo {
  const mode = modeName(prim.getMode());
  const position = prim.getAttribute("POSITION");
  const indices = prim.getIndices();
  const vertices = position?.getCount() ?? 0;
  const material = prim.getMaterial();
  const elements = indices !== null ? indices.getCount() : vertices;
  return {
    mode,
    indexed: indices !== null,
    vertices,
    elements,
    triangles: triangleCount(mode, elements),
    material: material === null ? null : materialName(material),
    attributes: prim.listSemantics().sort(),
  };
}
