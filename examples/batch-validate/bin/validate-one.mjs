/* global process */
// One item, step 2: the Khronos glTF validator (npm gltf-validator) on "$model", external
// buffers and images read next to it. Its report goes to out/validation/<i>.json as the validator
// wrote it (without a timestamp), also when the model is invalid; a file the validator cannot even
// start on (unknown format) gets a report of the same shape with one VALIDATOR_REJECTED error.
// Exit status 0 when the validator found no errors, else 1 with the first errors on stderr.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative } from "node:path";
import { loadToolkit, publish, runMain } from "./toolkit.mjs";

const SHOWN = 3;

/** Loads an external resource relative to the model; refuses absolute URIs and ones leaving the model's directory. */
function resourceLoader(model) {
  const base = dirname(model);
  return (uri) =>
    new Promise((resolve, reject) => {
      const rel = decodeURIComponent(uri);
      const path = join(base, rel);
      if (isAbsolute(rel) || relative(base, path).startsWith("..")) {
        reject(`refusing ${uri}: outside the model's directory`);
        return;
      }
      try {
        resolve(new Uint8Array(readFileSync(path)));
      } catch (error) {
        reject(error instanceof Error ? error.message : String(error));
      }
    });
}

await runMain("validate", async () => {
  const model = process.env.model;
  const index = process.env.HPCPIPE_TASK;
  if (!model || !index) throw new Error("expected $model and $HPCPIPE_TASK (run this as an item of the map)");
  const { validator } = await loadToolkit();
  mkdirSync("out/validation", { recursive: true });
  const out = `out/validation/${index}.json`;

  let report;
  try {
    const bytes = new Uint8Array(readFileSync(model));
    report = await validator.validateBytes(bytes, {
      uri: model,
      maxIssues: 100,
      writeTimestamp: false,
      externalResourceFunction: resourceLoader(model),
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    report = {
      uri: model,
      validatorVersion: validator.version(),
      issues: { numErrors: 1, numWarnings: 0, numInfos: 0, numHints: 0, truncated: false, messages: [{ code: "VALIDATOR_REJECTED", message, severity: 0 }] },
    };
  }
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  const { numErrors, numWarnings } = report.issues;
  publish({ validation_report: out, validation_errors: numErrors, validation_warnings: numWarnings });
  if (numErrors === 0) {
    process.stdout.write(`${model}: valid (${numWarnings} warning(s), ${report.issues.numInfos} info(s)) -> ${out}\n`);
    return 0;
  }
  const errors = report.issues.messages.filter((m) => m.severity === 0);
  const shown = errors.slice(0, SHOWN).map((m) => `${m.code}${m.pointer ? ` at ${m.pointer}` : ""}: ${m.message}`);
  const more = errors.length > SHOWN ? `; and ${numErrors - SHOWN} more` : "";
  publish({ validation_error: shown[0] ?? "error" });
  process.stderr.write(`validate: ${model}: invalid glTF: ${numErrors} error(s), ${numWarnings} warning(s): ${shown.join("; ")}${more}\n`);
  return 1;
});
