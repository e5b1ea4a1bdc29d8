import { stat } from "node:fs/promises";
import { basename, extname, resolve } from "node:path";
import { CompletedState, PipelineStep } from "../../../src/index.js";
import type { Context } from "../../../src/index.js";
import { KEYS } from "../context.js";
import type { SceneInfo } from "../context.js";
import { errorMessage } from "../errors.js";

/**
 * Checks the input before anything is parsed: a .glb or .gltf extension, an
 * existing, non-empty regular file. Sets `scene` to what it found. A bad
 * input is a STEP_FAILED (exit 4) whose error starts with the path.
 */
export class PrepareSceneStep extends PipelineStep {
  constructor() {
    super({ name: "prepare_scene", version: "1.0.0", requires: [KEYS.modelPath], provides: [KEYS.scene] });
  }

  override async run(context: Context): Promise<CompletedState> {
    const path = context[KEYS.modelPath];
    if (typeof path !== "string" || path.trim() === "") {
      return CompletedState.fail(`${KEYS.modelPath} must be a path to a .glb or .gltf file, got ${JSON.stringify(path)}`);
    }
    const ext = extname(path).toLowerCase();
    const format = ext === ".glb" ? "glb" : ext === ".gltf" ? "gltf" : null;
    if (format === null) {
      return CompletedState.fail(`${path}: not a glTF file name (expected .glb or .gltf, got ${ext === "" ? "no extension" : `'${ext}'`})`);
    }
    const absolute = resolve(path);
    let size: number;
    try {
      const st = await stat(absolute);
      if (!st.isFile()) return CompletedState.fail(`${path}: not a regular file`);
      size = st.size;
    } catch (err) {
      return CompletedState.fail(`${path}: cannot open: ${errorMessage(err)}`);
    }
    if (size === 0) return CompletedState.fail(`${path}: the file is empty`);

    const scene: SceneInfo = { path, absolute_path: absolute, file: basename(path), format, size_bytes: size };
    context[KEYS.scene] = scene;
    return CompletedState.ok({ outputs: { file: scene.file, format, size_bytes: size } });
  }
}
