import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { Pipeline, shortSignature, StepGroup } from "../../src/core/index.js";
import type { PipelineStep } from "../../src/core/index.js";
import { fuseOptOut, noFuse, throttleOf } from "../../src/spec/annotations.js";
import { CommandStep } from "../../src/spec/command-step.js";
import { loadSpec, parseItemsText, pipelineFromSpecObject } from "../../src/spec/load.js";
import { MapStep } from "../../src/spec/map-step.js";
import { entryKind } from "../../src/spec/schema.js";
import { HEAD, loadText } from "./helpers.js";

const FIXTURE = "test/fixtures/specs/all-kinds.yaml";

function child(step: PipelineStep, name: string): PipelineStep {
  const found = step.children.find((c) => c.name === name);
  if (!found) throw new Error(`${step.name} has no child ${name}`);
  return found;
}

describe("loading a spec with every kind of entry", () => {
  const loaded = loadSpec(FIXTURE);
  const root = loaded.pipeline;

  it("builds a Pipeline named after the spec, with its version", () => {
    expect(root).toBeInstanceOf(Pipeline);
    expect(root.name).toBe("all_kinds");
    expect(root.version).toBe("2.1");
    expect(root.children.map((c) => c.name)).toEqual(["prep", "renders", "post", "validate_all", "inline", "seq"]);
  });

  it("turns a step entry into a CommandStep with every field carried over", () => {
    const prep = child(root, "prep");
    expect(prep).toBeInstanceOf(CommandStep);
    const c = prep as CommandStep;
    expect(c.command).toBe("echo prep");
    expect(c.requires).toEqual(["model"]);
    expect(c.provides).toEqual(["scene"]);
    expect(c.outputs).toEqual(["out/scene.blend"]);
    expect(c.resources).toEqual({ cpus: 2, time: "30" });
    expect(c.env).toEqual({ OMP_NUM_THREADS: "2", MODE: "fast" });
    expect(c.continue_on_error).toBe(false);
    expect(c.idempotent).toBe(false);
    expect(c.version).toBe("1.3");
    expect(c.fuse).toBe(false);
    expect(fuseOptOut(c)).toBe(true);
  });

  it("turns a parallel group into a parallel StepGroup whose concurrency is the throttle", () => {
    const renders = child(root, "renders");
    expect(renders).toBeInstanceOf(StepGroup);
    expect(renders.parallel).toBe(true);
    expect((renders as StepGroup).concurrency).toBe(2);
    expect(throttleOf(renders)).toBe(2);
    expect(child(renders, "side")).toBeInstanceOf(Pipeline);
    expect(child(renders, "side").provides).toEqual(["side"]);
  });

  it("turns a group without parallel into a sequential StepGroup without throttle", () => {
    const seq = child(root, "seq");
    expect(seq).toBeInstanceOf(StepGroup);
    expect(seq.parallel).toBe(false);
    expect(throttleOf(seq)).toBeNull();
  });

  it("turns a pipeline entry into a nested Pipeline and remembers fuse: false", () => {
    const post = child(root, "post");
    expect(post).toBeInstanceOf(Pipeline);
    expect(post.continue_on_error).toBe(true);
    expect(fuseOptOut(post)).toBe(true);
    expect(fuseOptOut(root)).toBe(false);
    expect(fuseOptOut(child(root, "renders"))).toBe(false);
  });

  it("turns a map over an items file into a MapStep with the file's items, its key and throttle", () => {
    const map = child(root, "validate_all");
    expect(map).toBeInstanceOf(MapStep);
    const m = map as MapStep;
    expect(m.items).toEqual(["a.glb", "b c.glb", "d.glb"]);
    expect(m.as).toBe("item_model");
    expect(m.concurrency).toBe(3);
    expect(m.throttle).toBe(3);
    expect(throttleOf(m)).toBe(3);
    expect(m.continue_on_item_error).toBe(true);
    expect(m.itemsSource).toBe("all-kinds-items.txt");
    expect(m.requires).toEqual(["samples"]);
    expect(m.provides).toEqual([]);
  });

  it("turns a map with inline items into a MapStep bound to 'item' by default (numbers become strings)", () => {
    const m = child(root, "inline") as MapStep;
    expect(m).toBeInstanceOf(MapStep);
    expect(m.items).toEqual(["a.glb", "b.glb", "7"]);
    expect(m.as).toBe("item");
    expect(m.throttle).toBeNull();
    expect(m.continue_on_item_error).toBe(false);
  });

  it("returns the context, the bundle, the defaults and the spec's directory", () => {
    expect(loaded.context).toEqual({ model: "models/cube.glb", samples: 8, draft: true });
    expect(loaded.bundle).toEqual(["all-kinds-items.txt"]);
    expect(loaded.defaults).toEqual({ cpus: 1, mem: "1G", time: "10:00" });
    expect(loaded.specDir).toBe(resolve("test/fixtures/specs"));
  });

  it("returns the validated document, with each map's items filled in", () => {
    const entries = loaded.spec.steps;
    expect(entries.map(entryKind)).toEqual(["step", "group", "pipeline", "map", "map", "group"]);
    const map = entries[3];
    expect(map && "map" in map ? map.items : undefined).toEqual(["a.glb", "b c.glb", "d.glb"]);
  });

  it("infers the root's requirements from the steps and the map item key", () => {
    expect([...root.requires].sort()).toEqual(["model", "samples"]);
  });
});

describe("spec details", () => {
  it("lets --set override the context and set what the steps require from it; an unknown key is refused, listing the known ones", () => {
    const yaml = `name: t\ncontext: { a: 1, b: x }\nsteps:\n  - step: s\n    run: "true"\n    requires: [c]\n`;
    const loaded = loadText(yaml, {}, { set: { a: "2", c: "new value" } });
    expect(loaded.context).toEqual({ a: "2", b: "x", c: "new value" });
    expect(() => loadText(yaml, {}, { set: { c: "v", d: "typo" } })).toThrow(/--set d: .*unknown context key: this pipeline knows a, b, c/);
  });

  it("gives a spec-built pipeline the same signature as the same pipeline built in TypeScript", () => {
    const yaml = `${HEAD}  - step: s\n    run: echo hi\n  - pipeline: p\n    steps:\n      - step: q\n        run: echo q\n`;
    const fromSpec = loadText(yaml).pipeline;
    const byHand = new Pipeline({
      name: "t",
      steps: [new CommandStep({ name: "s", command: "echo hi" }), new Pipeline({ name: "p", steps: [new CommandStep({ name: "q", command: "echo q" })] })],
    });
    expect(shortSignature(fromSpec)).toBe(shortSignature(byHand));
  });

  it("reads an items file skipping blank lines and lines starting with #, dropping a trailing carriage return", () => {
    expect(parseItemsText("# header\na\n\n  \nb b\n#x\nc\r\n").map((l) => l.item)).toEqual(["a", "b b", "c"]);
    expect(parseItemsText("x\n\ny").map((l) => l.line)).toEqual([1, 3]);
  });

  it("builds from an object as well as from a file", () => {
    const loaded = pipelineFromSpecObject({ name: "obj", steps: [{ step: "s", run: "true" }] }, "virtual/obj.yaml");
    expect(loaded.pipeline.name).toBe("obj");
    expect(loaded.specDir).toBe(resolve("virtual"));
  });

  it("accepts a whole spec opting out of fusion", () => {
    expect(fuseOptOut(loadText(`name: t\nfuse: false\nsteps:\n  - step: s\n    run: "true"\n`).pipeline)).toBe(true);
  });

  it("noFuse marks a TypeScript-built composite the same way", () => {
    const p = noFuse(new Pipeline({ name: "p" }));
    expect(fuseOptOut(p)).toBe(true);
    expect(fuseOptOut(new Pipeline({ name: "q" }))).toBe(false);
  });

  it("reads time and memory written as YAML numbers as the same SLURM strings", () => {
    const step = loadText(`${HEAD}  - step: s\n    run: "true"\n    resources: { time: 90, mem: 4000 }\n`).pipeline.children[0] as CommandStep;
    expect(step.resources).toEqual({ time: "90", mem: "4000" });
  });
});
