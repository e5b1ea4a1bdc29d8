import { describe, expect, it } from "vitest";
import { loadSpec, pipelineFromSpecObject, SpecError } from "../../src/spec/load.js";
import { HEAD, specErrorOf } from "./helpers.js";

/** Checks the error names the file, the field's path and what was expected, and returns it. */
function expectProblem(yaml: string, path: string, expected: string | RegExp, files: Record<string, string> = {}): SpecError {
  const err = specErrorOf(yaml, files);
  expect(err.file).toMatch(/spec\.yaml$/);
  expect(err.message.startsWith(err.file)).toBe(true);
  expect(err.path).toBe(path);
  expect(err.expected).toMatch(expected);
  expect(err.message).toContain(`${path}: `);
  return err;
}

describe("a malformed spec is refused with the file, the path of the field and what was expected", () => {
  it("names an unknown key and lists the allowed ones", () => {
    const err = expectProblem(`${HEAD}  - step: s\n    run: x\n    runn: y\n`, "steps[0].runn", /unknown key "runn"; allowed keys: step, run, /);
    expect(err.location).toEqual({ line: 5, column: 5 });
  });

  it("names a field of the wrong type deep inside a group", () => {
    const yaml = `${HEAD}  - step: s\n    run: x\n  - group: g\n    steps:\n      - step: a\n        run: 3\n`;
    const err = expectProblem(yaml, "steps[1].steps[0].run", "expected a string, got the number 3");
    expect(err.message).toMatch(/spec\.yaml:8:9: steps\[1\]\.steps\[0\]\.run: expected a string, got the number 3$/);
  });

  it("refuses an empty command", () => {
    expectProblem(`${HEAD}  - step: s\n    run: "  "\n`, "steps[0].run", "expected a non-empty string");
  });

  it("refuses an entry with two kinds", () => {
    expectProblem(`${HEAD}  - step: s\n    group: g\n    run: x\n`, "steps[0].group", /exactly one of the keys step, group, pipeline, map; this one has 'step' and 'group'/);
  });

  it("refuses an entry with no kind", () => {
    expectProblem(`${HEAD}  - run: x\n`, "steps[0]", /expected exactly one of the keys step, group, pipeline, map, found "run"/);
  });

  it("shows an entry's unknown keys bounded and with control characters escaped", () => {
    // An explicit key (`? ...`): YAML allows implicit keys of at most 1024 characters.
    const err = specErrorOf(`${HEAD}  - ? "${"k".repeat(5000)}\\e[31m"\n    : x\n`);
    expect(err.path).toBe("steps[0]");
    expect(err.expected).toContain(`found "${"k".repeat(60)}..."`);
    expect(err.expected.length).toBeLessThan(300);
  });

  it("refuses an entry that is not a mapping", () => {
    expectProblem(`${HEAD}  - just text\n`, "steps[0]", /expected a mapping with one of the keys/);
  });

  it("refuses a bad step name", () => {
    expectProblem(`${HEAD}  - step: a.b\n    run: x\n`, "steps[0].step", /expected a name of 1-100 letters, digits/);
  });

  it("refuses a bad pipeline name", () => {
    expectProblem(`name: my pipeline\nsteps:\n  - step: s\n    run: x\n`, "name", /expected a name/);
  });

  it("refuses a reserved context key like PATH", () => {
    expectProblem(`name: t\ncontext: { PATH: /bin }\nsteps:\n  - step: s\n    run: x\n`, "context.PATH", /reserved/);
  });

  it("refuses a context key that is not a shell identifier like a-b", () => {
    expectProblem(`name: t\ncontext: { a-b: 1 }\nsteps:\n  - step: s\n    run: x\n`, 'context["a-b"]', /must be a shell identifier/);
  });

  it("refuses a context value that is a list", () => {
    expectProblem(`name: t\ncontext: { ok: [1] }\nsteps:\n  - step: s\n    run: x\n`, "context.ok", "expected a string, number or boolean, got a list");
  });

  it("refuses a bad requires key", () => {
    expectProblem(`${HEAD}  - step: s\n    run: x\n    requires: [a-b]\n`, "steps[0].requires[0]", /must be a shell identifier/);
  });

  it("refuses bad resources, naming each field", () => {
    const err = expectProblem(`${HEAD}  - step: s\n    run: x\n    resources: { cpus: 0, mem: lots, time: soon, gpu: 1 }\n`, "steps[0].resources.cpus", "expected a number >= 1");
    expect(err.problems.map((p) => p.path)).toEqual(["steps[0].resources.cpus", "steps[0].resources.mem", "steps[0].resources.time", "steps[0].resources.gpu"]);
    expect(err.message).toContain("steps[0].resources.mem: expected memory like 500M");
    expect(err.message).toContain("steps[0].resources.time: expected a SLURM time");
    expect(err.message).toContain('steps[0].resources.gpu: unknown key "gpu"');
  });

  it("refuses bad defaults", () => {
    expectProblem(`name: t\ndefaults: { cpus: two }\nsteps:\n  - step: s\n    run: x\n`, "defaults.cpus", "expected a number, got the string \"two\"");
  });

  it("refuses an item with a newline, naming its index", () => {
    expectProblem(`${HEAD}  - map: m\n    items: ["a", "b\\nc"]\n    steps:\n      - step: s\n        run: x\n`, "steps[0].items[1]", "item must not contain a newline");
  });

  it("refuses a missing items_file", () => {
    expectProblem(`${HEAD}  - map: m\n    items_file: nope.txt\n    steps:\n      - step: s\n        run: x\n`, "steps[0].items_file", /expected a readable file of items .*nope\.txt: no such file/);
  });

  it("refuses an items file with a control character, naming the line", () => {
    const yaml = `${HEAD}  - map: m\n    items_file: l.txt\n    steps:\n      - step: s\n        run: x\n`;
    expectProblem(yaml, "steps[0].items_file", "l.txt line 2: item must not contain a control character", { "l.txt": "a\nb\tc\n" });
  });

  it("refuses a map with neither items nor items_file nor items_glob, and one with two of them", () => {
    expectProblem(`${HEAD}  - map: m\n    steps:\n      - step: s\n        run: x\n`, "steps[0]", "expected items (a list), items_file (a file of lines) or items_glob (local files matching a pattern)");
    expectProblem(`${HEAD}  - map: m\n    items: [a]\n    items_file: f\n    steps:\n      - step: s\n        run: x\n`, "steps[0].items_file", "expected one of items, items_file or items_glob, not items and items_file");
    expectProblem(`${HEAD}  - map: m\n    items_file: f\n    items_glob: "*.glb"\n    steps:\n      - step: s\n        run: x\n`, "steps[0].items_glob", "not items_file and items_glob");
  });

  it("names the line and column of a YAML syntax error", () => {
    const err = specErrorOf(`${HEAD}  - step: s\n    run: [x\n  - step: b\n`);
    expect(err.expected).toMatch(/^YAML syntax error: /);
    expect(err.location?.line).toBeGreaterThanOrEqual(4);
    expect(err.message).toMatch(/spec\.yaml:\d+:\d+: YAML syntax error/);
  });

  it("refuses a duplicate key as a YAML error", () => {
    const err = specErrorOf(`name: t\nname: u\nsteps:\n  - step: s\n    run: x\n`);
    expect(err.message).toMatch(/spec\.yaml:2:1: YAML syntax error: Map keys must be unique/);
  });

  it("asks for a quoted version", () => {
    expectProblem(`name: t\nversion: 1.0\nsteps:\n  - step: s\n    run: x\n`, "version", /quote versions/);
  });

  it("refuses two siblings with the same name, pointing at the second", () => {
    expectProblem(`${HEAD}  - step: s\n    run: x\n  - step: s\n    run: y\n`, "steps[1].step", "duplicate name 's' (steps[0] has it too); names must be unique among siblings");
  });

  it("wraps the core's refusal of overlapping parallel provides with the group's path", () => {
    const yaml = `${HEAD}  - step: s\n    run: x\n  - group: g\n    parallel: true\n    steps:\n      - step: a\n        run: x\n        provides: [k]\n      - step: b\n        run: x\n        provides: [k]\n`;
    expectProblem(yaml, "steps[1]", /parallel group g: children 'a' and 'b' both provide 'k'/);
  });

  it("refuses throttle on a group that is not parallel", () => {
    expectProblem(`${HEAD}  - group: g\n    throttle: 2\n    steps:\n      - step: s\n        run: x\n`, "steps[0].throttle", /add parallel: true/);
  });

  it("refuses an empty steps list", () => {
    expectProblem("name: t\nsteps: []\n", "steps", "expected a non-empty list of steps");
  });

  it("refuses outputs outside the working directory", () => {
    const err = expectProblem(`${HEAD}  - step: s\n    run: x\n    outputs: [/etc/passwd, ../x]\n`, "steps[0].outputs[0]", /no leading '\/'/);
    expect(err.problems[1]?.path).toBe("steps[0].outputs[1]");
  });

  it("refuses a reserved environment variable in env", () => {
    expectProblem(`${HEAD}  - step: s\n    run: x\n    env: { LD_PRELOAD: x }\n`, "steps[0].env.LD_PRELOAD", /environment variable name 'LD_PRELOAD' is reserved/);
  });

  it("refuses a bundle path that does not exist", () => {
    expectProblem(`name: t\nbundle: [scripts/]\nsteps:\n  - step: s\n    run: x\n`, "bundle[0]", /expected an existing file or directory/);
  });

  it("refuses a missing name at the top", () => {
    expectProblem("steps:\n  - step: s\n    run: x\n", "name", "expected a string, but it is missing");
  });

  it("refuses a bad --set key", () => {
    const err = specErrorOf(`${HEAD}  - step: s\n    run: x\n`, {}, { set: { "a-b": "1" } });
    expect(err.path).toBe('--set "a-b"');
    expect(err.expected).toMatch(/must be a shell identifier/);
  });

  it("reports every problem of the file in one error", () => {
    const err = specErrorOf(`${HEAD}  - step: s\n  - step: t\n    run: x\n    bogus: 1\n  - group: g\n    steps: []\n`);
    expect(err.problems.map((p) => p.path)).toEqual(["steps[0].run", "steps[1].bogus", "steps[2].steps"]);
    expect(err.message.split("\n")).toHaveLength(3);
  });

  it("refuses a file that does not exist", () => {
    expect(() => loadSpec("test/fixtures/specs/no-such.yaml")).toThrow(/no-such\.yaml: cannot read the file: no such file/);
  });

  it("refuses an object that is not a mapping", () => {
    expect(() => pipelineFromSpecObject(["a"], "x.yaml")).toThrow(SpecError);
    expect(() => pipelineFromSpecObject(["a"], "x.yaml")).toThrow("x.yaml: expected a mapping with name and steps, got a list");
  });
});
