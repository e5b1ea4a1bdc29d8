/* global process */
// The batch validator's first step: prove that Node is recent enough and that the toolkit bundled
// with the run (bin/toolkit.bundle.mjs: the mini inspector and gltf-validator) loads, before the
// map starts. A cluster whose compute nodes lack Node fails here (exit 127 from bash), once.
import { hostname } from "node:os";
import { checkNode, loadToolkit, publish, runMain } from "./toolkit.mjs";

await runMain("check-toolkit", async () => {
  checkNode();
  const toolkit = await loadToolkit();
  if (typeof toolkit.runMiniInspector !== "function") throw new Error("the toolkit bundle has no runMiniInspector");
  if (typeof toolkit.failureLine !== "function") throw new Error("the toolkit bundle has no failureLine");
  const version = toolkit.validator.version();
  publish({ node_version: process.version, validator_version: version });
  process.stdout.write(`node ${process.version} on ${hostname()}\ngltf-validator ${version}\n`);
  return 0;
});
