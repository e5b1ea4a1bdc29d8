/**
 * The end-of-run summary and the final status view of a map with 100,000
 * items (synthetic results, pure code): no stack overflow, and the map's
 * items collapse into counts naming the failed ones.
 */
import { describe, expect, it } from "vitest";
import type { RunStatus, StepResult } from "../../src/app/status.js";
import { formatResultSummary } from "../../src/app/summary.js";
import { formatStatus } from "../../src/app/watch-view.js";
import { CompletedState } from "../../src/core/index.js";

const ITEMS = 100_000;

function bigResult(options: { failedItems: number[]; allowed: boolean }): CompletedState {
  const failed = new Set(options.failedItems);
  const states: Record<string, CompletedState> = {};
  states["p.prep"] = CompletedState.ok({ duration_s: 1 });
  const first = options.failedItems[0];
  const mapOk = options.allowed || first === undefined;
  states["p.process"] = mapOk
    ? CompletedState.ok({ duration_s: 30, meta: options.allowed ? { failed_allowed: options.failedItems.map((i) => `p.process.${i}`) } : {} })
    : CompletedState.fail(`p.process.${first}.check: command exited with status 5`, { failure: "STEP_FAILED", meta: { failed_step: `p.process.${first}.check` } });
  // One state object for every good item (the summary reads states, never writes them): building stays fast.
  const okItem = CompletedState.ok({ duration_s: 0.1 });
  for (let i = 0; i < ITEMS; i++) {
    const bad = failed.has(i);
    const meta = { item: `model-${i}.glb` };
    states[`p.process.${i}`] = bad ? CompletedState.fail("check failed", { failure: "STEP_FAILED", meta }) : okItem;
    states[`p.process.${i}.check`] = bad ? CompletedState.fail("command exited with status 5", { failure: "STEP_FAILED", meta }) : okItem;
  }
  if (mapOk) states["p.report"] = CompletedState.ok({ duration_s: 2 });
  const root = mapOk
    ? CompletedState.ok({ duration_s: 33 })
    : CompletedState.fail(`p.process.${first}.check: command exited with status 5`, { failure: "STEP_FAILED", meta: { failed_step: `p.process.${first}.check` } });
  root.step_states = states;
  return root;
}

describe("the summary of a 100,000-item map", () => {
  it("does not overflow the stack and collapses the map's items: '99,999 ok, 1 failed (item 23)'", () => {
    const text = formatResultSummary(bigResult({ failedItems: [23], allowed: false }), "pipeline p, run r1");
    const lines = text.trimEnd().split("\n");
    expect(lines.length).toBeLessThan(12);
    expect(text).toMatch(/^p\.prep +ok/m);
    expect(text).toMatch(/^p\.process +STEP_FAILED .*100,000 items: 99,999 ok, 1 failed \(item 23\)/m);
    expect(text).not.toMatch(/^p\.process\.\d/m);
    expect(lines.at(-1)).toMatch(/^result: STEP_FAILED: p\.process\.23\.check: command exited with status 5, exit 4$/);
  });

  it("with continue_on_item_error counts the allowed failures instead of a bare 'ok'", () => {
    const text = formatResultSummary(bigResult({ failedItems: [3, 23, 99_998], allowed: true }), "pipeline p, run r1");
    expect(text).toMatch(/^p\.process +ok .*100,000 items: 99,997 ok, 3 failed \(items 3, 23, 99998\)/m);
    expect(text.trimEnd().split("\n").at(-1)).toBe("result: ok, 3 failures allowed, exit 0");
  });

  it("names the first failed items and counts the rest", () => {
    const many = Array.from({ length: 40 }, (_, i) => i * 7);
    const text = formatResultSummary(bigResult({ failedItems: many, allowed: true }), "t");
    expect(text).toContain("99,960 ok, 40 failed (items 0, 7, 14, 21, 28 and 35 more)");
  });

  it("names the map's three slowest items by their own duration", () => {
    const result = bigResult({ failedItems: [], allowed: true });
    const states = result.step_states ?? {};
    for (const [i, d] of [[70_001, 9.5], [12, 4.25], [99_999, 7], [5, 4]] as const) states[`p.process.${i}`] = CompletedState.ok({ duration_s: d });
    expect(formatResultSummary(result, "t")).toMatch(/^p\.process +ok .*100,000 items: 100,000 ok; slowest: item 70001 \(9\.50 s\), item 99999 \(7\.00 s\), item 12 \(4\.25 s\)$/m);
  });
});

describe("the final status of a 100,000-item map", () => {
  it("does not overflow the stack and collapses the map's items", () => {
    const result = bigResult({ failedItems: [23], allowed: false });
    const steps: Record<string, StepResult> = {};
    for (const [key, s] of Object.entries(result.step_states ?? {})) {
      steps[key] = { success: s.success, failure: s.failure ?? null, error: s.error ?? null, not_run: false, slurm_state: null, slurm_reason: null };
    }
    const status: RunStatus = {
      run_id: "r1", pipeline: "p", cluster: "hpc", phase: "submitted", remote_dir: "$HOME/r1", error: null, polled_at: "2026-01-01T12:00:05.000Z",
      final: true, counts: { pending: 0, running: 0, done: 0, failed: 0 }, jobs: [], steps,
      result: { success: false, failure: "STEP_FAILED", error: "p.process.23.check: command exited with status 5", exit_code: 4 }, state_problems: [],
    };
    const text = formatStatus(status);
    expect(text.split("\n").length).toBeLessThan(15);
    expect(text).toMatch(/^p\.process +STEP_FAILED: .*100,000 items: 99,999 ok, 1 failed \(item 23\)/m);
    expect(text).not.toMatch(/^p\.process\.\d/m);
  });
});
