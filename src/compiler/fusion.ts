import { sameResources } from "./job-resources.js";
import type { GroupUnit, LeafUnit, MapUnit, Unit } from "./units.js";

/** A job-sized piece of a sequence: one plain job (its leaves fused when more than one), an array, or a tolerated block. */
export type Segment = { type: "single"; leaves: LeafUnit[] } | GroupUnit | MapUnit | { type: "block"; segments: Segment[] };

/**
 * Fusion: consecutive fusable leaves with equal resources share one plain
 * job; any other leaf has a job of its own, and an array or a block ends a
 * run (a block's own units fuse among themselves).
 */
export function fuseUnits(units: readonly Unit[]): Segment[] {
  const out: Segment[] = [];
  let run: LeafUnit[] = [];
  for (const unit of units) {
    if (unit.type === "leaf") {
      const last = run[run.length - 1];
      if (last && last.fusable && unit.fusable && sameResources(last.resources, unit.resources)) {
        run.push(unit);
        continue;
      }
    }
    if (run.length > 0) out.push({ type: "single", leaves: run });
    run = [];
    if (unit.type === "leaf") run = [unit];
    else out.push(unit.type === "block" ? { type: "block", segments: fuseUnits(unit.units) } : unit);
  }
  if (run.length > 0) out.push({ type: "single", leaves: run });
  return out;
}
