import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { libScript, renderJobScript, renderSubmitScript } from "../../src/render/render.js";
import { context } from "./fixtures.js";
import { GOLDEN_CLUSTERS, GOLDEN_JOBS, goldenPlan } from "./golden-jobs.js";
import { shellcheckAvailable } from "./harness.js";

/** Every script the renderer produces for the representative jobs, plus the wrapper library. */
function allScripts(): [string, string][] {
  const out: [string, string][] = [["lib.sh", libScript()]];
  for (const [clusterName, { cluster, runDir }] of Object.entries(GOLDEN_CLUSTERS)) {
    for (const [jobName, job] of Object.entries(GOLDEN_JOBS)) out.push([`${jobName}.${clusterName}`, renderJobScript(job, context(runDir, cluster))]);
    out.push([`submit.${clusterName}`, renderSubmitScript(goldenPlan(runDir))]);
  }
  return out;
}

const inCI = process.env.CI === "true";
if (!shellcheckAvailable && !inCI) {
  console.warn(
    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n" +
      "!! shellcheck is not installed: rendered scripts are NOT shell-checked.\n" +
      "!! Install it (apt-get install -y shellcheck). Under CI=true this fails.\n" +
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
  );
}

describe("rendered scripts", () => {
  it("all pass bash -n", () => {
    for (const [name, text] of allScripts()) {
      const r = spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });
      expect(r.stderr, name).toBe("");
      expect(r.status, name).toBe(0);
    }
  });

  it("can be shell-checked: shellcheck is installed (required under CI)", () => {
    if (inCI) expect(shellcheckAvailable, "shellcheck must be installed in CI (apt-get install -y shellcheck)").toBe(true);
  });

  it.skipIf(!shellcheckAvailable)("all pass shellcheck -s bash with no finding at any severity", () => {
    for (const [name, text] of allScripts()) {
      const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: text, encoding: "utf8" });
      expect(r.stdout, name).toBe("");
      expect(r.status, name).toBe(0);
    }
  });
});
