/* global process */
// Where the batch validator's steps find their code: the mini inspector (compiled, in hpcpipe's
// dist/) and gltf-validator (in the node_modules/ next to that dist/). The run's work directory
// holds only this bin/ and the models, with no node_modules, so the code is loaded from an
// absolute path: ESM ignores NODE_PATH, so the inspector is import()ed by file URL and
// gltf-validator is require()d through createRequire anchored in that dist/ directory.
//
// hpcpipe_dist (context):
//   auto         the nearest dist/ above the working directory that holds the mini inspector:
//                right for `hpcpipe run` started in an hpcpipe checkout (runs go to ./.hpcpipe/runs)
//   /abs/dist    an hpcpipe build (npm run build) readable where the steps run: on a cluster, a
//                shared filesystem path as the compute nodes see it (and `node` on their PATH)
import { appendFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

export const INSPECTOR = "examples/mini-inspector/inspector.js";
export const INSPECT_COMMAND = "examples/mini-inspector/command.js";

/** The dist/ directory named by `given` ("auto" or a path); throws with what to do when there is none. */
export function findToolkit(given = process.env.hpcpipe_dist ?? "auto", from = process.cwd()) {
  if (given !== "auto") {
    const dir = resolve(from, given);
    if (!existsSync(join(dir, INSPECTOR))) {
      throw new Error(`hpcpipe_dist=${given}: ${join(dir, INSPECTOR)} does not exist here; give the dist/ directory of an hpcpipe build (npm run build) that this machine can read`);
    }
    return dir;
  }
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "dist", INSPECTOR))) return join(dir, "dist");
    if (dirname(dir) === dir) break;
  }
  throw new Error(`hpcpipe_dist=auto: no dist/${INSPECTOR} in ${from} or any directory above it; run with --set hpcpipe_dist=/abs/path/to/hpcpipe/dist (an hpcpipe build this machine can read)`);
}

/** The directory a step was given as `toolkit_dir` (published by the toolkit step). */
export function toolkitDir() {
  const dir = process.env.toolkit_dir;
  if (!dir) throw new Error("toolkit_dir is not set (the toolkit step publishes it)");
  return dir;
}

/** import() of a module of the toolkit, by absolute file URL. */
export function importFrom(dir, rel) {
  return import(pathToFileURL(join(dir, rel)).href);
}

/** require() resolving packages as a module inside the toolkit would: dist/node_modules, then ../node_modules, ... */
export function requireFrom(dir) {
  return createRequire(join(dir, "package.json"));
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
