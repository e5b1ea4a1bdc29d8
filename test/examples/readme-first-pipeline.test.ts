/**
 * The README's first pipeline (the section "Your first pipeline") is real:
 * its YAML runs with `hpcpipe run` and its outputs land where the README says.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { cli } from "../cli/helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-readme-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The section's text, up to the next `## ` heading. */
function section(): string {
  const readme = readFileSync("README.md", "utf8");
  const start = readme.indexOf("\n## Your first pipeline");
  if (start < 0) throw new Error("README.md has no section '## Your first pipeline'");
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe("the README's first pipeline", () => {
  test("comes right after the install and test commands, is about 15 lines of YAML, and runs", async () => {
    const readme = readFileSync("README.md", "utf8");
    expect(readme.indexOf("## Your first pipeline")).toBeLessThan(readme.indexOf("## Contents"));
    const text = section();
    const yaml = /```yaml\n([\s\S]*?)```/.exec(text)?.[1] ?? "";
    const lines = yaml.split("\n").filter((l) => l.trim() !== "");
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(22);
    const spec = join(dir, "hello.yaml");
    await writeFile(spec, yaml);
    const result = await cli("run", spec, "--runs-dir", join(dir, ".hpcpipe", "runs"), "-q");
    expect(result.code, result.stderr).toBe(0);
    const runDir = /run directory (\S+) \(/.exec(result.stderr)?.[1] ?? "";
    // Every output the README names is there, under the run's work/ directory.
    const named = [...text.matchAll(/work\/(out\/[A-Za-z0-9_./-]+\.txt)/g)].map((m) => m[1] as string);
    expect(named.length).toBeGreaterThan(0);
    for (const out of named) expect(existsSync(join(runDir, "work", out)), out).toBe(true);
    // The summary the README shows is the one printed (step rows and the result line).
    for (const row of text.matchAll(/^(hello\.\S+) +(ok|\d[^\n]*?)\s/gm)) expect(result.stdout).toContain(row[1] as string);
    expect(text).toContain("result: ok, exit 0");
    expect(result.stdout).toContain("result: ok, exit 0");
  });
});
