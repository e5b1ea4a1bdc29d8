import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultTemplatesDir, loadTemplates } from "../../src/render/environment.js";
import { renderJobScript } from "../../src/render/render.js";
import { context, groupJob, mapJob, packedMapJob, step } from "./fixtures.js";
import { arrayEnv, lintScript, makeRun, readState, removeRun, runScript, writeJob } from "./harness.js";

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

describe("running a batch step (real bash)", () => {
  it("gives the batch command its needs and the context under their own names: a name the wrapper uses inside changes neither the command nor its files", async () => {
    const needed = ["cmd", "list", "report", "shared", "env_vals", "key"];
    // Not needed: in the environment as every context value is.
    const names = [...needed, "start", "dir", "run", "n", "i", "pairs"];
    const run = makeRun({ context: Object.fromEntries(names.map((n) => [n, `ctx-${n}`])), items: { m: ["a", "b"] } });
    try {
      const command = [
        `echo "own ${names.map((n) => `${n}=$${n}`).join(" ")} E1=$E1" > "$HPCPIPE_RUN_DIR/seen"`,
        `while IFS=$'\\t' read -r index value publish outdir needs; do hp_batch_report "$index" ok; done < "$HPCPIPE_BATCH_ITEMS"`,
      ].join("\n");
      const batch = step("m.{i}.s", command, { batch: true, env: { E1: "e1" }, needs: needed.map((key) => ({ key, from: "context" })) });
      const script = writeJob(run, packedMapJob("m", "it", [batch], { itemsPerTask: 2 }, { count: 1 }));
      const res = await runScript(run, script, arrayEnv(0));
      expect(res.code).toBe(0);
      expect(readFileSync(join(run.runDir, "seen"), "utf8")).toBe(`own ${names.map((n) => `${n}=ctx-${n}`).join(" ")} E1=e1\n`);
      expect(readFileSync(join(run.runDir, "batch", "m.task0.s", "report.tsv"), "utf8")).toBe("0\tok\t\n1\tok\t\n");
      for (const i of [0, 1]) expect(readState(run, `m.${i}.s`)).toMatchObject({ success: true, meta: { batch: { items: 2, reported: true } } });
    } finally {
      removeRun(run);
    }
  });

  it("records each item of a batch step whose requirements no source has as MISSING_REQUIREMENT, naming them, and runs no command for it", async () => {
    const run = makeRun({ context: {}, items: { m: ["a", "b"] } });
    try {
      const batch = step("m.{i}.s", 'touch "$HPCPIPE_RUN_DIR/ran"', { batch: true, requires: ["absent", "gone"] });
      const script = writeJob(run, packedMapJob("m", "it", [batch], { itemsPerTask: 2 }, { count: 1 }));
      const res = await runScript(run, script, arrayEnv(0));
      expect(res.code).not.toBe(0);
      for (const i of [0, 1]) {
        expect(readState(run, `m.${i}.s`)).toMatchObject({ success: false, failure: "MISSING_REQUIREMENT", error: "missing requirements 'absent', 'gone'", meta: { missing: ["absent", "gone"] } });
      }
      expect(existsSync(join(run.runDir, "ran"))).toBe(false);
    } finally {
      removeRun(run);
    }
  });

  it("gives a per-item step of a batch map the context values under their own names (the loop over the items hides none)", async () => {
    const run = makeRun({ context: { i: "ctx-i", n: "ctx-n" }, items: { m: ["a", "b"] } });
    try {
      const batch = step("m.{i}.b", `while IFS=$'\\t' read -r index rest; do hp_batch_report "$index" ok; done < "$HPCPIPE_BATCH_ITEMS"`, { batch: true });
      const perItem = step("m.{i}.s", 'echo "i=$i n=$n" > "$HPCPIPE_OUT_DIR/$HPCPIPE_STEP"');
      const script = writeJob(run, packedMapJob("m", "it", [batch, perItem], { itemsPerTask: 2 }, { count: 1 }));
      expect((await runScript(run, script, arrayEnv(0))).code).toBe(0);
      for (const k of [0, 1]) expect(readFileSync(join(run.runDir, "out", `m.${k}.s`), "utf8")).toBe("i=ctx-i n=ctx-n\n");
    } finally {
      removeRun(run);
    }
  });
});
