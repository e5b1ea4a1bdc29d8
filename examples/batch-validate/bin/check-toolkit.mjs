/* global process */
// The batch validator's first step: find the toolkit once (see toolkit.mjs), prove the mini
// inspector and gltf-validator load, and publish toolkit_dir for the items. A cluster whose
// compute nodes lack Node or cannot read the toolkit fails here, before the map starts.
import { hostname } from "node:os";
import { findToolkit, importFrom, INSPECT_COMMAND, INSPECTOR, publish, requireFrom, runMain } from "./toolkit.mjs";

await runMain("check-toolkit", async () => {
  const dir = findToolkit();
  const inspector = await importFrom(dir, INSPECTOR);
  if (typeof inspector.runMiniInspector !== "function") throw new Error(`${dir}/${INSPECTOR} has no runMiniInspector`);
  const command = await importFrom(dir, INSPECT_COMMAND);
  if (typeof command.failureLine !== "function") throw new Error(`${dir}/${INSPECT_COMMAND} has no failureLine`);
  const validator = requireFrom(dir)("gltf-validator");
  publish({ toolkit_dir: dir, validator_version: validator.version() });
  process.stdout.write(`node ${process.version} on ${hostname()}\ntoolkit ${dir}\ngltf-validator ${validator.version()}\n`);
  return 0;
});
