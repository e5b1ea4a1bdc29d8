import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Handlebars from "handlebars";
import { afterEach, describe, expect, it } from "vitest";
import { createEnvironment, defaultTemplatesDir, loadTemplates, templateFiles } from "../../src/render/environment.js";
import { renderJobScript } from "../../src/render/render.js";
import { findUnquotedOutput } from "../../src/render/template-check.js";
import { context, groupJob, mapJob, plainJob, step } from "./fixtures.js";

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});
function copyOfTemplates(): string {
  const dir = mkdtempSync(join(tmpdir(), "hpcpipe-templates-"));
  dirs.push(dir);
  cpSync(defaultTemplatesDir(), dir, { recursive: true });
  return dir;
}

function problemsIn(source: string): string[] {
  return findUnquotedOutput(Handlebars.parse(source)).map((p) => p.message);
}

describe("the templates' parse trees", () => {
  it("print every value through a quoting helper, in every template and partial", () => {
    const files = templateFiles();
    expect(files.map((f) => f.file)).toEqual(expect.arrayContaining(["sbatch.hbs", "submit.hbs", "partials/header.hbs", "partials/step.hbs"]));
    for (const { file, source } of files) {
      expect(findUnquotedOutput(Handlebars.parse(source)), file).toEqual([]);
    }
  });

  it("flags a bare value, a triple-stash, an ampersand, a bare helper and an unknown block: the check can fail", () => {
    expect(problemsIn("echo {{value}}")).toHaveLength(1);
    expect(problemsIn("echo {{{value}}}")).toHaveLength(1);
    expect(problemsIn("echo {{{q value}}}")).toHaveLength(1);
    expect(problemsIn("echo {{& value}}")).toHaveLength(1);
    expect(problemsIn("{{#each xs}}echo {{this}}{{/each}}")).toHaveLength(1);
    expect(problemsIn('{{#if x}}{{else}}{{lookup . "k"}}{{/if}}')).toHaveLength(1);
    expect(problemsIn("{{#custom x}}{{/custom}}")).toHaveLength(1);
    expect(problemsIn("{{> (whichPartial)}}")).toHaveLength(1);
    expect(problemsIn("{{#> layout}}{{value}}{{/layout}}")).toHaveLength(1);
    expect(problemsIn("{{q}}")).toHaveLength(1);
    expect(problemsIn('echo {{q value}} {{join-q list}} {{sbatch v "f"}} {{q-path p}} {{#each xs}}{{q this}}{{/each}} {{> p}}')).toEqual([]);
  });

  it("refuses to load a template directory whose templates print a value without quoting, naming file and line", () => {
    const dir = copyOfTemplates();
    writeFileSync(join(dir, "partials", "step.hbs"), readFileSync(join(dir, "partials", "step.hbs"), "utf8") + "\necho {{command}}\n");
    expect(() => loadTemplates(dir)).toThrow(/partials\/step\.hbs is unsafe:\n {2}line \d+: '\{\{command\}\}' prints a value without a quoting helper/);
  });
});

describe("the Handlebars environment", () => {
  it("is isolated: its helpers are not on the global Handlebars and global helpers do not reach it", () => {
    const env = createEnvironment();
    expect(Object.keys(env.helpers)).toEqual(expect.arrayContaining(["q", "sbatch", "join-q", "q-path"]));
    expect(Handlebars.helpers.q).toBeUndefined();
    Handlebars.registerHelper("leak", () => "leaked");
    try {
      expect(createEnvironment().helpers.leak).toBeUndefined();
    } finally {
      Handlebars.unregisterHelper("leak");
    }
  });

  it("does not HTML-escape, and fails on a missing value instead of printing nothing", () => {
    const env = createEnvironment();
    const t = env.compile("echo {{q v}}", { noEscape: true, strict: true });
    expect(t({ v: "<a & b>" })).toBe("echo '<a & b>'");
    expect(() => t({})).toThrow(/\{\{q\}\} \(template line 1\): expected a string or a number, got undefined/);
  });

  it("refuses to quote values that are not strings or numbers", () => {
    const env = createEnvironment();
    const t = env.compile("{{q v}}", { noEscape: true, strict: true });
    expect(t({ v: 3 })).toBe("3");
    for (const v of [true, null, { a: 1 }, ["x"]]) expect(() => t({ v })).toThrow(/q\}\} \(template line 1\): expected a string or a number/);
    expect(env.compile("{{join-q v}}", { noEscape: true, strict: true })({ v: ["a b", 1, "c"] })).toBe("'a b' 1 c");
  });

  it("keeps a multi-line command byte for byte inside an indented structure (no partial indentation)", () => {
    const cmd = "line1\n  line2\n\tline3";
    const text = renderJobScript(groupJob([{ unitKey: null, steps: [step("g.a", cmd)] }]), context("/r"));
    expect(text).toContain(`--command 'line1\n  line2\n\tline3'\n`);
  });
});

describe("a user's template directory", () => {
  it("is used instead of the package's templates", () => {
    const dir = copyOfTemplates();
    const header = join(dir, "partials", "header.hbs");
    writeFileSync(header, readFileSync(header, "utf8") + "#SBATCH --mail-user={{sbatch runId \"mail user\"}}\n");
    const text = renderJobScript(plainJob([step("s", "true")]), context("/r"), loadTemplates(dir));
    expect(text).toContain("#SBATCH --mail-user=r20261128-1\n");
  });

  it("referencing a value that does not exist fails the render with the job id", () => {
    const dir = copyOfTemplates();
    writeFileSync(join(dir, "partials", "header.hbs"), "#SBATCH --x={{sbatch nothere \"x\"}}\n");
    expect(() => renderJobScript(mapJob("m", "it", [step("m.{i}.s", "true")], { count: 1 }), context("/r"), loadTemplates(dir))).toThrow(
      /^job j003: #SBATCH x: expected a string or a number, got undefined/,
    );
  });
});
