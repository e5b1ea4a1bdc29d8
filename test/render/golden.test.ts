import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderJobScript, renderSubmitScript } from "../../src/render/render.js";
import { context } from "./fixtures.js";
import { GOLDEN_CLUSTERS, GOLDEN_JOBS, goldenPlan } from "./golden-jobs.js";

// Regenerate with: UPDATE_GOLDEN=1 npx vitest run test/render/golden.test.ts
const GOLDEN_DIR = join(import.meta.dirname, "..", "fixtures", "golden");
const UPDATE = process.env.UPDATE_GOLDEN === "1";

function compareWithGolden(name: string, actual: string): void {
  const path = join(GOLDEN_DIR, name);
  if (UPDATE) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  if (!existsSync(path)) throw new Error(`golden file ${path} is missing; run with UPDATE_GOLDEN=1 to create it`);
  expect(actual).toBe(readFileSync(path, "utf8"));
}

describe("golden job scripts", () => {
  for (const [clusterName, { cluster, runDir }] of Object.entries(GOLDEN_CLUSTERS)) {
    for (const [jobName, job] of Object.entries(GOLDEN_JOBS)) {
      it(`the ${jobName} job on the ${clusterName} cluster renders byte-for-byte like its golden file`, () => {
        compareWithGolden(`${jobName}.${clusterName}.sbatch`, renderJobScript(job, context(runDir, cluster)));
      });
    }
    it(`the submit script for the ${clusterName} cluster renders byte-for-byte like its golden file`, () => {
      compareWithGolden(`submit.${clusterName}.sh`, renderSubmitScript(goldenPlan(runDir)));
    });
  }

  it("rendering the same job twice gives identical bytes", () => {
    const { cluster, runDir } = GOLDEN_CLUSTERS.full ?? { cluster: undefined, runDir: "" };
    for (const job of Object.values(GOLDEN_JOBS)) {
      const a = renderJobScript(job, context(runDir, cluster));
      const b = renderJobScript(structuredClone(job), context(runDir, cluster));
      expect(b).toBe(a);
    }
  });
});
