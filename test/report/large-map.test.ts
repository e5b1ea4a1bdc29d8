/**
 * A map whose items are in the result's lines file (more than the threshold):
 * the end-of-run summary, the status steps and the report are built from
 * result.json alone, stay bounded, and say the same as for the same map kept
 * inline.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stepResults } from "../../src/app/status.js";
import { formatResultSummary } from "../../src/app/summary.js";
import { mergeFromSource, mergeStates } from "../../src/collect/merge.js";
import type { JobFact } from "../../src/collect/merge.js";
import { readStateDir } from "../../src/collect/read-states.js";
import { DirSource } from "../../src/collect/state-source.js";
import type { CompletedState, CompletedStateJson } from "../../src/core/completed-state.js";
import { FAILED_ITEMS_INLINE } from "../../src/core/item-lines.js";
import { writeResultFile } from "../../src/core/result-file.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import type { StateFile } from "../../src/plan/state-file.js";
import { buildReportModel, MAX_MAP_ITEMS_SHOWN } from "../../src/report/model.js";
import type { ReportModel, TreeNode } from "../../src/report/model.js";
import { compilePlan, map, pipeline, stateFile, step } from "../local/helpers.js";

const ITEMS = 3000;
const NOW = "2026-02-01T00:00:00.000Z";
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A finished run of a 3,000-item map (2 steps each; every 97th item fails step b, every 1,000th never ran b). */
function run(failEvery = 97): { plan: CompiledPlan; statesDir: string; facts: Map<string, JobFact> } {
  dir = mkdtempSync(join(tmpdir(), "hpcpipe-large-map-"));
  const items = Array.from({ length: ITEMS }, (_, i) => `obj/${i}.glb`);
  const plan = compilePlan(pipeline("p", [step("prep"), map("m", items, [step("a"), step("b")], { continue_on_item_error: true }), step("post")]), join(dir, "run"));
  const files: StateFile[] = [stateFile("p.prep", true), stateFile("p.post", true)];
  for (let i = 0; i < ITEMS; i++) {
    const meta = { exit_code: 0, reason: null, item: items[i] };
    files.push(stateFile(`p.m.${i}.a`, true, { meta, duration_s: (i * 37) % 101 }));
    if (i % 1000 === 999) continue;
    const bad = i % failEvery === 0;
    files.push(stateFile(`p.m.${i}.b`, !bad, { meta: { ...meta, exit_code: bad ? 3 : 0 } }));
    files.push(stateFile(`p.m.${i}`, !bad, { meta: { item: items[i] }, duration_s: (i * 53) % 211 }));
  }
  const statesDir = join(dir, "states");
  mkdirSync(statesDir);
  for (const f of files) writeFileSync(join(statesDir, `${f.key}.json`), `${JSON.stringify(f)}\n`);
  const facts = new Map<string, JobFact>(plan.jobs.map((j) => [j.id, { state: "COMPLETED", reason: null }]));
  return { plan, statesDir, facts };
}

function model(plan: CompiledPlan, result: CompletedStateJson): ReportModel {
  return buildReportModel({
    plan,
    result,
    run: { kind: "local", runId: "test-run", pipeline: "p", cluster: "local", attempt: 1, started: null, location: dir },
    scheduler: null,
    logs: new Map(),
    images: new Map(),
    generated: NOW,
  });
}

const mapNode = (m: ReportModel): TreeNode => m.tree.children.find((c) => c.key === "p.m") as TreeNode;

describe("a 3,000-item map kept in the lines file", () => {
  it("result.json holds the map's summary, its failed and slowest items only, and the summary and report say what they say for the map kept inline", async () => {
    const { plan, statesDir, facts } = run();
    const { states, problems } = await readStateDir(statesDir);
    const inline = mergeStates(plan, states, { now: NOW, jobFacts: facts, problems });
    const lined = mergeFromSource(plan, new DirSource(statesDir), { now: NOW, jobFacts: facts, items: { dir, max: 1000 } });

    // Bounded: the items' keys in result.json are the failed items' (31 failed, 3 whose b wrote no state: failed by
    // the merge) and the ten slowest (those 3, whose span reaches the merge's time, and 7 others), not 3,000 x 3.
    const kept = lined.step_states?.["p.m"]?.meta.item_lines as { failed_items: number[]; slowest: Array<{ index: number }> };
    const failedItems = kept.failed_items;
    const slowOk = kept.slowest.map((s) => s.index).filter((i) => !failedItems.includes(i));
    expect(failedItems.length).toBe(31 + 3);
    expect(failedItems.length).toBeLessThan(FAILED_ITEMS_INLINE);
    expect(slowOk.length).toBe(7);
    const itemKeys = Object.keys(lined.step_states ?? {}).filter((k) => /^p\.m\.\d+/.test(k));
    expect(new Set(itemKeys.map((k) => Number(k.split(".")[2])))).toEqual(new Set([...failedItems, ...slowOk]));
    const resultPath = join(dir, "result.json");
    await writeResultFile(resultPath, lined);
    const json = JSON.parse(readFileSync(resultPath, "utf8")) as CompletedStateJson;
    expect(readFileSync(resultPath).length).toBeLessThan(200_000);

    // The end-of-run summary: the same text.
    expect(formatResultSummary(lined, "t")).toBe(formatResultSummary(inline, "t"));
    expect(formatResultSummary(lined, "t")).toMatch(/^p\.m +ok .*3,000 items: 2,966 ok, 34 failed \(items 0, 97, 194, 291, 388 and 29 more\); slowest: item \d+/m);

    // Status: the map's counts travel with its step, its failed items are listed, not 3,000 items.
    const steps = stepResults(lined);
    expect(steps["p.m"]?.item_lines).toMatchObject({ items: 3000, ok: 2966, failed: 34, not_run: 0 });
    expect(Object.keys(steps).length).toBe(Object.keys(lined.step_states ?? {}).length);

    // The report: the same counts of leaf steps; the map shows its failed items and counts the rest.
    const big = model(plan, json);
    const small = model(plan, inline.toJSON());
    expect(big.counts).toEqual(small.counts);
    expect(big.counts).toEqual({ ok: 2 + 3000 + 2966, failed: 31, not_run: 3, skipped: 0 });
    expect(big.errors).toEqual(small.errors);
    const shown = mapNode(big);
    expect(shown.children.map((c) => c.name)).toEqual([...failedItems, ...slowOk].map(String));
    expect(shown.children.length).toBeLessThanOrEqual(MAX_MAP_ITEMS_SHOWN);
    expect(shown.children.slice(0, failedItems.length).every((c) => c.outcome === "failed")).toBe(true);
    expect(shown.children.slice(failedItems.length).every((c) => c.outcome === "ok")).toBe(true);
    expect(shown.omitted).toEqual({ count: 3000 - failedItems.length - 7, byOutcome: { ok: 2966 - 7, failed: 0, not_run: 0, skipped: 0 } });
    expect((mapNode(small).omitted?.count ?? 0) + mapNode(small).children.length).toBe(3000);
  });

  it("keeps the states of the first 1,000 failed items and the ten slowest in result.json; the counts cover them all", () => {
    const { plan, statesDir, facts } = run(2);
    const lined: CompletedState = mergeFromSource(plan, new DirSource(statesDir), { now: NOW, jobFacts: facts, items: { dir, max: 10 } });
    const summary = lined.step_states?.["p.m"]?.meta.item_lines as { failed: number; not_run: number; failed_items: number[]; slowest: Array<{ index: number }> };
    expect(summary.failed).toBe(1500 + 3); // the even items, and the three (odd) whose b wrote no state
    expect(summary.failed_items).toEqual(Array.from({ length: 3000 }, (_, i) => i).filter((i) => i % 2 === 0 || i % 1000 === 999).slice(0, FAILED_ITEMS_INLINE));
    const inline = new Set([...summary.failed_items, ...summary.slowest.map((s) => s.index)]);
    expect(inline.size).toBeGreaterThan(FAILED_ITEMS_INLINE);
    expect(Object.keys(lined.step_states ?? {}).filter((k) => /^p\.m\.\d+$/.test(k)).length).toBe(inline.size);
  });
});
