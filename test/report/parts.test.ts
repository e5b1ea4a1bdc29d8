// The seams between the report model's parts (src/report/tree.ts, failures.ts, summary.ts):
// what each hands the next, on exact inputs. The whole model is tested in model.test.ts.
import { describe, expect, it } from "vitest";
import { failedSteps } from "../../src/report/failures.js";
import { MAX_LOG_TAILS } from "../../src/report/log-tails.js";
import { reportNotes, runSpan } from "../../src/report/summary.js";
import type { Timeline } from "../../src/report/timeline.js";
import { MAX_MAP_ITEMS_SHOWN, walkTree } from "../../src/report/tree.js";
import { compileSpec, failed, result, state } from "./helpers.js";

const ITEMS = 150;
const plan = compileSpec(`
name: big
steps:
  - map: m
    items: [${Array.from({ length: ITEMS }, (_, i) => `i${i}`).join(", ")}]
    continue_on_item_error: true
    steps:
      - step: s
        run: "true"
`);

function merged(): ReturnType<typeof result> {
  const steps: Record<string, ReturnType<typeof state>> = {};
  for (let i = 0; i < ITEMS; i++) {
    // As the merger writes them: the item's own state beside its step's.
    steps[`big.m.${i}.s`] = i === 120 ? failed("command exited with status 1") : state();
    steps[`big.m.${i}`] = i === 120 ? failed("big.m.120.s: command exited with status 1") : state();
  }
  return result({}, steps);
}

const line = (rows: Array<{ start: number; end: number }>, approximate = false): Timeline => ({
  rows: rows.map((r, i) => ({ key: `k${i}`, outcome: "ok", host: null, slurmId: null, waitFrom: null, wait_s: null, dependency_s: null, ...r })),
  from: 0,
  to: 1,
  waitNote: "waits are approximate",
  approximate,
  omitted: 0,
  skipped: 0,
});

describe("the walked tree hands on every leaf, while the tree shows a trimmed map", () => {
  it("lists all leaves in tree order, shows at most MAX_MAP_ITEMS_SHOWN items (the failed one kept), and says which failures are allowed", () => {
    const walked = walkTree(plan, merged(), 1);
    expect(walked.rootKey).toBe("big");
    expect(walked.leaves).toHaveLength(ITEMS);
    expect(walked.leaves.slice(0, 2)).toEqual(["big.m.0.s", "big.m.1.s"]);
    const map = walked.tree.children[0];
    expect(map?.children).toHaveLength(MAX_MAP_ITEMS_SHOWN);
    expect(map?.children.some((c) => c.key === "big.m.120")).toBe(true);
    expect(map?.omitted?.count).toBe(ITEMS - MAX_MAP_ITEMS_SHOWN);
    expect(walked.allowed.get("big.m.120")).toBe(true);
    expect(walked.allowed.get("big.m.0")).toBe(false);
  });

  it("the errors section takes the failed leaf from the walk, tolerated through its map item, with the logs fetched for it", () => {
    const walked = walkTree(plan, merged(), 1);
    const tail = { stream: "stdout" as const, path: "logs/big.m.120.s.out", lines: ["boom"], truncated: false, missing: null };
    const failures = failedSteps(walked, merged(), new Map([["big.m.120.s", [tail]]]));
    expect(failures.failedCount).toBe(1);
    expect(failures.omitted).toBe(0);
    expect(failures.entries).toMatchObject([{ key: "big.m.120.s", allowed: true, error: "command exited with status 1", logs: [tail] }]);
  });
});

describe("the totals", () => {
  it("a run's span starts at its recorded start, else at its first row, and ends at its last row", () => {
    const rows = [
      { start: Date.parse("2026-01-01T00:00:10.000Z"), end: Date.parse("2026-01-01T00:00:20.000Z") },
      { start: Date.parse("2026-01-01T00:00:05.000Z"), end: Date.parse("2026-01-01T00:00:15.000Z") },
    ];
    expect(runSpan("2026-01-01T00:00:00.000Z", line(rows))).toEqual({ started: "2026-01-01T00:00:00.000Z", finished: "2026-01-01T00:00:20.000Z", wall_s: 20 });
    expect(runSpan(null, line(rows))).toEqual({ started: "2026-01-01T00:00:05.000Z", finished: "2026-01-01T00:00:20.000Z", wall_s: 15 });
    expect(runSpan(null, line([]))).toEqual({ started: null, finished: null, wall_s: null });
    // A large map's span covers what the rows do not (its items beyond the timeline's sample).
    expect(runSpan(null, line(rows), [{ timestamp: "2026-01-01T00:00:01.000Z", duration_s: 59 }])).toEqual({ started: "2026-01-01T00:00:01.000Z", finished: "2026-01-01T00:01:00.000Z", wall_s: 59 });
    expect(runSpan(null, line(rows), [{ timestamp: "2026-01-01T00:00:06.000Z", duration_s: 1 }])).toEqual({ started: "2026-01-01T00:00:05.000Z", finished: "2026-01-01T00:00:20.000Z", wall_s: 15 });
  });

  it("the notes come in a fixed order, each only when it applies", () => {
    expect(reportNotes({ partial: null, timeline: line([]), notFetched: null, hasPlan: true, failedCount: MAX_LOG_TAILS })).toEqual([]);
    const all = reportNotes({ partial: "2 jobs still running", timeline: line([], true), notFetched: "offline: nothing fetched", hasPlan: false, failedCount: MAX_LOG_TAILS + 1 });
    expect(all).toHaveLength(5);
    expect(all[0]).toBe("This result is partial: 2 jobs still running.");
    expect(all[1]).toBe("waits are approximate");
    expect(all[2]).toBe("offline: nothing fetched");
    expect(all[3]).toMatch(/no plan\.json/);
    expect(all[4]).toBe(`${MAX_LOG_TAILS + 1} steps failed; log tails are shown for the first ${MAX_LOG_TAILS} (see \`hpcpipe logs\` for the others).`);
  });
});
