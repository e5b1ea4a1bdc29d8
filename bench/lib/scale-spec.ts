// The map of the scale benchmarks (bench/scale.ts, bench/scale-cluster.ts): N Objaverse-like items,
// packed, two trivial steps per item; items whose hex index ends in 00 fail step b (exit 3), about
// 0.4 % of the items, and the map goes on (continue_on_item_error).
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Item i: an Objaverse-like path of 60 bytes. */
export const itemOf = (i: number): string => `objaverse/glbs/000-${String(i % 160).padStart(3, "0")}/${i.toString(16).padStart(32, "0")}.glb`;
/** The items that fail step b. */
export const fails = (i: number): boolean => i % 256 === 0;

/** Writes items.txt and scale.yaml (pipeline `scale`, map `each`) into `dir`; returns the spec's path. */
export function writeScaleSpec(dir: string, n: number, perTask: number): string {
  const items: string[] = [];
  for (let i = 0; i < n; i++) items.push(itemOf(i));
  writeFileSync(join(dir, "items.txt"), `${items.join("\n")}\n`);
  const spec = join(dir, "scale.yaml");
  writeFileSync(
    spec,
    [
      "name: scale",
      "steps:",
      "  - map: each",
      "    items_file: items.txt",
      `    items_per_task: ${perTask}`,
      "    continue_on_item_error: true",
      "    steps:",
      "      - step: a",
      '        run: "true"',
      "        requires: [item]",
      "      - step: b",
      // Fails (exit 3) for items whose hex index ends in 00.
      `        run: 'case "$item" in *00.glb) exit 3 ;; esac'`,
      "        requires: [item]",
      "",
    ].join("\n"),
  );
  return spec;
}
