// vitest globalSetup: installs the tools tests shell out to (shellcheck) with
// scripts/install-test-tools.sh. Under CI a failure fails the run; elsewhere
// the tests that need a missing tool skip with a loud notice of their own.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../scripts/install-test-tools.sh", import.meta.url));

export default function setup(): void {
  const result = spawnSync("bash", [script], { encoding: "utf8", timeout: 300_000 });
  if (result.status === 0) return;
  const message = `scripts/install-test-tools.sh failed (exit ${result.status}):\n${result.stderr}`;
  const ci = process.env.CI?.toLowerCase();
  if (ci === "true" || ci === "1") throw new Error(message);
  process.stderr.write(`[hpcpipe] ${message}\n`);
}
