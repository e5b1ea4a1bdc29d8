// What the state files alone say about a run's tasks (src/watch/task-ends.ts), for a packed map
// submitted with some items already done (restored from the step cache, or a resume's earlier
// successes): the job skips those items and writes nothing for them, so their earlier files end them,
// but only when the job really skips them: a success of the same definition, restored or idempotent.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { preparePlan } from "../../src/app/prepare.js";
import { buildStepIndex } from "../../src/collect/job-index.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { stateFileSchema } from "../../src/plan/state-file.js";
import { TaskEnds } from "../../src/watch/task-ends.js";
import { WatchLineSplitter } from "../../src/watch/events.js";
import type { WatchEvent } from "../../src/watch/events.js";
import { parseStateText } from "../../src/collect/read-states.js";

const LOCALCLUSTER = path.resolve("cluster-configs", "localcluster.yaml");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-task-ends-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A packed map of 4 items, 2 per task; item 0 done before this submission. */
function packedPlan(idempotent: boolean): CompiledPlan {
  const spec = path.join(dir, `packed-${String(idempotent)}.yaml`);
  writeFileSync(
    spec,
    [
      "name: packed",
      "steps:",
      "  - map: m",
      "    items: [a, b, c, d]",
      "    items_per_task: 2",
      "    steps:",
      "      - step: one",
      "        run: \"true\"",
      `        idempotent: ${String(idempotent)}`,
      "",
    ].join("\n"),
  );
  return preparePlan({ spec, cluster: LOCALCLUSTER, runId: "20260101-000000-abcdef", done: new Set(["packed.m.0.one", "packed.m.0"]) }).plan;
}

/** A state file of `key` as a job writes it (by SLURM array job `arrayJob`). */
function state(plan: CompiledPlan, key: string, options: { arrayJob: string; success?: boolean; cached?: boolean; signature?: string }) {
  const slot = buildStepIndex(plan).get(key);
  const signature = options.signature ?? slot?.steps.find((s) => s.key.replaceAll("{i}", String(slot.index)) === key)?.signature ?? "";
  return stateFileSchema.parse({
    success: options.success ?? true,
    timestamp: "2026-01-01T00:00:01.000Z",
    duration_s: 0.1,
    provides: [],
    outputs: {},
    error: null,
    meta: {},
    signature,
    failure: null,
    key,
    slurm: { job_id: `${options.arrayJob}1`, array_job_id: options.arrayJob, array_task_id: "0", task: 0 },
    ...(options.cached ? { cached: { run: "20251231-000000-aaaaaa", step: key, key: "a".repeat(64) } } : {}),
  });
}

describe("TaskEnds with items done before the submission", () => {
  it("both tasks of the packed map still run: item 0 shares task 0 with item 1", () => {
    const plan = packedPlan(true);
    expect(plan.jobs).toHaveLength(1);
    expect(plan.jobs[0]?.array?.count).toBe(2);
  });

  for (const how of ["restored from the step cache", "an idempotent earlier success"] as const) {
    it(`an item whose earlier files are ${how} ends with its task once the other item's files come`, () => {
      const plan = packedPlan(how === "an idempotent earlier success");
      const ends = new TaskEnds(plan, { j000: "500" });
      const cached = how === "restored from the step cache";
      ends.apply("packed.m.0.one", { state: state(plan, "packed.m.0.one", { arrayJob: "77", cached }), fresh: false });
      ends.apply("packed.m.0", { state: state(plan, "packed.m.0", { arrayJob: "77", cached, signature: "" }), fresh: false });
      expect(ends.allEnded()).toBe(false);
      for (const i of [1, 2, 3]) {
        ends.apply(`packed.m.${i}.one`, { state: state(plan, `packed.m.${i}.one`, { arrayJob: "500" }), fresh: true });
        ends.apply(`packed.m.${i}`, { state: state(plan, `packed.m.${i}`, { arrayJob: "500", signature: "" }), fresh: true });
      }
      expect(ends.allEnded()).toBe(true);
    });
  }

  it("an earlier file the job will NOT skip does not end its task: a failure, another definition, a step that is not idempotent", () => {
    const cases: Array<{ idempotent: boolean; success?: boolean; signature?: string }> = [
      { idempotent: true, success: false },
      { idempotent: true, signature: "ffffffffffff" },
      { idempotent: false },
    ];
    for (const c of cases) {
      const plan = packedPlan(c.idempotent);
      const ends = new TaskEnds(plan, { j000: "500" });
      ends.apply("packed.m.0.one", { state: state(plan, "packed.m.0.one", { arrayJob: "77", ...c }), fresh: false });
      ends.apply("packed.m.0", { state: state(plan, "packed.m.0", { arrayJob: "77", signature: "" }), fresh: false });
      for (const i of [1, 2, 3]) {
        ends.apply(`packed.m.${i}.one`, { state: state(plan, `packed.m.${i}.one`, { arrayJob: "500" }), fresh: true });
        ends.apply(`packed.m.${i}`, { state: state(plan, `packed.m.${i}`, { arrayJob: "500", signature: "" }), fresh: true });
      }
      expect(ends.allEnded(), JSON.stringify(c)).toBe(false);
    }
  });
});

describe("TaskEnds.isFailure: only a failure that fails its task is worth a scheduler query", () => {
  /** A packed map of 4 items; `allowItems`: continue_on_item_error; step two has continue_on_error. */
  function plan(allowItems: boolean): CompiledPlan {
    const spec = path.join(dir, `failures-${String(allowItems)}.yaml`);
    writeFileSync(
      spec,
      [
        "name: packed",
        "steps:",
        "  - map: m",
        "    items: [a, b, c, d]",
        "    items_per_task: 2",
        `    continue_on_item_error: ${String(allowItems)}`,
        "    steps:",
        "      - step: one",
        '        run: "true"',
        "      - step: two",
        '        run: "true"',
        "        continue_on_error: true",
        "",
      ].join("\n"),
    );
    return preparePlan({ spec, cluster: LOCALCLUSTER, runId: "20260101-000000-abcdef" }).plan;
  }
  const failed = (p: CompiledPlan, key: string) => ({ state: state(p, key, { arrayJob: "500", success: false }), fresh: true });

  it("a failed step and its failed item fail the task when the map does not go on", () => {
    const p = plan(false);
    const ends = new TaskEnds(p, { j000: "500" });
    ends.apply("packed.m.1.one", failed(p, "packed.m.1.one"));
    ends.apply("packed.m.1", failed(p, "packed.m.1"));
    expect(ends.isFailure("packed.m.1.one")).toBe(true);
    expect(ends.isFailure("packed.m.1")).toBe(true);
  });

  it("a step with continue_on_error fails nothing", () => {
    const p = plan(false);
    const ends = new TaskEnds(p, { j000: "500" });
    ends.apply("packed.m.1.two", failed(p, "packed.m.1.two"));
    expect(ends.isFailure("packed.m.1.two")).toBe(false);
  });

  it("with continue_on_item_error, an item's failures fail nothing", () => {
    const p = plan(true);
    const ends = new TaskEnds(p, { j000: "500" });
    ends.apply("packed.m.2.one", failed(p, "packed.m.2.one"));
    ends.apply("packed.m.2", failed(p, "packed.m.2"));
    expect(ends.isFailure("packed.m.2.one")).toBe(false);
    expect(ends.isFailure("packed.m.2")).toBe(false);
  });

  it("a fresh file of unknown content is still worth a query; another submission's failure is not", () => {
    const p = plan(true);
    const ends = new TaskEnds(p, { j000: "500" });
    ends.apply("packed.m.3", { state: null, fresh: true });
    expect(ends.isFailure("packed.m.3")).toBe(true);
    ends.apply("packed.m.0.one", { state: state(p, "packed.m.0.one", { arrayJob: "77", success: false }), fresh: false });
    expect(ends.isFailure("packed.m.0.one")).toBe(false);
  });
});

describe("TaskEnds.adopt: a tracker of a changed plan starts from what the last one knew", () => {
  it("carries every file over, judged by the new tracker's SLURM job ids", () => {
    const plan = packedPlan(false);
    const old = new TaskEnds(plan, { j000: "500" });
    for (const i of [0, 1, 2, 3]) {
      old.apply(`packed.m.${i}.one`, { state: state(plan, `packed.m.${i}.one`, { arrayJob: "500" }), fresh: true });
      old.apply(`packed.m.${i}`, { state: state(plan, `packed.m.${i}`, { arrayJob: "500", signature: "" }), fresh: true });
    }
    expect(old.allEnded()).toBe(true);
    const same = new TaskEnds(plan, { j000: "500" });
    expect(same.allEnded()).toBe(false);
    same.adopt(old);
    expect(same.allEnded()).toBe(true);
    const other = new TaskEnds(plan, { j000: "600" });
    other.adopt(old);
    expect(other.allEnded()).toBe(false);
  });
});

describe("TaskEnds from a pack file's lines (issue 16)", () => {
  it("the watcher's one S line per pack line, all with the pack file's signature, end the packed tasks like per-key files", () => {
    const plan = packedPlan(true);
    const ends = new TaskEnds(plan, { j000: "500" });
    const events: WatchEvent[] = [];
    const bad: string[] = [];
    const splitter = new WatchLineSplitter((e) => events.push(e), (p) => bad.push(p));
    // states/packed.m.items-0-1.jsonl then states/packed.m.items-2-3.jsonl: item lines, then unit lines, as the wrapper writes them.
    const packLines = (sig: string, items: number[]): string =>
      items
        .flatMap((i) => [state(plan, `packed.m.${i}.one`, { arrayJob: "500" }), state(plan, `packed.m.${i}`, { arrayJob: "500", signature: "" })])
        .map((s) => `S ${sig} ${s.key}.json ${JSON.stringify(s)}\n`)
        .join("");
    const stream = Buffer.from(`H 1 42\nM scan\n${packLines("11:900:5:5", [0, 1])}R scan\n${packLines("12:900:6:6", [2, 3])}E\n`);
    // Delivered in small pieces, lines split anywhere.
    for (let at = 0; at < stream.length; at += 97) splitter.write(stream.subarray(at, at + 97));
    expect(bad).toEqual([]);
    const states = events.filter((e): e is Extract<WatchEvent, { kind: "state" }> => e.kind === "state");
    expect(states.map((e) => e.name)).toEqual(["packed.m.0.one.json", "packed.m.0.json", "packed.m.1.one.json", "packed.m.1.json", "packed.m.2.one.json", "packed.m.2.json", "packed.m.3.one.json", "packed.m.3.json"]);
    expect(new Set(states.slice(0, 4).map((e) => e.signature))).toEqual(new Set(["11:900:5:5"]));
    for (const [n, e] of states.entries()) {
      const parsed = parseStateText(e.name, e.text ?? "");
      expect(parsed.ok).toBe(true);
      ends.apply(e.name.slice(0, -".json".length), { state: parsed.ok ? parsed.state : null, fresh: n >= 4 });
      if (n === 3) expect(ends.allEnded()).toBe(false);
    }
    expect(ends.allEnded()).toBe(true);
  });
});
