/**
 * `hpcpipe run` shows why a step failed: the last lines of its stderr, and
 * for exit status 127 (command not found) a hint that steps run in work/ and
 * that a file of the spec's directory must be listed in `bundle:`.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { cli } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-tails-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("a failed step in hpcpipe run", () => {
  test("its last stderr lines are printed (not the earlier ones), with the step and its log file", async () => {
    const spec = join(dir, "noisy.yaml");
    const run = 'for i in $(seq 1 30); do echo "err line $i" >&2; done; printf "\\033[31mred\\033[0m\\n" >&2; exit 3';
    await writeFile(spec, ["name: noisy", "steps:", "  - step: talk", `    run: ${JSON.stringify(run)}`, ""].join("\n"));
    const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q");
    expect(result.code).toBe(4);
    expect(result.stderr).toContain("noisy.talk failed: command exited with status 3");
    expect(result.stderr).toContain("logs/noisy.talk.err");
    expect(result.stderr).toContain("err line 30");
    expect(result.stderr).toContain("err line 22");
    expect(result.stderr).not.toContain("err line 5\n");
    expect(result.stderr).toContain("red");
    expect(result.stderr).not.toContain("\x1b[31m");
    expect(result.stderr).not.toContain("exit 127");
  });

  test("exit 127 (a tool next to the spec, not bundled) gets the bundle: hint", async () => {
    await writeFile(join(dir, "tool.sh"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
    const spec = join(dir, "tool.yaml");
    await writeFile(spec, ["name: tooly", "steps:", "  - step: use", "    run: ./tool.sh", ""].join("\n"));
    const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q");
    expect(result.code).toBe(4);
    expect(result.stderr).toContain("tool.sh");
    expect(result.stderr).toMatch(/exit 127.*command not found/);
    expect(result.stderr).toContain("work/");
    expect(result.stderr).toContain("bundle:");

    await writeFile(spec, ["name: tooly", "bundle: [tool.sh]", "steps:", "  - step: use", "    run: ./tool.sh", ""].join("\n"));
    expect((await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q")).code).toBe(0);
  });

  test("a run that succeeds prints no stderr tails", async () => {
    const spec = join(dir, "fine.yaml");
    await writeFile(spec, ["name: fine", "steps:", "  - step: a", "    run: echo warn >&2", ""].join("\n"));
    const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q");
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("warn");
  });
});
