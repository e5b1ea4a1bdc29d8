import type { Property } from "@gltf-transform/core";

/** A property's name, or `<kind>_<index>` when it has none (names are optional in glTF). */
export function nameOf(property: Property, list: readonly Property[], kind: string): string {
  const name = property.getName();
  return name !== "" ? name : `${kind}_${list.indexOf(property)}`;
}
