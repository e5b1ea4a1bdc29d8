// A failed run's report puts its errors right after the header, before the tree and the timeline
// (a failed 50-item map would push them thousands of pixels down); a run that succeeded keeps the tree first.
import { describe, expect, it } from "vitest";
import { renderReportHtml } from "../../src/report/html.js";
import { buildReportModel } from "../../src/report/model.js";
import type { ReportInput } from "../../src/report/model.js";
import { failed, result, state } from "./helpers.js";

function page(success: boolean): string {
  const steps: Record<string, ReturnType<typeof state>> = { "p.prep": state({ timestamp: "2026-01-01T00:00:01.000Z" }) };
  for (let i = 0; i < 50; i++) {
    steps[`p.map.${i}.s`] = i === 37 && !success ? failed("exit 9", { meta: { item: `m${i}`, exit_code: 9 } }) : state({ meta: { item: `m${i}` } });
    steps[`p.map.${i}`] = i === 37 && !success ? failed("p.map.37.s: exit 9", { meta: { item: `m${i}` } }) : state({ meta: { item: `m${i}` } });
  }
  steps["p.map"] = success ? state() : failed("p.map.37.s: exit 9");
  const input: ReportInput = {
    plan: null,
    result: result(success ? { success: true } : { success: false, failure: "STEP_FAILED", error: "p.map.37.s: exit 9" }, steps),
    run: { kind: "local", runId: "r1", pipeline: "p", cluster: "local", attempt: 1, started: "2026-01-01T00:00:00.000Z", location: "runs/p/r1" },
    scheduler: null,
    logs: new Map(),
    images: new Map(),
    generated: "2026-01-02T00:00:00.000Z",
  };
  return renderReportHtml(buildReportModel(input));
}

describe("the order of a report's sections", () => {
  it("a failed run: the errors come right after the header, before the tree and the timeline", () => {
    const p = page(false);
    const at = (id: string): number => p.indexOf(`<section id="${id}">`);
    expect(at("errors")).toBeGreaterThan(p.indexOf("</header>"));
    expect(at("errors")).toBeLessThan(at("tree"));
    expect(at("errors")).toBeLessThan(at("timeline"));
    expect(p.slice(at("errors"), at("tree"))).toContain("p.map.37.s");
  });

  it("a run that succeeded: the tree first, the (empty) errors after the timeline", () => {
    const p = page(true);
    const at = (id: string): number => p.indexOf(`<section id="${id}">`);
    expect(at("tree")).toBeLessThan(at("timeline"));
    expect(at("timeline")).toBeLessThan(at("errors"));
  });
});
