// vitest globalSetup: bundles the batch-validate example's toolkit, and installs the tools tests
// shell out to (shellcheck, Blender, ffmpeg, Chromium, tmux) with scripts/install-test-tools.sh.
// Under CI a failure fails the run; elsewhere
// the tests that need a missing tool skip with a loud notice of their own.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { buildToolkit } from "../../examples/batch-validate/build-toolkit.js";

const script = fileURLToPath(new URL("../../scripts/install-test-tools.sh", import.meta.url));

export default async function setup(): Promise<void> {
  // The batch-validate example bundles toolkit/toolkit.bundle.mjs (made by `npm run build`): make it from
  // the current sources, so a fresh clone's tests can compile and run the example without a build.
  await buildToolkit();
  const result = spawnSync("bash", [script], { encoding: "utf8", timeout: 300_000 });
  if (result.status === 0) return;
  const message = `scripts/install-test-tools.sh failed (exit ${result.status}):\n${result.stderr}`;
  const ci = process.env.CI?.toLowerCase();
  if (ci === "true" || ci === "1") throw new Error(message);
  process.stderr.write(`[hpcpipe] ${message}\n`);
}
