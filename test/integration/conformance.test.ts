/**
 * Conformance through the real pieces: the same YAML pipeline run by the
 * in-process core (CommandStep with a workDir) and compiled (compiler,
 * Handlebars templates, bash job wrapper) and run by the local executor,
 * whose state files are merged, gives the same step_states keys, the same
 * outcome per key, the same root result and the same exit code.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExitCode, exitCodeFrom } from "../../src/core/index.js";
import type { CompletedState } from "../../src/core/index.js";
import { outcomeKinds, runCompiled, runInProcess, tempBase, writeYaml } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempBase("hpcpipe-conformance-"));
});
afterEach(() => cleanup());

type Doc = Record<string, unknown>;
const step = (name: string, run: string, extra: Doc = {}): Doc => ({ step: name, run, ...extra });

interface Case {
  name: string;
  doc: Doc;
  /** What the root must end as, so each case really tests what its name says. */
  expected: ExitCode;
  /** Keys that must be present in both results (the heart of the case). */
  mustHave?: Record<string, string>;
  /** False where the two runners word the error differently (documented with the case). */
  sameError?: boolean;
  /** Files the case needs next to the spec. */
  files?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: "a sequence whose steps publish values for the next ones succeeds",
    doc: {
      name: "seq",
      context: { model: "models/cube.glb", size: 64 },
      steps: [
        step("prep", 'mkdir -p out && printf "%s\\n" "$model" > out/scene.txt && echo "scene=out/scene.txt" >> "$HPCPIPE_PUBLISH"', {
          requires: ["model"],
          provides: ["scene"],
          outputs: ["out/scene.txt"],
        }),
        step("render", 'test "$scene" = out/scene.txt && test -f "$scene" && echo "image=out/$size.png" >> "$HPCPIPE_PUBLISH" && touch "out/$size.png"', {
          requires: ["scene", "size"],
          provides: ["image"],
          outputs: ["out/64.png"],
        }),
        step("report", 'test "$image" = out/64.png && test "$model" = models/cube.glb', { requires: ["image", "model"] }),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "seq.prep": "ok", "seq.render": "ok", "seq.report": "ok" },
  },
  {
    name: "a parallel group whose children publish disjoint keys feeds a gathering step",
    doc: {
      name: "par",
      steps: [
        step("prep", "mkdir -p out/views"),
        {
          group: "views",
          parallel: true,
          throttle: 3,
          steps: ["front", "side", "top"].map((v) =>
            step(v, `echo ${v} > out/views/${v}.txt && echo "thumb_${v}=out/views/${v}.txt" >> "$HPCPIPE_PUBLISH"`, { provides: [`thumb_${v}`] }),
          ),
        },
        step("gather", 'cat "$thumb_front" "$thumb_side" "$thumb_top" > out/all.txt && test "$(wc -l < out/all.txt)" -eq 3', {
          requires: ["thumb_front", "thumb_side", "thumb_top"],
          outputs: ["out/all.txt"],
        }),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "par.views": "ok", "par.views.front": "ok", "par.views.side": "ok", "par.views.top": "ok", "par.gather": "ok" },
  },
  {
    name: "a pipeline nested inside a parallel group runs whole, its steps passing values along",
    doc: {
      name: "nest",
      steps: [
        {
          group: "g",
          parallel: true,
          throttle: 2,
          steps: [
            step("solo", "true"),
            {
              pipeline: "inner",
              steps: [
                step("a", 'echo "mid=from-a" >> "$HPCPIPE_PUBLISH"', { provides: ["mid"] }),
                step("b", 'test "$mid" = from-a', { requires: ["mid"] }),
              ],
            },
          ],
        },
        step("after", "true"),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "nest.g": "ok", "nest.g.inner": "ok", "nest.g.inner.a": "ok", "nest.g.inner.b": "ok", "nest.after": "ok" },
  },
  {
    name: "a failing step inside a pipeline nested in a group fails the group and stops what follows",
    doc: {
      name: "nestfail",
      steps: [
        {
          group: "g",
          parallel: true,
          throttle: 2,
          steps: [step("solo", "true"), { pipeline: "inner", steps: [step("a", "true"), step("b", "exit 3"), step("c", "true")] }],
        },
        step("after", "true"),
      ],
    },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "nestfail.g": "STEP_FAILED", "nestfail.g.inner": "STEP_FAILED", "nestfail.g.inner.b": "STEP_FAILED", "nestfail.g.solo": "ok" },
  },
  {
    name: "a map over inline items runs its steps once per item, then an aggregating step",
    doc: {
      name: "mapped",
      steps: [
        step("setup", "mkdir -p out/m"),
        {
          map: "each",
          items: ["a.glb", "b.glb", "c.glb"],
          as: "model",
          throttle: 3,
          steps: [step("check", 'printf "%s %s\\n" "$model" "$HPCPIPE_TASK" > "out/m/$model.txt"', { requires: ["model"] }), step("second", 'test -f "out/m/$model.txt"', { requires: ["model"] })],
        },
        step("aggregate", 'cat out/m/*.txt | sort > out/sum.txt && echo "n=$(wc -l < out/sum.txt)" >> "$HPCPIPE_PUBLISH" && grep -qx "b.glb 1" out/sum.txt', {
          provides: ["n"],
        }),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "mapped.each": "ok", "mapped.each.0": "ok", "mapped.each.2.check": "ok", "mapped.each.1.second": "ok", "mapped.aggregate": "ok" },
  },
  {
    name: "a map over an items file binds each line to its key",
    files: { "list.txt": "# models\nx.glb\n\ny.glb\n" },
    doc: {
      name: "fromfile",
      steps: [{ map: "each", items_file: "list.txt", throttle: 2, steps: [step("check", 'case "$item" in x.glb|y.glb) ;; *) exit 9 ;; esac', { requires: ["item"] })] }],
    },
    expected: ExitCode.OK,
    mustHave: { "fromfile.each.0.check": "ok", "fromfile.each.1.check": "ok" },
  },
  {
    name: "a failing step with continue_on_error lets the pipeline go on and succeed",
    doc: {
      name: "coe",
      steps: [step("a", "true"), step("flaky", "exit 5", { continue_on_error: true }), step("c", "true")],
    },
    expected: ExitCode.OK,
    mustHave: { "coe.a": "ok", "coe.flaky": "STEP_FAILED", "coe.c": "ok" },
  },
  {
    name: "a failing group child with continue_on_error lets the group and its dependents succeed",
    doc: {
      name: "gcoe",
      steps: [
        { group: "g", parallel: true, throttle: 2, steps: [step("good", "true"), step("bad", "exit 2", { continue_on_error: true })] },
        step("after", "true"),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "gcoe.g": "ok", "gcoe.g.bad": "STEP_FAILED", "gcoe.after": "ok" },
  },
  {
    name: "a failing nested pipeline with continue_on_error lets the pipeline go on and succeed",
    doc: {
      name: "block",
      steps: [{ pipeline: "risky", continue_on_error: true, steps: [step("r1", "true"), step("r2", "exit 7", { fuse: false }), step("r3", "true")] }, step("c", "true", { fuse: false })],
    },
    expected: ExitCode.OK,
    mustHave: { "block.risky": "STEP_FAILED", "block.risky.r2": "STEP_FAILED", "block.c": "ok" },
  },
  {
    name: "a command killed by a signal fails its step",
    doc: { name: "killed", steps: [step("a", "true"), step("b", "kill -KILL $$"), step("c", "true", { fuse: false })] },
    expected: ExitCode.STEP_FAILED,
    // In-process: "command killed by signal SIGKILL" (meta.reason SIGNAL); the job wrapper: "command exited with status 137"
    // (bash's wait status). Same kind and exit code; the wording differs (reported to the lead).
    sameError: false,
    mustHave: { "killed.b": "STEP_FAILED" },
  },
  {
    name: "a map with continue_on_item_error succeeds when an item fails, and the next step runs",
    doc: {
      name: "items",
      steps: [
        {
          map: "each",
          items: ["ok1", "broken", "ok2", "ok3"],
          throttle: 4,
          continue_on_item_error: true,
          steps: [step("check", 'test "$item" != broken', { requires: ["item"] }), step("after_check", "true")],
        },
        step("aggregate", "true"),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "items.each": "ok", "items.each.1": "STEP_FAILED", "items.each.1.check": "STEP_FAILED", "items.each.3.after_check": "ok", "items.aggregate": "ok" },
  },
  {
    name: "a failing map item without continue_on_item_error fails the map and stops what follows",
    doc: {
      name: "itemfail",
      steps: [
        { map: "each", items: ["ok1", "broken", "ok2"], throttle: 3, steps: [step("check", 'test "$item" != broken', { requires: ["item"] })] },
        step("aggregate", "true"),
      ],
    },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "itemfail.each": "STEP_FAILED", "itemfail.each.1.check": "STEP_FAILED", "itemfail.each.0.check": "ok" },
  },
  {
    name: "a failing step fails the pipeline with STEP_FAILED and the steps after it do not run",
    doc: { name: "fails", steps: [step("a", "true"), step("b", "echo about to fail >&2; exit 3"), step("c", "true"), step("d", "true", { fuse: false })] },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "fails.a": "ok", "fails.b": "STEP_FAILED" },
  },
  {
    name: "a step that leaves a declared output missing fails validation",
    doc: { name: "noout", steps: [step("make", "mkdir -p out && touch out/present.txt", { outputs: ["out/present.txt", "out/missing.txt"] }), step("next", "true")] },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "noout.make": "STEP_FAILED" },
  },
  {
    name: "a step that does not publish a declared provide fails validation",
    doc: { name: "nopub", steps: [step("make", 'echo "other=1" >> "$HPCPIPE_PUBLISH"', { provides: ["scene"] }), step("use", "true", { requires: ["scene"] })] },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "nopub.make": "STEP_FAILED" },
  },
  {
    name: "a published line that is not NAME=value fails the step",
    doc: { name: "badpub", steps: [step("make", 'echo "not a pair" >> "$HPCPIPE_PUBLISH"'), step("next", "true")] },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "badpub.make": "STEP_FAILED" },
    // The job wrapper says "validation failed: line 1 of the published values is not NAME=value ..." as
    // docs/runtime-contract.md asks; in-process says "invalid published value ($HPCPIPE_PUBLISH): ..." (reported).
    sameError: false,
  },
  {
    name: "a tolerated missing provide leaves its dependent with a missing requirement (exit 1)",
    doc: {
      name: "missreq",
      steps: [step("make", "true", { provides: ["scene"], continue_on_error: true }), step("use", 'echo "$scene"', { requires: ["scene"] }), step("last", "true")],
    },
    expected: ExitCode.MISSING_REQUIREMENT,
    mustHave: { "missreq.make": "STEP_FAILED", "missreq.use": "MISSING_REQUIREMENT" },
  },
];

/** Published values of every successful leaf, to compare what each step handed on. */
function published(states: Record<string, CompletedState> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(states ?? {})) {
    const p = (s.outputs as { published?: unknown }).published;
    if (s.success && p !== undefined) out[k] = p;
  }
  return out;
}

/** An error up to and including "validation failed:" when it is a validation failure, else the whole error. */
function errorHead(error: string | null): string | null {
  if (error === null) return null;
  const at = error.indexOf("validation failed:");
  return at < 0 ? error : error.slice(0, at + "validation failed:".length);
}

/** Runs the case both ways and compares everything the two runners must agree on. */
async function checkConformance(c: Case): Promise<void> {
  for (const [name, text] of Object.entries(c.files ?? {})) writeFileSync(join(dir, name), text);
  const spec = writeYaml(dir, c.doc.name as string, c.doc);

  const core = await runInProcess(spec, join(dir, "inprocess"));
  const { outcome } = await runCompiled({ spec, localRunsDir: join(dir, "runs"), runId: "conformance", cpus: 4 });
  const local = outcome.state;

  // The case tests what it says.
  expect(exitCodeFrom(core), core.error ?? "").toBe(c.expected);
  for (const [key, kind] of Object.entries(c.mustHave ?? {})) expect(outcomeKinds(core.step_states)[key], key).toBe(kind);

  // Same keys and outcomes; the executor's extra not_run states stand for steps the core never reached.
  expect(outcomeKinds(local.step_states, { withoutNotRun: true })).toEqual(outcomeKinds(core.step_states));
  expect(local.success).toBe(core.success);
  expect(local.failure ?? null).toBe(core.failure ?? null);
  expect(exitCodeFrom(local)).toBe(exitCodeFrom(core));
  expect(local.meta.failed_step).toEqual(core.meta.failed_step);
  // The wording of validation errors is free after "validation failed:" (docs/runtime-contract.md); the rest is the same text.
  if (c.sameError !== false) expect(errorHead(local.error)).toEqual(errorHead(core.error));
  expect(published(local.step_states)).toEqual(published(core.step_states));

  // Every not_run state is a step the core never ran, stopped by a dependency that can never be satisfied.
  for (const [key, s] of Object.entries(local.step_states ?? {})) {
    if (s.meta.not_run !== true) continue;
    expect(core.step_states?.[key], key).toBeUndefined();
    expect(s.meta.slurm_reason, key).toBe("DependencyNeverSatisfied");
  }
}

describe("conformance of the in-process core and the compiled plan on the local executor", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    await checkConformance(c);
  });
});

/**
 * Cases that once diverged: a group's or map's own continue_on_error (now an
 * afterany hand-over), and a tolerated sub-pipeline inside one array task
 * (now refused at compile time: the task runs its steps as a flat sequence).
 */
const arrayTolerance: Array<Case & { bug: string }> = [
  {
    // src/compiler/units.ts unitsOf returns a parallel group as a plain "group" unit and ignores the group's own
    // continue_on_error (only sequential composites become an afterany "block"), so its dependents are chained with
    // afterok and never run after a child fails (not_run, DependencyNeverSatisfied); in-process the pipeline goes on.
    bug: "parallel group continue_on_error ignored by the compiler",
    name: "a failing parallel group with continue_on_error lets the pipeline go on and succeed",
    doc: {
      name: "gcoe",
      steps: [{ group: "g", parallel: true, continue_on_error: true, throttle: 2, steps: [step("a", "true"), step("b", "exit 3")] }, step("after", "true")],
    },
    expected: ExitCode.OK,
    mustHave: { "gcoe.g": "STEP_FAILED", "gcoe.after": "ok" },
  },
  {
    // The same for a map's own continue_on_error (unitsOf returns a "map" unit; addArrayJobs always hands on afterok).
    bug: "map continue_on_error ignored by the compiler",
    name: "a failing map with continue_on_error (not continue_on_item_error) lets the pipeline go on and succeed",
    doc: {
      name: "mcoe",
      steps: [{ map: "m", items: ["x", "y"], throttle: 2, continue_on_error: true, steps: [step("a", 'test "$item" = x', { requires: ["item"] })] }, step("after", "true")],
    },
    expected: ExitCode.OK,
    mustHave: { "mcoe.m": "STEP_FAILED", "mcoe.after": "ok" },
  },
  {
    // Inside one array task (a map item or a group child pipeline) src/compiler/units.ts taskLeaves flattens nested
    // pipelines into a list of steps and drops their continue_on_error, so the wrapper (templates/lib.sh hp_step) stops
    // the task body at the first failed step of a tolerated sub-pipeline; in-process the item goes on (c runs).
    bug: "continue_on_error of a sub-pipeline inside an array task is lost",
    name: "a failing sub-pipeline with continue_on_error inside a map item lets the item go on",
    doc: {
      name: "mapnestcoe",
      steps: [{ map: "m", items: ["x", "y"], throttle: 2, steps: [{ pipeline: "p", continue_on_error: true, steps: [step("b", 'test "$item" = x', { requires: ["item"] })] }, step("c", "true")] }],
    },
    expected: ExitCode.OK,
    mustHave: { "mapnestcoe.m.1.p": "STEP_FAILED", "mapnestcoe.m.1.c": "ok", "mapnestcoe.m": "ok" },
  },
  {
    bug: "continue_on_error of a sub-pipeline inside an array task is lost",
    name: "a failing sub-pipeline with continue_on_error inside a group child pipeline lets the child go on",
    doc: {
      name: "gchildnest",
      steps: [
        { group: "g", parallel: true, throttle: 2, steps: [step("a", "true"), { pipeline: "p", steps: [{ pipeline: "q", continue_on_error: true, steps: [step("b", "exit 4")] }, step("c", "true")] }] },
        step("after", "true"),
      ],
    },
    expected: ExitCode.OK,
    mustHave: { "gchildnest.g.p.q": "STEP_FAILED", "gchildnest.g.p.c": "ok", "gchildnest.after": "ok" },
  },
];

describe("conformance of tolerated arrays, and what the compiler refuses", () => {
  const bigPublish: Case = {
    name: "a step publishing more than 128 KiB fails",
    doc: { name: "bigpub", steps: [step("s", 'printf "big=%0200000d\\n" 0 >> "$HPCPIPE_PUBLISH"', { provides: ["big"] })] },
    expected: ExitCode.STEP_FAILED,
    mustHave: { "bigpub.s": "STEP_FAILED" },
    sameError: false,
  };

  it("compiled: a step publishing more than 128 KiB fails validation, as docs/runtime-contract.md says", async () => {
    const { outcome } = await runCompiled({ spec: writeYaml(dir, "bigpub", bigPublish.doc), localRunsDir: join(dir, "runs"), runId: "r1" });
    expect(outcome.state.step_states?.["bigpub.s"]?.error).toMatch(/^validation failed: published values exceed 131072 bytes/);
  });

  it("in-process, same as compiled: a step publishing more than 128 KiB fails (one cap for both)", async () => {
    await checkConformance(bigPublish);
  });

  it.each(arrayTolerance.map((c) => [c.name, c] as const))("in-process: %s", async (_name, c) => {
    const core = await runInProcess(writeYaml(dir, c.doc.name as string, c.doc), join(dir, "inprocess"));
    expect(exitCodeFrom(core), core.error ?? "").toBe(c.expected);
    for (const [key, kind] of Object.entries(c.mustHave ?? {})) expect(outcomeKinds(core.step_states)[key], key).toBe(kind);
  });

  for (const c of arrayTolerance.slice(0, 2)) {
    it(`compiled, same as in-process: ${c.name}`, async () => {
      await checkConformance(c);
    });
  }

  for (const c of arrayTolerance.slice(2)) {
    it(`compiled: refused with a clear error naming the sub-pipeline, because ${c.bug}: ${c.name}`, async () => {
      await expect(runCompiled({ spec: writeYaml(dir, c.doc.name as string, c.doc), localRunsDir: join(dir, "runs"), runId: "r1" })).rejects.toThrow(
        /continue_on_error on a pipeline inside .* is not supported on a cluster yet/,
      );
    });
  }
});
