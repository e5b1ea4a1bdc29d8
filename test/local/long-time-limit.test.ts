/**
 * Time limits past Node's longest timer (2^31-1 ms, about 24.8 days): the
 * local executor must wait for them, not fire at once.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { MAX_TIMER_MS, setLongTimeout } from "../../src/local/task-process.js";
import { cli } from "../cli/helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-longlimit-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("a time limit of 25 days or more on the local executor", () => {
  for (const time of ["25-00:00:00", "365-00:00:00"]) {
    test(`${time}: a real bash step that sleeps runs to its end and succeeds (no TIMEOUT, no overflow warning)`, async () => {
      const spec = join(dir, "long.yaml");
      await writeFile(
        spec,
        ["name: long", "steps:", "  - step: slow", '    run: sleep 1.5; echo finished', `    resources: { time: "${time}" }`, ""].join("\n"),
      );
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
      process.on("warning", onWarning);
      try {
        const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "--json", "-q");
        expect(result.stderr).not.toContain("TIMEOUT");
        const state = JSON.parse(result.stdout) as { success: boolean; step_states: Record<string, { success: boolean; error: string | null }> };
        expect(state.step_states["long.slow"]).toMatchObject({ success: true, error: null });
        expect(result.code).toBe(0);
      } finally {
        process.removeListener("warning", onWarning);
      }
      expect(warnings.filter((w) => w.includes("TimeoutOverflow"))).toEqual([]);
    }, 30_000);
  }
});

describe("setLongTimeout", () => {
  test("fires once, exactly at a delay several times Node's longest timer, and never when cleared", () => {
    vi.useFakeTimers();
    try {
      let fired = 0;
      setLongTimeout(() => fired++, 3 * MAX_TIMER_MS + 5);
      const cleared = setLongTimeout(() => fired++, 2 * MAX_TIMER_MS);
      vi.advanceTimersByTime(MAX_TIMER_MS + 1);
      cleared.clear();
      vi.advanceTimersByTime(2 * MAX_TIMER_MS + 3);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(1);
      vi.advanceTimersByTime(10 * MAX_TIMER_MS);
      expect(fired).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});
