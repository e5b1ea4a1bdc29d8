import type { Document } from "@gltf-transform/core";
import { CompletedState, PipelineStep } from "../../../src/index.js";
import type { Context } from "../../../src/index.js";
import { KEYS } from "../context.js";

/** Working state that only the steps need; the results (counts, bounds, report, report_path) stay. */
export const TEMP_KEYS = [KEYS.document, KEYS.asset, KEYS.scene, KEYS.meshes, KEYS.meshInstances] as const;

/**
 * Disposes of the parsed document and removes the working state from the
 * context, so a long-lived context (e.g. a batch over many files) does not
 * keep every model's buffers alive. It needs nothing, so it also runs alone.
 */
export class CleanupSceneStep extends PipelineStep {
  constructor() {
    super({ name: "cleanup_scene", version: "1.0.0", requires: [], provides: [], idempotent: false });
  }

  override async run(context: Context): Promise<CompletedState> {
    return CompletedState.ok({ outputs: { released: releaseSceneState(context) } });
  }
}

/** Disposes of `document` (if any) and deletes the temp keys; returns the keys that were present. */
export function releaseSceneState(context: Context): string[] {
  const document = context[KEYS.document];
  if (isDocument(document)) disposeDocument(document);
  const released: string[] = [];
  for (const key of TEMP_KEYS) {
    if (key in context) {
      delete context[key];
      released.push(key);
    }
  }
  return released;
}

function isDocument(value: unknown): value is Document {
  return typeof value === "object" && value !== null && typeof (value as Document).getRoot === "function";
}

/** Detaches every property from the graph, dropping the references to its typed arrays and images. */
function disposeDocument(document: Document): void {
  const root = document.getRoot();
  const properties = [
    ...root.listAnimations(),
    ...root.listScenes(),
    ...root.listNodes(),
    ...root.listSkins(),
    ...root.listCameras(),
    ...root.listMeshes(),
    ...root.listMaterials(),
    ...root.listTextures(),
    ...root.listAccessors(),
    ...root.listBuffers(),
  ];
  for (const p of properties) if (!p.isDisposed()) p.dispose();
}
