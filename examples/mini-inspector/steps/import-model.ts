import { readFile } from "node:fs/promises";
import { NodeIO } from "@gltf-transform/core";
import type { Document, GLTF, ILogger } from "@gltf-transform/core";
import { CompletedState, PipelineStep, silentLogger } from "../../../src/index.js";
import type { Context, Logger, RunOptions } from "../../../src/index.js";
import { KEYS, read } from "../context.js";
import type { AssetInfo } from "../context.js";
import { errorMessage } from "../errors.js";
import { checkGlb, GlbFormatError } from "../glb-check.js";

/**
 * Parses the model with @gltf-transform/core's NodeIO (external .bin and
 * images of a .gltf are resolved next to it). A .glb's container is checked
 * first so truncation is reported as such. Sets `document` and `asset` (the
 * file's own asset block and extensions). Any read or parse problem is a
 * STEP_FAILED whose error starts with the path; nothing is put in the context.
 */
export class ImportModelStep extends PipelineStep {
  constructor() {
    super({ name: "import_model", version: "1.0.0", requires: [KEYS.scene], provides: [KEYS.document, KEYS.asset] });
  }

  override async run(context: Context, options: RunOptions = {}): Promise<CompletedState> {
    const scene = read.scene(context);
    const io = new NodeIO().setLogger(forwardTo(options.logger ?? silentLogger, options.key ?? this.name, scene.path));
    let document: Document;
    let asset: AssetInfo;
    try {
      if (scene.format === "glb") checkGlb(await readFile(scene.absolute_path));
      const json = await io.readAsJSON(scene.absolute_path);
      asset = assetInfo(json.json);
      document = await io.readJSON(json);
    } catch (err) {
      const why = err instanceof GlbFormatError ? `not a valid GLB: ${err.message}` : errorMessage(err);
      return CompletedState.fail(`${scene.path}: cannot read the glTF ${scene.format === "glb" ? "binary" : "file"}: ${why}`);
    }

    context[KEYS.document] = document;
    context[KEYS.asset] = asset;
    return CompletedState.ok({ outputs: { ...asset, bytes_read: io.lastReadBytes } });
  }
}

/** The file's own asset block; the parsed Document replaces `generator` with glTF-Transform's. */
function assetInfo(json: GLTF.IGLTF): AssetInfo {
  const a = json.asset;
  return {
    version: a.version,
    min_version: a.minVersion ?? null,
    generator: a.generator ?? null,
    copyright: a.copyright ?? null,
    extensions_used: [...(json.extensionsUsed ?? [])].sort(),
    extensions_required: [...(json.extensionsRequired ?? [])].sort(),
  };
}

/** glTF-Transform's own warnings (e.g. an unknown optional extension) go to the pipeline's logger. */
function forwardTo(logger: Logger, step: string, file: string): ILogger {
  const fields = { step, file, source: "gltf-transform" };
  return {
    debug: (text) => logger.debug(fields, text),
    info: (text) => logger.info(fields, text),
    warn: (text) => logger.warn(fields, text),
    error: (text) => logger.error(fields, text),
  };
}
