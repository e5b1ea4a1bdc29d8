// Issue 11: ONE list of transient SLURM errors. The scheduler's error classes, the rendered submit
// script and docs/runtime-contract.md all come from (or quote) src/slurm/transient.ts.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderSubmitScript } from "../../src/render/index.js";
import { isTransientSlurmError, SchedulerError, TRANSIENT_SLURM_ERRORS } from "../../src/slurm/index.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function submitScript(): string {
  return renderSubmitScript({ runId: "r1", pipeline: "p", layout: { runDir: "/tmp/hp/p/r1" }, jobs: [{ id: "j000", scriptPath: "scripts/j000.sbatch", dependencies: [] }] } as never);
}

describe("the one list of transient SLURM errors", () => {
  it("docs/runtime-contract.md quotes exactly the list", () => {
    const doc = readFileSync(path.join(REPO, "docs", "runtime-contract.md"), "utf8");
    const block = /<!-- transient-errors: begin -->\n([\s\S]*?)<!-- transient-errors: end -->/.exec(doc)?.[1] ?? "";
    expect(block.trim().split("\n").map((l) => /^- `(.*)`$/.exec(l)?.[1])).toEqual([...TRANSIENT_SLURM_ERRORS]);
  });

  it("a scheduler error is transient exactly when stderr holds one of them, in any case", () => {
    for (const message of TRANSIENT_SLURM_ERRORS) {
      expect(new SchedulerError("squeue failed", ["squeue"], { code: 1, stdout: "", stderr: `squeue: error: ${message.toUpperCase()}` }).transient, message).toBe(true);
    }
    expect(isTransientSlurmError("sbatch: error: Batch job submission failed: Invalid partition name specified")).toBe(false);
  });

  it("the rendered submit script's bash recognises each of them (and nothing else) with real bash", () => {
    const script = submitScript();
    const start = script.indexOf("HP_TRANSIENT=(");
    const fn = script.slice(script.indexOf("hp_transient() {"), script.indexOf("\n}\n", script.indexOf("hp_transient() {")) + 3);
    const array = script.slice(start, script.indexOf("\n)\n", start) + 3);
    const probe = [...TRANSIENT_SLURM_ERRORS.map((m) => `sbatch: error: Batch job submission failed: ${m.toLowerCase()}`), "sbatch: error: Invalid partition name specified"];
    const out = execFileSync("bash", ["-c", `${array}${fn}for t in "$@"; do if hp_transient "$t"; then echo yes; else echo no; fi; done`, "probe", ...probe], { encoding: "utf8" });
    expect(out.trim().split("\n")).toEqual([...TRANSIENT_SLURM_ERRORS.map(() => "yes"), "no"]);
  });
});
