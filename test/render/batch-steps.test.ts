import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultTemplatesDir, loadTemplates } from "../../src/render/environment.js";
import { renderJobScript } from "../../src/render/render.js";
import { context, groupJob, mapJob, packedMapJob, step } from "./fixtures.js";
import { lintScript } from "./harness.js";

describe("rendering a map with batch steps", () => {
  it("calls hp_batch_map with the items per task and renders every step as hp_batch_step (--batch for batch steps); the script lints clean", () => {
    const steps = [step("m.{i}.render", "blender -P r.py", { batch: true }), step("m.{i}.sheet", "true")];
    const packed = renderJobScript(packedMapJob("m", "it", steps, { itemsPerTask: 5 }, { count: 2 }), context("/r"));
    expect(packed).toMatch(/^hp_batch_map items\/m\.txt it 5 m$/m);
    expect(packed).toMatch(/^hp_batch_step --batch \\\n {2}--key 'm\.\{i\}\.render'/m);
    expect(packed).toMatch(/^hp_batch_step \\\n {2}--key 'm\.\{i\}\.sheet'/m);
    expect(packed).not.toMatch(/^hp_map_pack /m);
    expect(packed).not.toMatch(/^hp_step /m);
    expect(lintScript(packed)).toEqual([]);
    const single = renderJobScript(mapJob("m", "it", steps, { count: 3 }), context("/r"));
    expect(single).toMatch(/^hp_batch_map items\/m\.txt it 1 m$/m);
    // Without a batch step nothing changes: hp_step as before.
    expect(renderJobScript(mapJob("m", "it", [step("m.{i}.sheet", "true")], { count: 3 }), context("/r"))).toMatch(/^hp_step \\$/m);
  });

  it("refuses templates that do not call hp_batch_map for such a job, and a batch step outside a map job", () => {
    const dir = mkdtempSync(join(tmpdir(), "hpcpipe-old-templates-"));
    try {
      cpSync(defaultTemplatesDir(), dir, { recursive: true });
      const text = readFileSync(join(dir, "sbatch.hbs"), "utf8");
      writeFileSync(join(dir, "sbatch.hbs"), text.replace(/\{\{#if job\.isBatch\}\}[\s\S]*?\{\{else\}\}\n/, "{{#if false}}\n{{else}}\n"));
      const old = loadTemplates(dir);
      const job = mapJob("m", "it", [step("m.{i}.render", "true", { batch: true })], { count: 2 });
      expect(() => renderJobScript(job, context("/r"), old)).toThrow(/batch steps, but the sbatch template does not call hp_batch_map/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const bodies = [{ unitKey: null, steps: [step("g.a", "true", { batch: true })] }];
    expect(() => renderJobScript(groupJob(bodies), context("/r"))).toThrow(/a batch step can only run inside a map job/);
  });
});
