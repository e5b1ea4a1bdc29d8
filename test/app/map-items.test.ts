/**
 * A map's items, one at a time (issue 16): mapItemStates walks a merged
 * result's items in index order with each item's own state and steps, and
 * Run.items gives the same from a run of the programmatic API (a real local run).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getRun } from "../../src/app/api.js";
import { CompletedState } from "../../src/core/completed-state.js";
import { mapItemStates } from "../../src/core/map-items.js";
import { cli } from "../cli/helpers.js";

const dir = mkdtempSync(join(tmpdir(), "hpcpipe-map-items-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("mapItemStates", () => {
  it("walks 20,000 items in index order, whatever order the keys are in, with each item's steps and nested maps", () => {
    const states: Record<string, CompletedState> = { "p.prep": CompletedState.ok(), "p.each": CompletedState.ok({ meta: { items: 20_000 } }) };
    for (let i = 19_999; i >= 0; i--) {
      states[`p.each.${i}`] = CompletedState.ok({ meta: { item: `m${i}.glb` } });
      states[`p.each.${i}.render`] = i === 42 ? CompletedState.fail("exit 3") : CompletedState.ok({ duration_s: i });
    }
    states["p.each.7.inner"] = CompletedState.ok();
    states["p.each.7.inner.0.x"] = CompletedState.ok();
    states["p.eachother.3"] = CompletedState.ok();
    const result = new CompletedState({ success: true, step_states: states });
    let n = 0;
    let last = -1;
    for (const entry of mapItemStates(result, "p.each")) {
      expect(entry.index).toBe(last + 1);
      last = entry.index;
      n++;
      if (entry.index === 42) expect([entry.item, entry.steps.render?.success]).toEqual(["m42.glb", false]);
      if (entry.index === 7) expect(Object.keys(entry.steps).sort()).toEqual(["inner", "inner.0.x", "render"]);
    }
    expect(n).toBe(20_000);
    expect(() => mapItemStates(result, "p.nope").next()).toThrow(/no step "p.nope"/);
  });
});

describe("Run.items", () => {
  it("gives every item of a local run's map with its item text and steps", { timeout: 120_000 }, async () => {
    const spec = join(dir, "items.yaml");
    writeFileSync(
      spec,
      ["name: items_api", "steps:", "  - map: each", "    items: [a, b, c]", "    continue_on_item_error: true", "    steps:", "      - step: check", '        run: test "$item" != b', "        requires: [item]", ""].join("\n"),
    );
    const previousHome = process.env.HPCPIPE_HOME;
    process.env.HPCPIPE_HOME = join(dir, "home");
    try {
      const ran = await cli("run", spec, "--runs-dir", join(dir, "runs"), "-q");
      expect(ran.code, ran.stderr).toBe(0);
      const [entry] = JSON.parse((await cli("runs", "--json")).stdout) as Array<{ run_id: string }>;
      const run = await getRun(entry?.run_id ?? "", { home: join(dir, "home") });
      const seen: Array<[number, string | null, boolean | undefined]> = [];
      for await (const item of run.items("items_api.each")) seen.push([item.index, item.item, item.steps.check?.success]);
      expect(seen).toEqual([
        [0, "a", true],
        [1, "b", false],
        [2, "c", true],
      ]);
    } finally {
      if (previousHome === undefined) delete process.env.HPCPIPE_HOME;
      else process.env.HPCPIPE_HOME = previousHome;
    }
  });
});
