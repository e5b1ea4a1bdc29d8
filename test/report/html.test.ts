// The report page (src/report/html.ts): every string from a run is text, never markup; the page is
// self-contained (inline CSS, data: images, a strict CSP, no script, no URL) and holds every part of the model.
import { describe, expect, it } from "vitest";
import { escapeHtml, formatDuration, html, renderReportHtml, REPORT_CSP, SafeHtml } from "../../src/report/html.js";
import { buildReportModel } from "../../src/report/model.js";
import type { FetchedImage, LogTail, ReportInput, ReportModel } from "../../src/report/model.js";
import { compileSpec, failed, result, solidPng, state } from "./helpers.js";

const SCRIPT = "<script>alert(1)</script>";
const BREAKOUT = `"><img src=x onerror=alert(1)>`;
const HOST = "<b onmouseover=alert(2)>n1</b>";
const ITEM = `'"><svg onload=alert(3)>`;
const PIPELINE = "</title><script>alert(4)</script>";

/** Tags the renderer itself writes; anything else in the page would be injected markup. */
const ALLOWED_TAGS = new Set([
  "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "span", "table", "tr", "th", "td",
  "p", "ul", "li", "section", "div", "article", "pre", "code", "figure", "figcaption", "img", "br", "footer",
]);

/** Every start tag of the page (escaped text such as `&lt;img` is not one). */
function tags(page: string): Array<{ name: string; text: string }> {
  return [...page.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>/g)].map((m) => ({ name: (m[1] ?? "").toLowerCase(), text: m[0] }));
}

const png = solidPng(6, 6, [255, 0, 255]);

function hostileModel(): ReportModel {
  const steps = {
    "p.make": state({ timestamp: "2026-01-01T00:00:01.000Z", outputs: { files: ["out/pic.png", "out/x.svg"] }, meta: { host: HOST, slurm: { job_id: "5", task: 0 } } }),
    "p.check.0.run": failed(SCRIPT, { timestamp: "2026-01-01T00:00:03.000Z", meta: { host: HOST, item: ITEM, exit_code: 2, slurm: { job_id: "7", array_job_id: "6", array_task_id: "0", task: 0 } } }),
    "p.check.0": failed(`p.check.0.run: ${SCRIPT}`, { meta: { item: ITEM } }),
    "p.check": failed(SCRIPT),
  };
  const tail: LogTail = { stream: "stderr", path: "logs/p.check.0.run.err", lines: ["fine", BREAKOUT, SCRIPT], truncated: true, missing: null };
  const input: ReportInput = {
    plan: null,
    result: result({ success: false, failure: "STEP_FAILED", error: SCRIPT }, steps),
    run: { kind: "cluster", runId: "r1", pipeline: PIPELINE, cluster: `<i>${SCRIPT}</i>`, attempt: 1, started: "2026-01-01T00:00:00.000Z", location: `$HOME/${BREAKOUT}`, phase: "collected", partial: SCRIPT },
    scheduler: { available: false, why: SCRIPT },
    logs: new Map([["p.check.0.run", [tail, { stream: "stdout", path: "logs/p.check.0.run.out", lines: [], truncated: false, missing: BREAKOUT }]]]),
    images: new Map<string, FetchedImage>([["out/pic.png", { bytes: png }]]),
    generated: "2026-01-02T00:00:00.000Z",
  };
  return buildReportModel(input);
}

describe("the html tag", () => {
  it("escapes every interpolation, joins arrays, and keeps its own markup", () => {
    const inner = html`<b>${"<i>"}</b>`;
    expect(html`<p title="${'"x"'}">${inner}${["<", new SafeHtml("<br>"), 3, null, undefined, false]}</p>`.text).toBe(
      '<p title="&quot;x&quot;"><b>&lt;i&gt;</b>&lt;<br>3</p>',
    );
    expect(escapeHtml("a&b'c\u0000d\te\nf")).toBe("a&amp;b&#39;c\uFFFDd\te\nf");
  });

  it("formats durations for people", () => {
    expect([formatDuration(0.123), formatDuration(12.34), formatDuration(123), formatDuration(3723), formatDuration(null)]).toEqual([
      "0.12 s",
      "12.3 s",
      "2 min 03 s",
      "1 h 02 min",
      "–",
    ]);
  });
});

describe("renderReportHtml", () => {
  const model = hostileModel();
  const page = renderReportHtml(model);

  it("shows hostile errors, log lines, hosts, items, names and paths as text", () => {
    expect(page).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(page).toContain("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
    expect(page).toContain("&lt;b onmouseover=alert(2)&gt;n1&lt;/b&gt;");
    expect(page).toContain("&#39;&quot;&gt;&lt;svg onload=alert(3)&gt;");
    expect(page).toContain("&lt;/title&gt;&lt;script&gt;alert(4)&lt;/script&gt;");
    expect(page.toLowerCase()).not.toContain("<script");
    expect(page).not.toContain(SCRIPT);
    expect(page).not.toContain(BREAKOUT);
    expect(page).not.toContain(HOST);
    expect(page).not.toContain(ITEM);
  });

  it("holds only the renderer's own tags, no event handler, no link, no URL but data: images", () => {
    const all = tags(page);
    expect(all.filter((t) => !ALLOWED_TAGS.has(t.name))).toEqual([]);
    expect(all.filter((t) => /\son[a-z]+\s*=/i.test(t.text))).toEqual([]);
    expect(page).not.toMatch(/\shref\s*=/i);
    const imgs = all.filter((t) => t.name === "img");
    expect(imgs).toHaveLength(1);
    expect(imgs[0]?.text).toContain(`src="data:image/png;base64,${png.toString("base64")}"`);
    expect(page).not.toMatch(/https?:\/\//);
    expect(page).not.toMatch(/url\(/);
  });

  it("carries a strict Content-Security-Policy and a charset", () => {
    expect(REPORT_CSP).toBe("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'");
    expect(page).toContain(`<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP.replace(/'/g, "&#39;")}">`);
    expect(page).toContain('<meta charset="utf-8">');
    expect(page.startsWith("<!DOCTYPE html>")).toBe(true);
  });

  it("has every part of the model: tree nodes with badges, timeline rows, errors with logs, images and notes", () => {
    const count = (re: RegExp): number => (page.match(re) ?? []).length;
    const nodes = (n: ReportModel["tree"]): number => 1 + n.children.reduce((s, c) => s + nodes(c), 0);
    expect(count(/<li class="node /g)).toBe(nodes(model.tree));
    const all = (n: ReportModel["tree"]): ReportModel["tree"][] => [n, ...n.children.flatMap(all)];
    const outcomes = all(model.tree).map((n) => n.outcome);
    // Tree badges, plus the header's overall badge and one per error.
    expect(count(/<span class="badge ok">/g)).toBe(outcomes.filter((o) => o === "ok").length);
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(1);
    expect(count(/<span class="badge failed">/g)).toBe(outcomes.filter((o) => o === "failed").length + 1 + model.errors.length);
    expect(count(/<div class="tl-row">/g)).toBe(model.timeline.rows.length);
    expect(count(/<span class="tl-wait" /g)).toBe(2);
    expect(count(/<article class="error"/g)).toBe(model.errors.length);
    expect(count(/<div class="log">/g)).toBe(1);
    expect(count(/<p class="muted log-missing">/g)).toBe(1);
    expect(count(/<figure class="image">/g)).toBe(1);
    expect(count(/<figure class="image missing">/g)).toBe(1);
    expect(page).toContain("SVG images are not embedded");
    expect(page).toContain('<ul class="notes">');
    expect(page).toContain("Queue waits are approximate");
    expect(page).toContain("(last 3 lines)");
    expect(page).toContain("exit status 2");
  });

  it("is the same page for the same model (no clock, no randomness)", () => {
    expect(renderReportHtml(hostileModel())).toBe(page);
  });

  it("an empty run still renders every section", () => {
    const plan = compileSpec("name: e\nsteps:\n  - step: a\n    run: \"true\"\n");
    const m = buildReportModel({
      plan,
      result: result({ success: true }, {}),
      run: { kind: "local", runId: "x", pipeline: "e", cluster: "local", attempt: 1, started: null, location: "/tmp/x" },
      scheduler: null,
      logs: new Map(),
      images: new Map(),
      generated: "2026-01-01T00:00:00.000Z",
    });
    const empty = renderReportHtml(m);
    for (const id of ["tree", "timeline", "errors", "images"]) expect(empty).toContain(`<section id="${id}">`);
    expect(empty).toContain("No step ran.");
    expect(empty).toContain("No step failed.");
  });
});
