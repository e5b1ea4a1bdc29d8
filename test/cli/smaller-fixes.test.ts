/**
 * The smaller findings of issue 12: Mermaid line breaks, one time format in
 * `plan` and `#SBATCH`, `submit --dry-run --json`, an executable bin after the
 * build, and the summary of a map that continues on item errors.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { cli } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-smaller-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("plan", () => {
  test("Mermaid labels break lines with a real <br/>, and the label text stays escaped", async () => {
    const spec = join(dir, "m.yaml");
    await writeFile(spec, ["name: m", "steps:", "  - step: a", "    run: 'true'", ""].join("\n"));
    const out = (await cli("plan", spec, "--format", "mermaid")).stdout;
    expect(out).toContain('j000["j000 single<br/>m.a"]');
    expect(out).not.toContain("#lt;br/#gt;");
  });

  test("a time limit is written the same way in the plan and on the #SBATCH line (HH:MM:SS)", async () => {
    const spec = join(dir, "t.yaml");
    await writeFile(spec, ["name: t", "steps:", "  - step: a", "    run: 'true'", '    resources: { time: "5:00" }', ""].join("\n"));
    const plan = (await cli("plan", spec)).stdout;
    const sbatch = (await cli("submit", spec, "--cluster", "localcluster", "--dry-run")).stdout;
    expect(plan).toMatch(/time=00:05:00/);
    expect(sbatch).toContain("#SBATCH --time=00:05:00");
    expect(plan).not.toMatch(/time=5:00/);
  });
});

describe("submit --dry-run --json", () => {
  test("prints JSON: the plan's jobs and every script, in submission order, and contacts nothing", async () => {
    const result = await cli("submit", "examples/specs/thumbnail-shape.yaml", "--cluster", "localcluster", "--dry-run", "--json");
    expect(result.code).toBe(0);
    const parsed = JSON.parse(result.stdout) as { plan: { jobs: Array<{ id: string }> }; scripts: Record<string, string> };
    expect(parsed.plan.jobs.map((j) => j.id)).toEqual(["j000", "j001", "j002"]);
    expect(Object.keys(parsed.scripts)).toEqual(["scripts/j000.sbatch", "scripts/j001.sbatch", "scripts/j002.sbatch", "scripts/submit.sh"]);
    expect(parsed.scripts["scripts/j001.sbatch"]).toContain("#SBATCH --array=0-3%4");
  });
});

describe("the build", () => {
  test("makes every bin of package.json executable (scripts/chmod-bin.mjs, run by npm run build)", async () => {
    const pkg = JSON.parse(await readFile("package.json", "utf8")) as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.scripts.build).toMatch(/&& node scripts\/chmod-bin\.mjs$/);
    // The same script on a package laid out like this one, with its bin not executable.
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "x", bin: { x: "dist/cli/main.js" } }));
    await execFileSync("mkdir", ["-p", join(dir, "dist", "cli")]);
    await writeFile(join(dir, "dist", "cli", "main.js"), "#!/usr/bin/env node\nconsole.log('ran');\n", { mode: 0o644 });
    execFileSync(process.execPath, [join(process.cwd(), "scripts", "chmod-bin.mjs")], { cwd: dir });
    expect((await stat(join(dir, "dist", "cli", "main.js"))).mode & 0o777).toBe(0o755);
    expect(execFileSync(join(dir, "dist", "cli", "main.js"), { encoding: "utf8" })).toBe("ran\n");
    expect(Object.values(pkg.bin)).toEqual(["dist/cli/main.js"]);
  });
});

describe("the summary of a map with continue_on_item_error", () => {
  test("counts the failed items it allowed instead of a bare 'ok'", async () => {
    const spec = join(dir, "tolerant.yaml");
    await writeFile(
      spec,
      ["name: tolerant", "steps:", "  - map: each", "    items: [a, b, c]", "    continue_on_item_error: true", "    steps:", "      - step: s", '        run: test "$item" != b', "        requires: [item]", ""].join("\n"),
    );
    const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^tolerant\.each +ok .*3 items: 2 ok, 1 failed \(item 1\)/m);
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("result: ok, 1 failure allowed, exit 0");
  });
});
