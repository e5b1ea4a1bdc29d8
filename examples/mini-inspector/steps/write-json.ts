import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CompletedState, PipelineStep, writeJsonAtomic } from "../../../src/index.js";
import type { Context } from "../../../src/index.js";
import { KEYS, read } from "../context.js";
import { errorMessage } from "../errors.js";

/**
 * Writes the report atomically (temp file `pipeline_*` in the same
 * directory, then rename), creating the directory if needed. Readers see
 * the old file or the complete new one; on failure no temp file is left.
 */
export class WriteJsonStep extends PipelineStep {
  constructor() {
    super({ name: "write_json", version: "1.0.0", requires: [KEYS.report, KEYS.outPath], provides: [KEYS.reportPath] });
  }

  override async run(context: Context): Promise<CompletedState> {
    const report = read.report(context);
    const out = context[KEYS.outPath];
    if (typeof out !== "string" || out.trim() === "") {
      return CompletedState.fail(`${KEYS.outPath} must be a file path, got ${JSON.stringify(out)}`);
    }
    const absolute = resolve(out);
    try {
      await mkdir(dirname(absolute), { recursive: true });
      await writeJsonAtomic(absolute, report);
    } catch (err) {
      return CompletedState.fail(`${out}: cannot write the report: ${errorMessage(err)}`);
    }
    context[KEYS.reportPath] = absolute;
    return CompletedState.ok({ outputs: { report_path: absolute } });
  }
}
