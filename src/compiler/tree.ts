/** How the compiler reads a pipeline tree: composites, sequences and maps. */
import type { PipelineStep } from "../core/step.js";
import type { MapPacking } from "../spec/map-step.js";

/** The parts of a map step the compiler reads (see src/spec/map-step.ts). */
export interface MapLike extends PipelineStep {
  readonly items: readonly string[];
  readonly as: string;
  readonly continue_on_item_error: boolean;
  /** Task packing (absent or null: one array task per item). */
  readonly packing?: MapPacking | null;
  /** The SHA-256 of each item's file when the items are staged local files. */
  readonly itemHashes?: readonly string[] | null;
}

export const isComposite = (s: PipelineStep): boolean => s.kind !== "step";
export const isSequential = (s: PipelineStep): boolean => s.kind === "pipeline" || (s.kind === "group" && !s.parallel);
export const mapOf = (s: PipelineStep): MapLike | null => (s.kind === ("map" as string) ? (s as MapLike) : null);
