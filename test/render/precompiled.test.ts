/**
 * The package's templates precompiled at build time (dist/templates.precompiled.json, made by
 * scripts/precompile-templates.mjs) render byte for byte like the templates compiled at run time, and
 * an entry is used only while its file's text still has the hash it was made from: an edited template
 * is compiled and checked again (an unsafe edit is refused even with a stale precompiled entry).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultTemplatesDir, loadTemplates, precompileTemplates } from "../../src/render/environment.js";
import type { Precompiled } from "../../src/render/environment.js";
import { renderJobScript, renderSubmitScript } from "../../src/render/render.js";
import { context } from "./fixtures.js";
import { GOLDEN_CLUSTERS, GOLDEN_JOBS, goldenPlan } from "./golden-jobs.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function copyOfTemplates(): string {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-precompiled-"));
  dirs.push(dir);
  cpSync(defaultTemplatesDir(), dir, { recursive: true });
  return dir;
}

describe("precompiled templates", () => {
  const precompiled = precompileTemplates();

  it("covers every template file of the package, each with its text's hash", () => {
    expect(Object.keys(precompiled).sort()).toEqual(expect.arrayContaining(["sbatch.hbs", "submit.hbs"]));
    expect(Object.keys(precompiled).filter((f) => f.startsWith("partials/")).length).toBeGreaterThan(0);
  });

  it("render every golden job and submit script byte for byte like templates compiled at run time", () => {
    const root = defaultTemplatesDir();
    const fromSpec = loadTemplates(root, precompiled);
    const compiled = loadTemplates(root, {});
    expect(fromSpec.sbatch).not.toBe(compiled.sbatch);
    for (const { cluster, runDir } of Object.values(GOLDEN_CLUSTERS)) {
      for (const job of Object.values(GOLDEN_JOBS)) {
        expect(renderJobScript(job, context(runDir, cluster), fromSpec)).toBe(renderJobScript(job, context(runDir, cluster), compiled));
      }
      expect(renderSubmitScript(goldenPlan(runDir), fromSpec)).toBe(renderSubmitScript(goldenPlan(runDir), compiled));
    }
  });

  it("are used only while the template's text is unchanged: an edited template renders as edited", () => {
    const dir = copyOfTemplates();
    const sbatch = join(dir, "sbatch.hbs");
    writeFileSync(sbatch, readFileSync(sbatch, "utf8").replace("#!/bin/bash", "#!/bin/bash\n# edited after the build"));
    const stale: Precompiled = precompileTemplates(defaultTemplatesDir());
    const { cluster, runDir } = Object.values(GOLDEN_CLUSTERS)[0]!;
    const job = Object.values(GOLDEN_JOBS)[0]!;
    expect(renderJobScript(job, context(runDir, cluster), loadTemplates(dir, stale))).toContain("# edited after the build");
  });

  it("an unsafe edit is refused even with a stale precompiled entry for the file", () => {
    const dir = copyOfTemplates();
    const sbatch = join(dir, "sbatch.hbs");
    writeFileSync(sbatch, `${readFileSync(sbatch, "utf8")}\necho {{runId}}\n`);
    const stale: Precompiled = precompileTemplates(defaultTemplatesDir());
    expect(() => loadTemplates(dir, stale)).toThrow(/sbatch\.hbs is unsafe/);
  });

  it("an unsafe template cannot be precompiled (the build fails)", () => {
    const dir = copyOfTemplates();
    writeFileSync(join(dir, "submit.hbs"), `${readFileSync(join(dir, "submit.hbs"), "utf8")}\necho {{runId}}\n`);
    expect(() => precompileTemplates(dir)).toThrow(/submit\.hbs is unsafe/);
  });
});
