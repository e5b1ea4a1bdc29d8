// Issue 11: one rule each, written once and used everywhere: run ids, executable bundle files.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { writeBundle } from "../../cli/commands/submit.js";
import { preparePlan } from "../../src/app/prepare.js";
import { submissionFiles } from "../../src/app/submit.js";
import { RUN_ID_PATTERN as compilerPattern } from "../../src/compiler/compile.js";
import { materialiseBundle } from "../../src/local/index.js";
import { executableBundleFiles } from "../../src/plan/bundle-files.js";
import { RUN_ID_PATTERN, runIdProblem } from "../../src/plan/run-id.js";
import { RUN_ID_PATTERN as renderPattern } from "../../src/render/index.js";
import { RUN_ID_PATTERN as recordPattern } from "../../src/runs/index.js";

describe("one rule for run ids", () => {
  it("the compiler, the renderer and the run store use the same pattern", () => {
    expect(compilerPattern).toBe(RUN_ID_PATTERN);
    expect(renderPattern).toBe(RUN_ID_PATTERN);
    expect(recordPattern).toBe(RUN_ID_PATTERN);
    expect(runIdProblem("20261207-025001-aa5d31")).toBeNull();
    for (const bad of ["", ".hidden", "-x", "_x", "a/b", "a b", "x".repeat(65), 3]) expect(runIdProblem(bad), String(bad)).not.toBeNull();
  });
});

describe("one rule for executable bundle files", () => {
  it("the upload, the local run directory and `submit --dry-run --out` make the same files executable (0700) and the rest private (0600)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hp-rule-"));
    try {
      const { plan } = preparePlan({ spec: "examples/specs/batch-map.yaml", cluster: "local", localRunsDir: path.join(dir, "runs") });
      const rule = executableBundleFiles(plan);
      expect([...rule].sort()).toEqual([...plan.jobs.map((j) => j.scriptPath), "scripts/lib.sh", "scripts/submit.sh"].sort());
      expect([...submissionFiles(plan, new Map()).executable].sort()).toEqual([...rule].sort());
      const runDir = await materialiseBundle(plan, plan.layout.runDir);
      await writeBundle(plan, path.join(dir, "out"));
      for (const rel of Object.keys(plan.files)) {
        const want = rule.has(rel) ? 0o700 : 0o600;
        expect(statSync(path.join(runDir, rel)).mode & 0o777, `local ${rel}`).toBe(want);
        expect(statSync(path.join(dir, "out", rel)).mode & 0o777, `--out ${rel}`).toBe(want);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
