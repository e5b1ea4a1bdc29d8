/**
 * Golden plans: every example spec compiled for every shipped cluster config
 * with a fixed run id (and, for the local executor, a fixed run directory)
 * renders byte-for-byte the bundle stored under
 * test/fixtures/golden-plans/<spec>.<cluster>/, and every rendered script
 * passes `bash -n` and `shellcheck -s bash`.
 *
 * Regenerate with: UPDATE_GOLDEN=1 npx vitest run test/integration/golden-plans.test.ts
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { listTree } from "./helpers.js";

const ROOT = join(import.meta.dirname, "..", "..");
const GOLDEN_DIR = join(ROOT, "test", "fixtures", "golden-plans");
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const RUN_ID = "golden";
const LOCAL_RUNS_DIR = "/var/tmp/hpcpipe-golden";
const CLUSTERS = ["local", "localcluster", "example-university"] as const;
const SPECS = readdirSync(join(ROOT, "examples", "specs"))
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => f.replace(/\.yaml$/, ""));

/** The wrapper library is copied verbatim into every bundle: one golden copy for all of them. */
const LIB_PATH = "scripts/lib.sh";
const LIB_GOLDEN = join(GOLDEN_DIR, "lib.sh");

function compile(spec: string, cluster: string): CompiledPlan {
  return preparePlan({ spec: join(ROOT, "examples", "specs", `${spec}.yaml`), cluster, runId: RUN_ID, localRunsDir: LOCAL_RUNS_DIR }).plan;
}

/** The plan's job graph without the script texts (those are compared as files): shows arrays, dependencies and fusions in review. */
function planSummary(plan: CompiledPlan): string {
  const { files: _files, jobs, tree: _tree, ...rest } = plan;
  const summary = {
    ...rest,
    jobs: jobs.map(({ script: _script, bodies, ...job }) => ({ ...job, bodies: bodies.map((b) => ({ unitKey: b.unitKey, steps: b.steps.map((s) => s.key) })) })),
  };
  return `${JSON.stringify(summary, null, 2)}\n`;
}

/** Every file a bundle holds, relative to the run directory, plus plan.json. */
function bundleOf(plan: CompiledPlan): Map<string, string> {
  const files = new Map<string, string>(Object.entries(plan.files));
  for (const job of plan.jobs) files.set(job.scriptPath, job.script);
  files.set("plan.json", planSummary(plan));
  return new Map([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const ci = process.env.CI?.toLowerCase() === "true" || process.env.CI === "1";
const shellcheckAvailable = spawnSync("shellcheck", ["--version"]).status === 0;
if (!shellcheckAvailable && !ci) {
  console.warn(
    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n" +
      "!! shellcheck is not installed: the golden plans' scripts are NOT shell-checked.\n" +
      "!! Install it (scripts/install-test-tools.sh). Under CI=true this fails.\n" +
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
  );
}

describe("golden plans of the example specs on every shipped cluster config", () => {
  it("the example specs and cluster configs are the expected ones", () => {
    expect(SPECS).toEqual(["batch-map", "chain", "thumbnail-shape"]);
    for (const c of CLUSTERS) expect(existsSync(join(ROOT, "cluster-configs", `${c}.yaml`)), c).toBe(true);
  });

  for (const spec of SPECS) {
    for (const cluster of CLUSTERS) {
      const name = `${spec}.${cluster}`;
      it(`${name}: every file of the bundle matches its golden file byte for byte`, () => {
        const plan = compile(spec, cluster);
        if (cluster === "local") expect(plan.layout.runDir).toBe(`${LOCAL_RUNS_DIR}/${plan.pipeline}/${RUN_ID}`);
        const bundle = bundleOf(plan);
        const dir = join(GOLDEN_DIR, name);
        const lib = bundle.get(LIB_PATH);
        expect(lib, "the bundle carries the wrapper library").toBeDefined();
        bundle.delete(LIB_PATH);
        if (UPDATE) {
          rmSync(dir, { recursive: true, force: true });
          for (const [path, text] of bundle) {
            mkdirSync(dirname(join(dir, path)), { recursive: true });
            writeFileSync(join(dir, path), text);
          }
          writeFileSync(LIB_GOLDEN, lib ?? "");
          return;
        }
        if (!existsSync(dir)) throw new Error(`golden directory ${dir} is missing; run with UPDATE_GOLDEN=1 to create it`);
        // The same set of files: nothing missing, nothing stale.
        const stored = listTree(dir).filter((p) => statSync(join(dir, p)).isFile());
        expect(stored).toEqual([...bundle.keys()]);
        for (const [path, text] of bundle) expect(text, `${name}/${path}`).toBe(readFileSync(join(dir, path), "utf8"));
        expect(lib, `${name}/${LIB_PATH}`).toBe(readFileSync(LIB_GOLDEN, "utf8"));
      });

      it(`${name}: compiling again gives identical bytes`, () => {
        const a = bundleOf(compile(spec, cluster));
        const b = bundleOf(compile(spec, cluster));
        expect([...b]).toEqual([...a]);
      });

      it(`${name}: every rendered script passes bash -n and shellcheck -s bash`, () => {
        if (ci) expect(shellcheckAvailable, "shellcheck must be installed under CI (scripts/install-test-tools.sh)").toBe(true);
        const scripts = [...bundleOf(compile(spec, cluster))].filter(([path]) => path.startsWith("scripts/"));
        expect(scripts.some(([p]) => p.endsWith(".sbatch"))).toBe(true);
        expect(scripts.map(([p]) => p)).toContain("scripts/submit.sh");
        for (const [path, text] of scripts) {
          const syntax = spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });
          expect(syntax.stderr, `${name}/${path}: bash -n`).toBe("");
          expect(syntax.status, `${name}/${path}: bash -n`).toBe(0);
          if (!shellcheckAvailable) continue;
          const sc = spawnSync("shellcheck", ["-s", "bash", "-"], { input: text, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
          expect(sc.stdout + sc.stderr, `${name}/${path}: shellcheck`).toBe("");
          expect(sc.status, `${name}/${path}: shellcheck`).toBe(0);
        }
      });
    }
  }
});
