// The local executor retries like a cluster: its job table runs the retry controller's attempts loop
// (src/local/retries.ts) over the same job scripts, and the merged result shows the attempts.
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
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

/** A map of three items; item b fails (exit 3) in its first FAILS runs; `after` runs once the map has succeeded. */
function spec(fails: number, retry: string): string {
  return [
    "name: flaky",
    "steps:",
    "  - map: each",
    "    items: [a, b, c]",
    "    as: item",
    "    items_per_task: 2",
    ...retry.split("\n").map((l) => `    ${l}`),
    "    steps:",
    "      - step: work",
    "        requires: [item]",
    "        run: |",
    '          echo "attempt $HPCPIPE_ATTEMPT" >> "$HPCPIPE_OUT_DIR/runs-$item"',
    '          n=$(wc -l < "$HPCPIPE_OUT_DIR/runs-$item")',
    `          if [ "$item" = b ] && [ "$n" -le ${fails} ]; then exit 3; fi`,
    "  - step: after",
    '    run: echo ran > "$HPCPIPE_OUT_DIR/after"',
    "",
  ].join("\n");
}

async function runSpec(text: string): Promise<{ code: number; stderr: string; result: { step_states: Record<string, { success: boolean; meta: Record<string, unknown> }> }; out: string }> {
  const file = join(dir, "flaky.yaml");
  await writeFile(file, text);
  const runs = join(dir, "runs");
  const r = await cli("run", file, "--runs-dir", runs, "-q", "--json");
  const [runDir] = await readdir(join(runs, "flaky"));
  return { code: r.code, stderr: r.stderr, result: JSON.parse(r.stdout) as never, out: join(runs, "flaky", runDir ?? "", "out") };
}

describe("hpcpipe run and retries", () => {
  test("an item that fails twice and then succeeds (retries: 2) ends ok with 3 attempts; only it ran again, and the step after ran", async () => {
    const { code, stderr, result, out } = await runSpec(spec(2, "retries: 2"));
    expect(code, stderr).toBe(0);
    const b = result.step_states["flaky.each.1.work"];
    expect(b?.meta.attempt).toBe(3);
    expect((b?.meta.attempts as Array<Record<string, unknown>>).map((a) => [a.attempt, a.retried_because ?? null])).toEqual([
      [1, "exit 3"],
      [2, "exit 3"],
      [3, null],
    ]);
    // Item a shares its packed task with b: it was skipped (done) when the task ran again.
    expect(await readFile(join(out, "runs-a"), "utf8")).toBe("attempt 1\n");
    expect(await readFile(join(out, "runs-b"), "utf8")).toBe("attempt 1\nattempt 2\nattempt 3\n");
    expect(await readFile(join(out, "after"), "utf8")).toBe("ran\n");
  });

  test("the summary names the steps that took more than one attempt", async () => {
    const file = join(dir, "flaky.yaml");
    await writeFile(file, spec(9, "retries: 1"));
    const r = await cli("run", file, "--runs-dir", join(dir, "runs"), "-q");
    expect(r.code).toBe(4);
    expect(r.stdout + r.stderr).toContain("retries: 1 step(s) took more than one attempt: flaky.each.1.work (2 attempts, then failed: exit 3 (retries used up after 2 attempts))");
  });

  test("when the retries run out, the run fails as without retries (exit 4, the step after not run)", async () => {
    const { code, result } = await runSpec(spec(9, "retries: 1\nretry_on: [3]"));
    expect(code).toBe(4);
    expect(result.step_states["flaky.each.1.work"]?.meta.attempt).toBe(2);
    expect(result.step_states["flaky.after"]?.meta).toMatchObject({ not_run: true });
  });

  test("an exit code retry_on does not name is not retried", async () => {
    const { code, result } = await runSpec(spec(9, "retries: 2\nretry_on: [4, TIMEOUT]"));
    expect(code).toBe(4);
    expect(result.step_states["flaky.each.1.work"]?.meta.attempt).toBe(1);
    expect(result.step_states["flaky.each.1.work"]?.meta.attempts).toBeUndefined();
  });
});

describe("submit --dry-run and plan show the retry controller", () => {
  test("the controller's script is among the scripts, and the plan names what it retries", async () => {
    const file = join(dir, "flaky.yaml");
    await writeFile(file, spec(2, "retries: 2\nretry_on: [3, TIMEOUT]\non_timeout: { time: x2 }"));
    const dry = await cli("submit", file, "--cluster", "localcluster", "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("hp_retry_control \\\n  --run-id ");
    expect(dry.stdout).toContain("submit_controller j001 scripts/j001.sbatch j000\n");
    const plan = await cli("plan", file, "--cluster", "localcluster");
    expect(plan.stdout).toContain("retry controller of j000: up to 2 retries of its failed tasks (their failed items) on 3,TIMEOUT, time x2 on TIMEOUT  after j000(afterany)");
  });
});
