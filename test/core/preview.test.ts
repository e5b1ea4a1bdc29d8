// The one preview of a value in an error message (src/core/preview.ts), and the lint rule that keeps
// messages from echoing a value through JSON.stringify instead (eslint.config.js).
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { issuesText, preview, PREVIEW_CHARS } from "../../src/core/preview.js";

// eslint-disable-next-line no-control-regex
const RAW_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\ufeff]/;

describe("preview", () => {
  it.each(["", "abc", "a b", 'say "hi"', "back\\slash", "ünïcødé ✓", "x".repeat(PREVIEW_CHARS)])("shows a short ordinary string %j exactly as JSON.stringify does", (value) => {
    expect(preview(value)).toBe(JSON.stringify(value));
  });

  it.each([0, 42, -1.5, true, null, ["a", 1], { a: "b" }])("shows a short non-string %j as its JSON text", (value) => {
    expect(preview(value)).toBe(JSON.stringify(value));
  });

  it("shows undefined and a BigInt as their text, and a cycle without throwing", () => {
    expect(preview(undefined)).toBe("undefined");
    expect(preview(12n)).toBe("12");
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(preview(cycle)).toBe("[object Object]");
  });

  it("cuts a long string to the bound with ... inside the quotes", () => {
    const shown = preview("y".repeat(1024 * 1024));
    expect(shown).toBe(`"${"y".repeat(PREVIEW_CHARS)}..."`);
    expect(preview("abcdef", 3)).toBe('"abc..."');
    expect(preview("abc", 3)).toBe('"abc"');
  });

  it("cuts a long object's JSON text to the bound", () => {
    const shown = preview({ items: Array.from({ length: 10_000 }, (_, i) => i) });
    expect(shown.length).toBe(PREVIEW_CHARS + 3);
    expect(shown.startsWith('{"items":[0,1,2')).toBe(true);
  });

  it("never leaves half of a surrogate pair at the cut", () => {
    expect(preview("ab😀cd", 3)).toBe('"ab..."');
    expect(preview("ab😀cd", 4)).toBe('"ab😀..."');
  });

  it.each([
    ["NUL", "a\u0000b", "a\\u0000b"],
    ["newline", "a\nb", "a\\nb"],
    ["escape (terminal sequences)", "\u001b[31mred", "\\u001b[31mred"],
    ["DEL", "a\u007fb", "a\\u007fb"],
    ["a C1 control (CSI)", "a\u009bb", "a\\u009bb"],
    ["line separator", "a\u2028b", "a\\u2028b"],
    ["right-to-left override", "a\u202eb", "a\\u202eb"],
    ["right-to-left isolate", "a\u2067b", "a\\u2067b"],
    ["zero-width space", "a\u200bb", "a\\u200bb"],
    ["byte order mark", "\ufeffa", "\\ufeffa"],
  ])("escapes %s", (_what, value, inner) => {
    const shown = preview(value);
    expect(shown).toBe(`"${inner}"`);
    expect(shown).not.toMatch(RAW_UNSAFE);
  });

  it("escapes what an object carries too", () => {
    expect(preview({ k: "a\u202eb\u007f" })).toBe('{"k":"a\\u202eb\\u007f"}');
  });
});

describe("issuesText (a failed parse in a message)", () => {
  const schema = z.strictObject({ name: z.string(), outputs: z.record(z.string(), z.number()) });

  it("shows path and message of each issue, (root) for the document itself", () => {
    const r = schema.safeParse({ name: 3, outputs: {} });
    expect(r.success).toBe(false);
    expect(issuesText(r.error?.issues ?? [])).toBe("name: Invalid input: expected string, received number");
    expect(issuesText(z.object({}).safeParse(7).error?.issues ?? [])).toMatch(/^\(root\): /);
  });

  it("previews unknown keys and odd path segments: zod's own message would echo them raw and whole", () => {
    const hostile = `\u001b[2J${"x".repeat(10_000)}`;
    const r = schema.safeParse({ name: "n", outputs: { [hostile]: "not a number" }, [hostile]: 1 });
    const text = issuesText(r.error?.issues ?? []);
    expect(r.error?.issues.some((i) => i.message.includes(hostile))).toBe(true); // what zod says on its own
    expect(text).toContain('Unrecognized key: "\\u001b[2Jxxx');
    expect(text).toContain('outputs."\\u001b[2Jxxx');
    expect(text).not.toMatch(RAW_UNSAFE);
    expect(text.length).toBeLessThan(400);
  });

  it("shows the first issues and counts the rest", () => {
    const many = z.array(z.string()).safeParse([1, 2, 3, 4, 5, 6, 7]);
    const text = issuesText(many.error?.issues ?? [], 2);
    expect(text.split("; ").slice(0, 2).map((t) => t.split(":")[0])).toEqual(["0", "1"]);
    expect(text.endsWith("; and 5 more")).toBe(true);
  });
});

describe("the lint rule against unbounded echoes in messages", () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  const lint = async (code: string): Promise<string[]> => {
    const [result] = await eslint.lintText(code, { filePath: "src/core/__lint_probe__.ts" });
    return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-syntax").map((m) => m.message);
  };

  it("refuses JSON.stringify inside message text (a template or a concatenation)", async () => {
    expect(await lint("export function f(x: string): never {\n  throw new Error(`bad value ${JSON.stringify(x)}`);\n}\n")).toHaveLength(1);
    expect(await lint('export const m = (x: string): string => "bad value " + JSON.stringify(x);\n')).toHaveLength(1);
    expect(await lint("export const m = (xs: string[]): string => `no match for ${xs.map((x) => JSON.stringify(x)).join(\", \")}`;\n")).toHaveLength(1);
  }, 60_000);

  it("allows a line of JSON output and JSON.stringify outside text", async () => {
    expect(await lint("export const line = (state: object): string => `${JSON.stringify(state)}\\n`;\n")).toEqual([]);
    expect(await lint("export const text = (state: object): string => JSON.stringify(state, null, 2);\n")).toEqual([]);
    expect(await lint('import { preview } from "./preview.js";\nexport function f(x: string): never {\n  throw new Error(`bad value ${preview(x)}`);\n}\n')).toEqual([]);
  }, 60_000);

  it("names preview() in its message", async () => {
    const [message] = await lint("export const m = (x: string): string => `bad ${JSON.stringify(x)}`;\n");
    expect(message).toMatch(/preview\(\) from src\/core\/preview\.ts/);
  }, 60_000);
});
