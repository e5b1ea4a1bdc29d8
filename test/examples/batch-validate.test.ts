/**
 * Example 4, the batch validator (examples/batch-validate/): the generator
 * (deterministic, the committed batch is its output, the kinds of broken
 * models), the plan (a packed map between the toolkit check and the
 * aggregate), and real runs on the local executor through preparePlan +
 * runLocal (the same bash job scripts as on a cluster) in temp run
 * directories. The steps load the mini inspector and gltf-validator from
 * ONE self-contained file bundled with the run (toolkit/toolkit.bundle.mjs,
 * built here from the current sources by buildToolkit), never from dist/ or
 * node_modules: nothing a step needs lives behind a path of the client.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import type { PreparedPlan } from "../../src/app/prepare.js";
import { runLocal } from "../../src/app/run-local.js";
import type { LocalRunOutcome } from "../../src/app/run-local.js";
import { ExitCode, exitCodeFrom } from "../../src/core/index.js";
import { logSection, slotLogOf } from "../../src/core/log-section.js";
import type { LocalRunEvent } from "../../src/local/index.js";
import { buildToolkit } from "../../examples/batch-validate/build-toolkit.js";
import { BROKEN_KINDS, generateBatch, main as generateMain, planModels, VALID_KINDS, writeBatch } from "../../examples/batch-validate/generate.js";
import type { BrokenKind, Expected } from "../../examples/batch-validate/generate.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const EXAMPLE = join(root, "examples/batch-validate");
const SPEC = join(EXAMPLE, "pipeline.yaml");
const RUN_TIMEOUT_MS = 180_000;
const MAP = "batch_validate.models";

/** The validator's first error code for each kind of broken model. */
const FIRST_ERROR: Record<BrokenKind, string> = {
  truncated: "GLB_UNEXPECTED_END_OF_CHUNK_DATA",
  bad_json: "INVALID_JSON",
  accessor_too_long: "ACCESSOR_TOO_LONG",
  index_out_of_range: "ACCESSOR_INDEX_OOB",
  missing_buffer: "IO_ERROR",
};

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempDir(prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

// ---------------------------------------------------------------- the generator

describe("examples/batch-validate: the generator", () => {
  it("is deterministic: the same arguments give the same bytes, file for file", async () => {
    const a = await generateBatch(23, { brokenEvery: 4 });
    const b = await generateBatch(23, { brokenEvery: 4 });
    expect([...a.files.keys()]).toEqual([...b.files.keys()]);
    for (const [path, bytes] of a.files) expect(sha(bytes), path).toBe(sha(b.files.get(path) ?? new Uint8Array()));
    // No two models are the same file.
    const models = [...a.files].filter(([p]) => /\.(glb|gltf)$/.test(p)).map(([, bytes]) => sha(bytes));
    expect(new Set(models).size).toBe(models.length);
  });

  it("the committed batch (40 models, every 5th broken) is exactly what the generator writes", async () => {
    const batch = await generateBatch(40, { brokenEvery: 5 });
    const committed = readdirSync(join(EXAMPLE, "models")).map((f) => `models/${f}`);
    const generated = [...batch.files.keys()].filter((p) => p.startsWith("models/"));
    expect(committed.sort()).toEqual(generated.sort());
    for (const [path, bytes] of batch.files) {
      expect(sha(readFileSync(join(EXAMPLE, path))), `${path} (regenerate: node dist/examples/batch-validate/generate.js examples/batch-validate 40)`).toBe(sha(bytes));
    }
  });

  it("makes every K-th model broken, cycling through the kinds; models.txt and expected.json agree", async () => {
    const { files, expected, models } = await generateBatch(30, { brokenEvery: 3 });
    expect(models.filter((m) => m.broken).map((m) => m.index)).toEqual([2, 5, 8, 11, 14, 17, 20, 23, 26, 29]);
    expect(models.filter((m) => m.broken).map((m) => m.kind)).toEqual([...BROKEN_KINDS, ...BROKEN_KINDS]);
    expect(models.filter((m) => !m.broken).map((m) => m.kind).slice(0, 8)).toEqual([...VALID_KINDS, ...VALID_KINDS]);
    expect(expected).toMatchObject({ count: 30, broken_every: 3, good: 20, broken: 10 });
    expect(expected.by_kind).toEqual({ cube: 5, scene: 5, animated: 5, empty_scene: 5, truncated: 2, bad_json: 2, accessor_too_long: 2, index_out_of_range: 2, missing_buffer: 2 });
    // 5 x (12 + 20 + 2 + 0) for the valid ones, + 2 x 12 for the readable index_out_of_range cubes.
    expect(expected.triangles).toBe(5 * 34 + 24);
    const listed = new TextDecoder().decode(files.get("models.txt")).split("\n").filter(Boolean);
    expect(listed).toEqual(models.map((m) => m.path));
    expect(JSON.parse(new TextDecoder().decode(files.get("expected.json")))).toEqual(expected);
    // An animated model has its .bin; a missing_buffer one refers to a .bin that is not there.
    const animated = models.find((m) => m.kind === "animated");
    expect(animated?.files).toEqual([animated?.path, animated?.path.replace(/\.gltf$/, ".bin")]);
    const missing = models.find((m) => m.kind === "missing_buffer");
    expect(missing?.path).toMatch(/\.gltf$/);
    expect(files.has(missing?.path.replace(/\.gltf$/, ".bin") ?? "")).toBe(false);
    expect(new TextDecoder().decode(files.get(missing?.path ?? ""))).toContain(".bin");
  });

  it("--broken-every 0 makes none broken; bad arguments are refused", async () => {
    expect(planModels(9, { brokenEvery: 0 }).every((m) => !m.broken)).toBe(true);
    expect(planModels(0)).toEqual([]);
    expect(() => planModels(-1)).toThrow(RangeError);
    expect(() => planModels(3, { brokenEvery: 1.5 })).toThrow(RangeError);
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      expect(await generateMain([])).toBe(64);
      expect(await generateMain(["out", "x"])).toBe(64);
      expect(await generateMain(["out", "3", "--broken-every"])).toBe(64);
      expect(await generateMain(["out", "3", "--nope"])).toBe(64);
    } finally {
      stderr.mockRestore();
    }
  });

  it("writeBatch makes a runnable copy: models, models.txt, expected.json, pipeline.yaml, bin/ and the toolkit; stale models are removed", async () => {
    const dir = tempDir("hpcpipe-bv-write-");
    await writeBatch(dir, 12, { brokenEvery: 4 });
    expect(readdirSync(join(dir, "models"))).toHaveLength(12 + 2); // two animated models have a .bin
    await writeBatch(dir, 5, { brokenEvery: 0 });
    expect(readdirSync(dir).sort()).toEqual(["bin", "expected.json", "models", "models.txt", "pipeline.yaml", "toolkit"]);
    expect(readdirSync(join(dir, "toolkit"))).toEqual(["toolkit.bundle.mjs"]);
    expect(readdirSync(join(dir, "bin")).sort()).toEqual(readdirSync(join(EXAMPLE, "bin")).sort());
    expect(readFileSync(join(dir, "pipeline.yaml"), "utf8")).toBe(readFileSync(SPEC, "utf8"));
    expect(readdirSync(join(dir, "models")).sort()).toEqual(["0000-cube.glb", "0001-scene.glb", "0002-animated.bin", "0002-animated.gltf", "0003-empty_scene.glb", "0004-cube.glb"]);
    const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
    expect(expected).toMatchObject({ count: 5, good: 5, broken: 0 });
  });
});

// ---------------------------------------------------------------- the plan

describe("examples/batch-validate: the plan", () => {
  it("compiles to 3 jobs: the toolkit check, ONE packed array (25 items a task, 2 CPUs), the aggregate", () => {
    const prepared = preparePlan({ spec: SPEC, runId: "plan", localRunsDir: tempDir("hpcpipe-bv-plan-") });
    const jobs = prepared.plan.jobs;
    expect(jobs.map((j) => j.shape)).toEqual(["single", "map", "single"]);
    const [toolkit, map, aggregate] = jobs;
    expect(toolkit?.steps).toEqual(["batch_validate.toolkit"]);
    expect(map?.array).toMatchObject({ count: 2, total: 2, chunks: 1 });
    expect(map?.map).toMatchObject({ itemsPerTask: 25 });
    expect(map?.resources.cpus).toBe(2);
    expect(map?.dependencies).toEqual([{ job: toolkit?.id, type: "afterok" }]);
    expect(aggregate?.steps).toEqual(["batch_validate.aggregate"]);
    expect(aggregate?.dependencies).toEqual([{ job: map?.id, type: "afterok" }]);
    expect(prepared.loaded.bundle).toEqual(["bin/", "toolkit/toolkit.bundle.mjs", "models/", "models.txt"]);
    expect(prepared.loaded.context).toEqual({});
  });

  it("names no path of the client: no script, context value or bundle file points at this checkout", () => {
    const prepared = preparePlan({ spec: SPEC, runId: "plan", localRunsDir: tempDir("hpcpipe-bv-plan-") });
    const checkout = root.replace(/\/$/, "");
    for (const job of prepared.plan.jobs) expect(job.script, job.id).not.toContain(checkout);
    for (const [path, file] of Object.entries(prepared.plan.files ?? {})) expect(JSON.stringify(file), path).not.toContain(checkout);
    for (const rel of prepared.loaded.bundle) expect(rel.startsWith("/") || rel.includes(".."), rel).toBe(false);
    // The step scripts load their code only from the run's own work/ directory: Node's built-ins and files beside them.
    for (const name of readdirSync(join(EXAMPLE, "bin"))) {
      const text = readFileSync(join(EXAMPLE, "bin", name), "utf8");
      const specifiers = [...text.matchAll(/\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"|new URL\(\s*"([^"]+)"/g)].map((m) => m[1] ?? m[2] ?? m[3]);
      expect(specifiers.length, name).toBeGreaterThan(0);
      for (const spec of specifiers) expect(spec, name).toMatch(/^(node:|\.\/|\.\.\/toolkit\/)/);
      expect(text, name).not.toMatch(/createRequire|process\.env\.hpcpipe_dist/);
    }
  });
});

// ---------------------------------------------------------------- the toolkit bundle

describe("examples/batch-validate: the toolkit is one self-contained file", () => {
  it("loads and validates from a directory with nothing else in it (no node_modules anywhere above)", async () => {
    const built = await buildToolkit(join(tempDir("hpcpipe-bv-alone-"), "toolkit.bundle.mjs"));
    const probe = [
      'import fs from "node:fs";',
      `const t = await import(${JSON.stringify(`file://${built}`)});`,
      `const r = await t.validator.validateBytes(new Uint8Array(fs.readFileSync(${JSON.stringify(join(EXAMPLE, "models/0004-truncated.glb"))})), { uri: "x.glb" });`,
      "process.stdout.write(JSON.stringify({ v: t.validator.version(), f: typeof t.runMiniInspector, errors: r.issues.numErrors }));",
    ].join("\n");
    // cwd "/" and an empty NODE_PATH: a bare import left in the bundle could not resolve.
    const { execFileSync } = await import("node:child_process");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", probe], { cwd: "/", env: { PATH: process.env.PATH ?? "" }, encoding: "utf8" });
    expect(JSON.parse(out)).toEqual({ v: "2.0.0-dev.3.10", f: "function", errors: 1 });
    const text = readFileSync(built, "utf8");
    expect(text).not.toContain(root.replace(/\/$/, ""));
  });

  it("refuses a Node older than 18, naming the version", async () => {
    const toolkit = (await import(join(EXAMPLE, "bin/toolkit.mjs"))) as { checkNode: (v: string) => void };
    expect(() => toolkit.checkNode("16.20.2")).toThrow(/node 16\.20\.2 is too old: the toolkit needs Node 18 or newer/);
    expect(() => toolkit.checkNode("18.0.0")).not.toThrow();
    expect(() => toolkit.checkNode("20.19.0")).not.toThrow();
  });
});

// ---------------------------------------------------------------- running it

interface SummaryRow {
  index: number;
  path: string;
  status: "valid" | "invalid" | "no_result";
  valid: boolean;
  errors: number | null;
  warnings: number | null;
  first_error: string | null;
  inspected: boolean;
  inspect_error: string | null;
  triangles: number | null;
  bytes: number | null;
}

interface Summary {
  schema: string;
  files: number;
  valid: number;
  invalid: number;
  no_result: number;
  inspected: number;
  inspect_failed: number;
  errors: number;
  triangles: number;
  error_codes: Record<string, number>;
  rows: SummaryRow[];
}

interface ExampleRun {
  prepared: PreparedPlan;
  outcome: LocalRunOutcome;
  events: LocalRunEvent[];
  work: string;
}

async function runBatch(dir: string, runId: string, set: Record<string, string> = {}): Promise<ExampleRun> {
  const prepared = preparePlan({ spec: join(dir, "pipeline.yaml"), set, runId, localRunsDir: tempDir(`hpcpipe-bv-${runId}-`) });
  const events: LocalRunEvent[] = [];
  const outcome = await runLocal(prepared, { onEvent: (e) => events.push(e) });
  return { prepared, outcome, events, work: join(outcome.runDir, "work") };
}

describe("examples/batch-validate on the local executor", () => {
  beforeAll(async () => {
    // The example's own toolkit/toolkit.bundle.mjs, from the current sources; writeBatch copies it.
    await buildToolkit();
  }, RUN_TIMEOUT_MS);

  describe("30 models, every 3rd broken (each kind twice)", () => {
    let run: ExampleRun;
    let expected: Expected;
    let summary: Summary;
    beforeAll(async () => {
      const dir = tempDir("hpcpipe-bv-batch-");
      expected = (await writeBatch(dir, 30, { brokenEvery: 3 })).expected;
      run = await runBatch(dir, "batch30");
      summary = JSON.parse(readFileSync(join(run.work, "out/summary.json"), "utf8")) as Summary;
    }, RUN_TIMEOUT_MS);

    it("succeeds (exit 0) although items failed: the map lists them, the aggregate ran", () => {
      const { state } = run.outcome;
      expect(state.error ?? null).toBeNull();
      expect(exitCodeFrom(state)).toBe(ExitCode.OK);
      const broken = expected.models.filter((m) => !m.valid).map((m) => `${MAP}.${m.index}`);
      expect(state.step_states?.[MAP]?.success).toBe(true);
      expect(state.step_states?.[MAP]?.meta.failed_allowed).toEqual(broken);
      expect(state.step_states?.["batch_validate.toolkit"]?.outputs.published).toMatchObject({ node_version: process.version, validator_version: "2.0.0-dev.3.10" });
      expect(state.step_states?.["batch_validate.aggregate"]).toMatchObject({ success: true });
      expect(state.step_states?.["batch_validate.aggregate"]?.outputs.published).toEqual({
        summary_csv: "out/summary.csv",
        summary_json: "out/summary.json",
        models_valid: String(expected.good),
        models_invalid: String(expected.broken),
        models_no_result: "0",
      });
    });

    it("ran packed: the map's array had ceil(30 / 25) = 2 tasks, each item with its own states, in its task's pack file", () => {
      const mapJob = run.prepared.plan.jobs.find((j) => j.shape === "map")?.id;
      const tasks = run.events.filter((e) => e.type === "task-started" && e.job === mapJob);
      expect(tasks).toHaveLength(2);
      const states = readdirSync(join(run.outcome.runDir, "states"));
      expect(states.filter((n) => n.startsWith(`${MAP}.`)).sort()).toEqual([`${MAP}.items-0-24.jsonl`, `${MAP}.items-25-29.jsonl`]);
      const packed = states
        .filter((n) => n.endsWith(".jsonl"))
        .flatMap((n) => readFileSync(join(run.outcome.runDir, "states", n), "utf8").split("\n").filter((l) => l !== ""))
        .map((l) => (JSON.parse(l) as { key: string }).key);
      for (let i = 0; i < 30; i++) {
        for (const key of [`${MAP}.${i}`, `${MAP}.${i}.inspect`, `${MAP}.${i}.validate`]) expect(packed, key).toContain(key);
      }
    });

    it("the summary's counts equal the generator's: valid = good, invalid = broken, triangles, per file", () => {
      expect(summary).toMatchObject({
        schema: "hpcpipe.batch_validate.summary/1",
        files: expected.count,
        valid: expected.good,
        invalid: expected.broken,
        no_result: 0,
        inspected: expected.models.filter((m) => m.inspectable).length,
        triangles: expected.triangles,
      });
      expect(summary.rows.map((r) => [r.index, r.path, r.valid, r.inspected, r.triangles])).toEqual(
        expected.models.map((m) => [m.index, m.path, m.valid, m.inspectable, m.triangles]),
      );
      for (const r of summary.rows) {
        expect(r.bytes, r.path).toBe(readFileSync(join(run.work, r.path)).length);
        if (r.valid) expect(r, r.path).toMatchObject({ status: "valid", errors: 0, first_error: null });
      }
      expect(Object.keys(summary.error_codes)).toEqual(expect.arrayContaining(Object.values(FIRST_ERROR)));
      expect(summary.errors).toBe(Object.values(summary.error_codes).reduce((a, b) => a + b, 0));
    });

    it("writes summary.csv: a header and one row per model, in item order", () => {
      const lines = readFileSync(join(run.work, "out/summary.csv"), "utf8").trimEnd().split("\n");
      expect(lines[0]).toBe(
        "index,path,status,valid,errors,warnings,infos,hints,first_error,inspected,inspect_error,meshes,primitives,vertices,triangles,materials,textures,animations,bytes",
      );
      expect(lines).toHaveLength(31);
      expect(lines[1]).toMatch(/^0,models\/0000-cube\.glb,valid,true,0,0,1,0,,true,,1,1,24,12,1,0,0,\d+$/);
      // A message with commas is quoted.
      expect(lines[3]).toMatch(/^2,models\/0002-truncated\.glb,invalid,false,1,.*,"import_model failed \(STEP_FAILED, exit 4\): cannot read the glTF binary: not a valid GLB: truncated: /);
    });

    it("a broken model is a failed item with a clear error, by kind; its validation report is still written", () => {
      const { state } = run.outcome;
      for (const m of expected.models.filter((x) => !x.valid)) {
        const kind = m.kind as BrokenKind;
        const item = state.step_states?.[`${MAP}.${m.index}`];
        expect(item, m.path).toMatchObject({
          success: false,
          failure: "STEP_FAILED",
          error: `${MAP}.${m.index}.validate: command exited with status 1`,
          meta: { failed_step: `${MAP}.${m.index}.validate`, item: m.path },
        });
        const validate = state.step_states?.[`${MAP}.${m.index}.validate`];
        const published = validate?.outputs.published as Record<string, string>;
        expect(published.validation_error, m.path).toMatch(new RegExp(`^${FIRST_ERROR[kind]}`));
        expect(published.validation_report).toBe(`out/validation/${m.index}.json`);
        // A packed item's stderr is its section of its slot's log (meta.log names the slot).
        const slot = slotLogOf(validate?.meta);
        expect(slot, m.path).toMatch(/^logs\/.+\.s\d+$/);
        const stderr = logSection(readFileSync(join(run.outcome.runDir, `${slot ?? ""}.err`)), `${MAP}.${m.index}.validate`)?.toString("utf8");
        expect(stderr).toMatch(new RegExp(`^validate: ${m.path}: invalid glTF: \\d+ error\\(s\\), \\d+ warning\\(s\\): ${FIRST_ERROR[kind]}`));
        const report = JSON.parse(readFileSync(join(run.work, `out/validation/${m.index}.json`), "utf8")) as { issues: { numErrors: number; messages: { code: string }[] } };
        expect(report.issues.numErrors).toBeGreaterThan(0);
        expect(report.issues.messages.map((x) => x.code)).toContain(FIRST_ERROR[kind]);
        expect(summary.rows[m.index]?.first_error).toMatch(new RegExp(`^${FIRST_ERROR[kind]}: `));

        // The inspector: it reads index_out_of_range (only the validator objects); the rest fail at import_model.
        const inspect = state.step_states?.[`${MAP}.${m.index}.inspect`];
        if (m.inspectable) {
          expect(inspect?.success, m.path).toBe(true);
          expect(existsSync(join(run.work, `out/reports/${m.index}.json`))).toBe(true);
        } else {
          expect(inspect, m.path).toMatchObject({ success: false, error: "command exited with status 4" });
          expect((inspect?.outputs.published as Record<string, string>).inspect_error).toMatch(/^import_model failed \(STEP_FAILED, exit 4\): /);
          const why = JSON.parse(readFileSync(join(run.work, `out/reports/${m.index}.error.json`), "utf8")) as Record<string, unknown>;
          expect(why).toMatchObject({ model: m.path, index: m.index, failed_step: "import_model", failure: "STEP_FAILED" });
          expect(existsSync(join(run.work, `out/reports/${m.index}.json`))).toBe(false);
          expect(summary.rows[m.index]?.inspect_error).toBe(why.error);
        }
      }
    });

    it("a good model is a successful item with the inspector's report and a clean validation", () => {
      const { state } = run.outcome;
      for (const m of expected.models.filter((x) => x.valid)) {
        expect(state.step_states?.[`${MAP}.${m.index}`]?.success, m.path).toBe(true);
        const report = JSON.parse(readFileSync(join(run.work, `out/reports/${m.index}.json`), "utf8")) as { schema: string; model: { path: string }; counts: { triangles: number } };
        expect(report).toMatchObject({ schema: "hpcpipe.mini_inspector.report/1", model: { path: m.path }, counts: { triangles: m.triangles } });
        const validation = JSON.parse(readFileSync(join(run.work, `out/validation/${m.index}.json`), "utf8")) as { uri: string; issues: { numErrors: number } };
        expect(validation).toMatchObject({ uri: m.path, issues: { numErrors: 0 } });
      }
    });
  });

  it(
    "a copy without its toolkit is refused before anything runs, naming the missing file",
    async () => {
      const dir = tempDir("hpcpipe-bv-notoolkit-");
      await writeBatch(dir, 3, { brokenEvery: 0 });
      rmSync(join(dir, "toolkit"), { recursive: true });
      const runs = tempDir("hpcpipe-bv-notoolkit-runs-");
      expect(() => preparePlan({ spec: join(dir, "pipeline.yaml"), runId: "notoolkit", localRunsDir: runs })).toThrow(
        /pipeline\.yaml:\d+:\d+: bundle\[1\]: expected an existing file or directory, but \S+\/toolkit\/toolkit\.bundle\.mjs does not exist/,
      );
      expect(readdirSync(runs)).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "a generated copy runs from its own directory, wherever it is: the toolkit travels in the bundle",
    async () => {
      const dir = tempDir("hpcpipe-bv-copy-");
      await writeBatch(dir, 2, { brokenEvery: 0 });
      expect(existsSync(join(dir, "toolkit/toolkit.bundle.mjs"))).toBe(true);
      const { outcome } = await runBatch(dir, "copy");
      expect(exitCodeFrom(outcome.state)).toBe(ExitCode.OK);
      expect(existsSync(join(outcome.runDir, "work/toolkit/toolkit.bundle.mjs"))).toBe(true);
      const summary = JSON.parse(readFileSync(join(outcome.runDir, "work/out/summary.json"), "utf8")) as Summary;
      expect(summary).toMatchObject({ files: 2, valid: 2, invalid: 0, triangles: 32 });
    },
    RUN_TIMEOUT_MS,
  );
});
