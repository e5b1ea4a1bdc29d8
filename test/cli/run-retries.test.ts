// The local executor does not retry: `hpcpipe run` refuses a step with retries, naming it, and runs nothing.
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { cli } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-run-retries-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("hpcpipe run and retries", () => {
  test("a step with retries is refused with a clear error naming it (exit 65), and nothing runs", async () => {
    const spec = join(dir, "flaky.yaml");
    await writeFile(spec, ["name: flaky", "steps:", "  - step: try", "    retries: 2", '    run: touch "$HPCPIPE_OUT_DIR/ran"', ""].join("\n"));
    const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q");
    expect(result.code).toBe(65);
    expect(result.stderr).toContain("flaky.try: retries run on a SLURM cluster");
    expect(result.stderr).toContain("the local executor, which does not retry");
    expect(await readdir(join(dir, "runs")).catch(() => [])).toEqual([]);
  });
});
