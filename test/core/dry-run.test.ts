import { describe, expect, it, vi } from "vitest";
import { CompletedState, ExitCode, exitCodeFrom, Pipeline, planTree, shortSignature, StepGroup } from "../../src/core/index.js";
import type { Context, FunctionStep, PlannedStep } from "../../src/core/index.js";
import { fnStep, memoryLogger } from "./helpers.js";

function tree(run: () => void): Pipeline {
  const s = (name: string, requires: string[], provides: string[]): FunctionStep =>
    fnStep(
      name,
      (c) => {
        run();
        for (const k of provides) c[k] = 1;
      },
      { requires, provides },
    );
  return new Pipeline({
    name: "e2e",
    steps: [
      new Pipeline({ name: "prep", steps: [s("load", ["path"], ["scene"]), s("import", ["scene"], ["model"])] }),
      new StepGroup({ name: "renders", parallel: true, steps: [s("normal", ["model"], ["n"]), s("depth", ["model"], ["d"])] }),
      s("write", ["n", "d"], ["out"]),
    ],
  });
}

const summary = (plan: PlannedStep[]): string[] => plan.map((e) => `${"  ".repeat(e.depth)}${e.key} ${e.kind} ${e.action}`);

describe("dry run", () => {
  it("calls no step's run and sets no context key", async () => {
    const run = vi.fn();
    const context: Context = { path: "scene.glb" };
    const result = await tree(run).run(context, { dryRun: true });
    expect(result.success).toBe(true);
    expect(run).not.toHaveBeenCalled();
    expect(Object.keys(context).filter((k) => k !== "step_states")).toEqual(["path"]);
    expect(Object.keys(context.step_states ?? {})).toEqual([]);
  });

  it("returns the planned order, nested pipelines and groups included, parents before children", async () => {
    const result = await tree(vi.fn()).run({ path: "x" }, { dryRun: true });
    expect(result.meta.dry_run).toBe(true);
    expect(summary(result.meta.plan as PlannedStep[])).toEqual([
      "e2e pipeline run",
      "  e2e.prep pipeline run",
      "    e2e.prep.load step run",
      "    e2e.prep.import step run",
      "  e2e.renders group run",
      "    e2e.renders.normal step run",
      "    e2e.renders.depth step run",
      "  e2e.write step run",
    ]);
    const plan = result.meta.plan as PlannedStep[];
    expect(plan.find((e) => e.key === "e2e.renders")?.parallel).toBe(true);
    expect(plan.find((e) => e.key === "e2e.write")?.requires).toEqual(["n", "d"]);
  });

  it("logs every planned step in order, then that nothing was executed", async () => {
    const log = memoryLogger();
    await tree(vi.fn()).run({ path: "x" }, { dryRun: true, logger: log.logger });
    const lines = log.lines();
    const planned = lines.filter((l) => l.msg === "dry-run plan");
    expect(planned.map((l) => l.step)).toEqual([
      "e2e",
      "e2e.prep",
      "e2e.prep.load",
      "e2e.prep.import",
      "e2e.renders",
      "e2e.renders.normal",
      "e2e.renders.depth",
      "e2e.write",
    ]);
    expect(planned.every((l) => l.level === 30 && l.action === "run")).toBe(true);
    expect(lines.at(-1)).toMatchObject({ msg: "dry run: nothing executed", steps: 8 });
    expect(lines.some((l) => l.msg === "step start")).toBe(false);
  });

  it("a requirement neither in the context nor provided upstream fails with MISSING_REQUIREMENT, naming the leaf", async () => {
    const run = vi.fn();
    const result = await tree(run).run({}, { dryRun: true });
    expect(result.success).toBe(false);
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(exitCodeFrom(result)).toBe(ExitCode.MISSING_REQUIREMENT);
    expect(result.error).toBe("e2e.prep.load is missing 'path'");
    expect(run).not.toHaveBeenCalled();
    const plan = result.meta.plan as PlannedStep[];
    expect(plan.find((e) => e.key === "e2e.prep.load")?.missing).toEqual(["path"]);
    // Everything downstream is satisfied by upstream provides.
    expect(plan.filter((e) => e.kind === "step" && e.missing.length > 0).map((e) => e.key)).toEqual(["e2e.prep.load"]);
  });

  it("a requirement only a later step provides is reported missing", async () => {
    const p = new Pipeline({
      name: "p",
      requires: [],
      steps: [fnStep("consumer", () => {}, { requires: ["late"] }), fnStep("producer", () => {}, { provides: ["late"] })],
    });
    const result = await p.run({}, { dryRun: true });
    expect(result.failure).toBe("MISSING_REQUIREMENT");
    expect(result.error).toBe("p.consumer is missing 'late'");
  });

  it("marks steps that already succeeded with the same definition as skip, and omits their children", async () => {
    const run = vi.fn();
    const p = tree(run);
    const context: Context = { path: "x" };
    await p.run(context);
    run.mockClear();
    const plan = planTree(p, context);
    expect(plan).toHaveLength(1);
    expect(plan[0]).toMatchObject({ key: "e2e", action: "skip" });
    expect(run).not.toHaveBeenCalled();
  });

  it("with force, steps that already succeeded are planned to run", async () => {
    const p = tree(vi.fn());
    const context: Context = { path: "x" };
    await p.run(context);
    const result = await p.run(context, { dryRun: true, force: true });
    const plan = result.meta.plan as PlannedStep[];
    expect(plan).toHaveLength(8);
    expect(plan.every((e) => e.action === "run")).toBe(true);
  });

  it("a skipped sub-pipeline's provides still satisfy later steps", () => {
    const sub = new Pipeline({ name: "sub", steps: [fnStep("make", (c) => void (c.k = 1), { provides: ["k"] })] });
    const root = new Pipeline({ name: "root", steps: [sub, fnStep("use", () => {}, { requires: ["k"] })] });
    // A recorded success with the sub-pipeline's own signature, and its value still present: it counts as already done.
    const context: Context = { k: 1, step_states: { "root.sub": CompletedState.ok({ signature: shortSignature(sub) }) } };
    const plan = planTree(root, context);
    expect(plan.map((e) => `${e.key}:${e.action}`)).toEqual(["root:run", "root.sub:skip", "root.use:run"]);
    expect(plan.every((e) => e.missing.length === 0)).toBe(true);
    // Without the value it provided, the sub-pipeline must run again.
    delete context.k;
    expect(planTree(root, context).map((e) => `${e.key}:${e.action}`)).toEqual(["root:run", "root.sub:run", "root.sub.make:run", "root.use:run"]);
  });

  it("a recorded success with a different signature does not make a step skip", () => {
    const step = fnStep("a", () => {});
    const root = new Pipeline({ name: "root", steps: [step] });
    const context: Context = { step_states: { "root.a": CompletedState.ok({ signature: "000000000000" }) } };
    expect(planTree(root, context).map((e) => e.action)).toEqual(["run", "run"]);
    context.step_states = { "root.a": CompletedState.ok({ signature: shortSignature(step) }) };
    expect(planTree(root, context).map((e) => e.action)).toEqual(["run", "skip"]);
  });

  it("a step that already succeeded is planned as a skip even after its inputs have gone, as a real run skips it", async () => {
    const p = new Pipeline({ name: "p", idempotent: false, requires: [], steps: [fnStep("a", () => {}, { requires: ["in"] })] });
    const context: Context = { in: 1 };
    await p.run(context);
    delete context.in;
    const dry = await p.run(context, { dryRun: true });
    expect(dry.success).toBe(true);
    expect((dry.meta.plan as Array<{ key: string; action: string }>).find((e) => e.key === "p.a")?.action).toBe("skip");
    const real = await p.run(context);
    expect(real.success).toBe(true);
  });

  it("a dry run does not add step_states to the context", async () => {
    const context: Context = { x: 1 };
    await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run(context, { dryRun: true });
    expect(context).toEqual({ x: 1 });
  });

  it("parallel siblings are checked against what existed before the group, and the group's provides reach later steps", () => {
    const g = new StepGroup({
      name: "g",
      parallel: true,
      requires: [],
      provides: ["a", "b"],
      steps: [fnStep("a", () => {}, { provides: ["a"] }), fnStep("b", () => {}, { requires: ["ext"], provides: ["b"] })],
    });
    const root = new Pipeline({ name: "root", requires: [], steps: [g, fnStep("after", () => {}, { requires: ["a", "b"] })] });
    const plan = planTree(root, {});
    expect(plan.find((e) => e.key === "root.g.b")?.missing).toEqual(["ext"]);
    expect(plan.find((e) => e.key === "root.after")?.missing).toEqual([]);
  });

  it("a dry run of a pipeline with no problems has exit code OK", async () => {
    expect(exitCodeFrom(await tree(vi.fn()).run({ path: "x" }, { dryRun: true }))).toBe(ExitCode.OK);
  });
});
