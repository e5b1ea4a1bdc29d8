import { describe, expect, it } from "vitest";
import { CompletedState, ExitCode, exitCodeFrom, Pipeline, StepGroup } from "../../src/core/index.js";
import type { Context } from "../../src/core/index.js";
import { fnStep, stateAt, tracedStep } from "./helpers.js";
import type { Trace } from "./helpers.js";

/** The plan's example: scene_prep -> analysis -> reporting -> cleanup. */
function miniInspector(trace: Trace): Pipeline {
  const scenePrep = new Pipeline({
    name: "scene_prep",
    steps: [tracedStep("prepare_scene", trace, { provides: ["scene"] }), tracedStep("import_model", trace, { requires: ["scene"], provides: ["model"] })],
  });
  const analysis = new Pipeline({
    name: "analysis",
    steps: [
      tracedStep("collect_meshes", trace, { requires: ["model"], provides: ["meshes"] }),
      tracedStep("compute_counts", trace, { requires: ["meshes"], provides: ["counts"] }),
    ],
  });
  const reporting = new Pipeline({
    name: "reporting",
    steps: [
      tracedStep("assemble_report", trace, { requires: ["counts"], provides: ["report"] }),
      tracedStep("write_json", trace, { requires: ["report"], provides: ["report_path"] }),
    ],
  });
  const cleanup = new Pipeline({ name: "cleanup", steps: [tracedStep("cleanup_scene", trace, { requires: ["scene"] })] });
  return new Pipeline({ name: "mini_inspector_e2e", steps: [scenePrep, analysis, reporting, cleanup] });
}

describe("nested pipelines", () => {
  it("a pipeline of pipelines runs every leaf step in depth-first order", async () => {
    const trace: Trace = [];
    const result = await miniInspector(trace).run({});
    expect(result.success).toBe(true);
    expect(trace.filter((t) => t.startsWith("start:"))).toEqual([
      "start:prepare_scene",
      "start:import_model",
      "start:collect_meshes",
      "start:compute_counts",
      "start:assemble_report",
      "start:write_json",
      "start:cleanup_scene",
    ]);
  });

  it("step_states keys are the dot-joined path from the root", async () => {
    const context: Context = {};
    await miniInspector([]).run(context);
    expect(Object.keys(context.step_states ?? {}).sort()).toEqual(
      [
        "mini_inspector_e2e",
        "mini_inspector_e2e.analysis",
        "mini_inspector_e2e.analysis.collect_meshes",
        "mini_inspector_e2e.analysis.compute_counts",
        "mini_inspector_e2e.cleanup",
        "mini_inspector_e2e.cleanup.cleanup_scene",
        "mini_inspector_e2e.reporting",
        "mini_inspector_e2e.reporting.assemble_report",
        "mini_inspector_e2e.reporting.write_json",
        "mini_inspector_e2e.scene_prep",
        "mini_inspector_e2e.scene_prep.import_model",
        "mini_inspector_e2e.scene_prep.prepare_scene",
      ].sort(),
    );
  });

  it("a pipeline's root result carries the step_states of every descendant, intermediate pipelines included", async () => {
    const result = await miniInspector([]).run({});
    const keys = Object.keys(result.step_states ?? {});
    expect(keys).toHaveLength(11);
    expect(keys).toContain("mini_inspector_e2e.analysis");
    expect(keys).toContain("mini_inspector_e2e.reporting.write_json");
    expect(keys).not.toContain("mini_inspector_e2e");
    for (const state of Object.values(result.step_states ?? {})) expect(state).toBeInstanceOf(CompletedState);
  });

  it("the root result's step_states exclude unrelated entries already in the context", async () => {
    const context: Context = { step_states: { other_root: CompletedState.ok(), "other_root.x": CompletedState.ok() } };
    const result = await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run(context);
    expect(Object.keys(result.step_states ?? {})).toEqual(["p.a"]);
    expect(Object.keys(context.step_states ?? {}).sort()).toEqual(["other_root", "other_root.x", "p", "p.a"]);
  });

  it("two steps with the same name in different sub-pipelines do not collide", async () => {
    const context: Context = {};
    const root = new Pipeline({
      name: "root",
      steps: [
        new Pipeline({ name: "pre", steps: [fnStep("cleanup", () => ({ who: "pre" }))] }),
        new Pipeline({ name: "post", steps: [fnStep("cleanup", () => ({ who: "post" }))] }),
      ],
    });
    await root.run(context);
    expect(stateAt(context, "root.pre.cleanup").outputs).toEqual({ who: "pre" });
    expect(stateAt(context, "root.post.cleanup").outputs).toEqual({ who: "post" });
  });

  it("deep nesting (five levels) namespaces the leaf under every ancestor", async () => {
    let inner: Pipeline = new Pipeline({ name: "l5", steps: [fnStep("leaf", (c) => void (c.deep = true), { provides: ["deep"] })] });
    for (const name of ["l4", "l3", "l2"]) inner = new Pipeline({ name, steps: [inner] });
    const root = new Pipeline({ name: "l1", steps: [inner] });
    const context: Context = {};
    const result = await root.run(context);
    expect(result.success).toBe(true);
    expect(context.deep).toBe(true);
    expect(stateAt(context, "l1.l2.l3.l4.l5.leaf").success).toBe(true);
    expect(Object.keys(result.step_states ?? {}).sort()).toEqual(["l1.l2", "l1.l2.l3", "l1.l2.l3.l4", "l1.l2.l3.l4.l5", "l1.l2.l3.l4.l5.leaf"]);
  });

  it("a nested failure keeps the root cause's kind and names the deepest failed step", async () => {
    const trace: Trace = [];
    const root = new Pipeline({
      name: "root",
      steps: [
        new Pipeline({
          name: "outer",
          steps: [
            new Pipeline({
              name: "inner",
              steps: [
                fnStep("boom", () => {
                  throw new Error("deep trouble");
                }),
              ],
            }),
            tracedStep("after_inner", trace),
          ],
        }),
        tracedStep("after_outer", trace),
      ],
    });
    const context: Context = {};
    const result = await root.run(context);
    expect(trace).toEqual([]);
    expect(result.failure).toBe("STEP_EXCEPTION");
    expect(exitCodeFrom(result)).toBe(ExitCode.STEP_EXCEPTION);
    expect(result.meta.failed_step).toBe("root.outer.inner.boom");
    expect(result.error).toBe("root.outer.inner.boom: Error: deep trouble");
    expect(stateAt(context, "root.outer").meta.failed_step).toBe("root.outer.inner.boom");
    expect(stateAt(context, "root.outer").failure).toBe("STEP_EXCEPTION");
    expect(stateAt(context, "root.outer.inner").failure).toBe("STEP_EXCEPTION");
  });

  it("a nested validation failure surfaces at the root as STEP_FAILED with the leaf's key", async () => {
    const root = new Pipeline({ name: "root", steps: [new Pipeline({ name: "sub", steps: [fnStep("lazy", () => {}, { provides: ["thing"] })] })] });
    const result = await root.run({});
    expect(result.failure).toBe("STEP_FAILED");
    expect(result.meta.failed_step).toBe("root.sub.lazy");
    expect(result.error).toContain("did not provide 'thing'");
  });

  it("a nested pipeline marked continue_on_error lets its parent go on", async () => {
    const trace: Trace = [];
    const root = new Pipeline({
      name: "root",
      steps: [
        new Pipeline({ name: "optional", continue_on_error: true, steps: [fnStep("x", () => CompletedState.fail("no"))] }),
        tracedStep("next", trace),
      ],
    });
    const result = await root.run({});
    expect(result.success).toBe(true);
    expect(result.meta.failed_allowed).toEqual(["root.optional"]);
    expect(trace).toEqual(["start:next", "end:next"]);
  });

  it("a sub-pipeline that already succeeded is skipped as a unit when its idempotent parent reruns with it", async () => {
    let runs = 0;
    const sub = new Pipeline({ name: "sub", steps: [fnStep("count", () => void (runs += 1), { idempotent: false })] });
    const root = new Pipeline({ name: "root", idempotent: false, steps: [sub] });
    const context: Context = {};
    await root.run(context);
    await root.run(context);
    // The leaf is not idempotent, but its idempotent pipeline succeeded with the same definition.
    expect(runs).toBe(1);
  });

  it("changing a child's definition changes its pipeline's signature, so the pipeline is not skipped", async () => {
    let runs = 0;
    const make = (version: string): Pipeline =>
      new Pipeline({ name: "root", idempotent: false, steps: [new Pipeline({ name: "sub", steps: [fnStep("a", () => void (runs += 1), { version })] })] });
    const context: Context = {};
    await make("1").run(context);
    await make("2").run(context);
    expect(runs).toBe(2);
  });

  it("a step group nested inside a pipeline records its children under the group's key", async () => {
    const context: Context = {};
    const root = new Pipeline({
      name: "root",
      steps: [
        new StepGroup({
          name: "renders",
          parallel: true,
          steps: [fnStep("a", (c) => void (c.a = 1), { provides: ["a"] }), fnStep("b", (c) => void (c.b = 2), { provides: ["b"] })],
        }),
        fnStep("combine", (c) => ({ sum: Number(c.a) + Number(c.b) }), { requires: ["a", "b"] }),
      ],
    });
    const result = await root.run(context);
    expect(result.success).toBe(true);
    expect(stateAt(context, "root.renders.a").success).toBe(true);
    expect(stateAt(context, "root.renders.b").success).toBe(true);
    expect(stateAt(context, "root.combine").outputs).toEqual({ sum: 3 });
  });

  it("the same sub-pipeline object can be reused under two parents, with separate keys", async () => {
    let runs = 0;
    const shared = new Pipeline({ name: "shared", idempotent: false, steps: [fnStep("s", () => void (runs += 1), { idempotent: false })] });
    const root = new Pipeline({
      name: "root",
      steps: [new Pipeline({ name: "first", steps: [shared] }), new Pipeline({ name: "second", steps: [shared] })],
    });
    const context: Context = {};
    await root.run(context);
    expect(runs).toBe(2);
    expect(stateAt(context, "root.first.shared.s").success).toBe(true);
    expect(stateAt(context, "root.second.shared.s").success).toBe(true);
  });
});
