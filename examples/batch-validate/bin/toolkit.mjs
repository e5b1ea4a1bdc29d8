/* global process, URL */
// Where the batch validator's steps find their code: ONE self-contained file, toolkit/toolkit.bundle.mjs,
// bundled with the run beside bin/ (see pipeline.yaml), built by `npm run build` (examples/batch-validate/
// build-toolkit.ts) from the mini inspector's sources and gltf-validator. It travels with the run
// like the models do, so the machine that runs the steps needs Node (18 or newer) and nothing
// else: no hpcpipe checkout, no node_modules, no path of the client.
import { appendFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const TOOLKIT_URL = new URL("../toolkit/toolkit.bundle.mjs", import.meta.url);
export const MIN_NODE_MAJOR = 18;

/** Refuses a Node older than the bundle was built for, naming the version found. */
export function checkNode(version = process.versions.node) {
  const major = Number(version.split(".")[0]);
  if (!(major >= MIN_NODE_MAJOR)) {
    throw new Error(`node ${version} is too old: the toolkit needs Node ${MIN_NODE_MAJOR} or newer on the machine that runs the steps (a \`modules:\` line such as nodejs/20 in the cluster config)`);
  }
}

/** The toolkit module: { runMiniInspector, failureLine, validator }. Throws with what to do when the bundle is missing. */
export async function loadToolkit() {
  const file = fileURLToPath(TOOLKIT_URL);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: build it with \`npm run build\` in the hpcpipe checkout (it writes examples/batch-validate/toolkit/toolkit.bundle.mjs), then submit again`);
  }
  return import(TOOLKIT_URL.href);
}

/**
 * Appends `key=value` lines to $HPCPIPE_PUBLISH (values made one line, at most 1,000 characters).
 * The wrapper records them in the step's state (outputs.published) also when the step fails,
 * so a failed item carries its reason in the merged result, not only in its log.
 */
export function publish(values) {
  const file = process.env.HPCPIPE_PUBLISH;
  if (!file) return;
  const oneLine = (value) => Array.from(String(value), (ch) => (ch.charCodeAt(0) < 32 || ch.charCodeAt(0) === 127 ? " " : ch)).join("");
  const lines = Object.entries(values).map(([key, value]) => `${key}=${oneLine(value).slice(0, 1000)}\n`);
  appendFileSync(file, lines.join(""));
}

/** Runs `main`; an exception becomes "<tool>: <message>" on stderr and exit status 2. */
export async function runMain(tool, main) {
  try {
    process.exitCode = (await main()) ?? 0;
  } catch (error) {
    process.stderr.write(`${tool}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  }
}
