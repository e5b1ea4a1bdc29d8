/**
 * Renders a ReportModel as one self-contained HTML page: inline CSS, images
 * as data: URIs, no script, no external URL, and a Content-Security-Policy
 * that forbids anything else. Pure: model in, string out.
 *
 * Every value is interpolated through the `html` tag, which escapes it unless
 * it is markup the tag itself produced: a step name, an error, a log line or
 * a host can only ever be text.
 */
import { formatBytes, formatDuration } from "../core/units.js";
import type { ErrorEntry } from "./failures.js";
import type { ImageEntry } from "./images.js";
import type { LogTail } from "./log-tails.js";
import type { ReportModel } from "./model.js";
import type { Outcome } from "./states.js";
import type { Timeline, TimelineRow } from "./timeline.js";
import type { TreeNode } from "./tree.js";

/** Markup built by the `html` tag (or `raw`); anything else interpolated into it is escaped. */
export class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Value = SafeHtml | string | number | boolean | null | undefined | readonly Value[];

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

/** Escapes text for an HTML text node or a quoted attribute value; control characters become U+FFFD. */
export function escapeHtml(text: string): string {
  return text
    .replace(CONTROL, "\uFFFD")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return (value as readonly Value[]).map(render).join("");
  return escapeHtml(String(value));
}

/** Tagged template: the literal parts are markup, every interpolation is escaped (arrays are joined). */
export function html(strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += render(value);
    out += strings[i + 1] ?? "";
  });
  return new SafeHtml(out);
}

/** The Content-Security-Policy of every report: nothing loads or runs; inline styles and data: images only. */
export const REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

// ---------------------------------------------------------------------------- formatting

/** `1.23 s`, `2 min 03 s`, `1 h 02 min`: the one rule (src/core/units.ts). */
export { formatDuration } from "../core/units.js";

/** `2026-11-28 16:19:00 UTC`. */
export function formatTime(iso: string | number | null): string {
  if (iso === null) return "–";
  const t = typeof iso === "number" ? iso : Date.parse(iso);
  if (Number.isNaN(t)) return typeof iso === "string" ? iso : "–";
  return `${new Date(t).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

const OUTCOME_LABEL: Record<Outcome, string> = { ok: "ok", failed: "failed", skipped: "skipped", not_run: "not run" };

function badge(outcome: Outcome, allowed = false): SafeHtml {
  return html`<span class="badge ${outcome}">${OUTCOME_LABEL[outcome]}${allowed ? " (allowed)" : ""}</span>`;
}

function pct(value: number): string {
  return `${Math.max(0, Math.min(100, value)).toFixed(3)}%`;
}

// ---------------------------------------------------------------------------- sections

function header(m: ReportModel): SafeHtml {
  const overall: Outcome = m.success ? "ok" : "failed";
  const rows: Array<[string, Value]> = [
    ["run", html`<code>${m.runId}</code>`],
    ["pipeline", m.pipeline],
    [m.kind === "cluster" ? "cluster" : "executor", m.kind === "cluster" || m.cluster === "local" ? m.cluster : `local (${m.cluster})`],
    ["attempt", String(m.attempt)],
    ["outcome", html`${badge(overall)} ${m.success ? "" : html`<span class="failure">${m.failure ?? "failed"}</span>`}`],
    ["exit code", String(m.exitCode)],
    [m.kind === "cluster" && m.attempt === 1 ? "submitted" : "started", formatTime(m.started)],
    ["finished", formatTime(m.finished)],
    ["wall time", formatDuration(m.wall_s)],
    ["steps", `${m.counts.ok} ok, ${m.counts.failed} failed, ${m.counts.skipped} skipped, ${m.counts.not_run} not run`],
    ["run directory", html`<code>${m.location}</code>`],
  ];
  if (m.phase !== null) rows.splice(4, 0, ["phase", m.phase]);
  return html`<header>
<h1>${m.pipeline} <span class="muted">run ${m.runId}</span></h1>
<table class="facts">${rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}</table>
${!m.success && m.error ? html`<p class="overall-error">${m.error}</p>` : ""}
${m.notes.length > 0 ? html`<ul class="notes">${m.notes.map((n) => html`<li>${n}</li>`)}</ul>` : ""}
</header>`;
}

function treeItem(node: TreeNode): SafeHtml {
  const details: Value[] = [];
  if (node.duration_s !== null && node.outcome !== "not_run") details.push(html`<span class="dur">${formatDuration(node.duration_s)}</span>`);
  if (node.host !== null) details.push(html`<span class="host">${node.host}</span>`);
  if (node.slurmId !== null) details.push(html`<span class="slurm">job ${node.slurmId}</span>`);
  if (node.fromAttempt !== null) details.push(html`<span class="muted">from attempt ${String(node.fromAttempt)}</span>`);
  const item = node.item !== null ? html` <span class="item">${node.item}</span>` : "";
  const problem =
    node.outcome === "failed" || node.outcome === "not_run"
      ? html`<div class="node-error">${node.outcome === "not_run" && node.reason && !(node.error ?? "").includes(node.reason) ? html`${node.reason}: ` : ""}${node.error ?? ""}</div>`
      : "";
  const omitted = node.omitted
    ? html`<li class="omitted">… ${String(node.omitted.count)} more items (${(Object.keys(node.omitted.byOutcome) as Outcome[])
        .filter((o) => (node.omitted?.byOutcome[o] ?? 0) > 0)
        .map((o) => `${node.omitted?.byOutcome[o] ?? 0} ${OUTCOME_LABEL[o]}`)
        .join(", ")})</li>`
    : "";
  const children = node.children.length > 0 || node.omitted ? html`<ul>${node.children.map(treeItem)}${omitted}</ul>` : "";
  return html`<li class="node ${node.kind}" data-key="${node.key}">${badge(node.outcome, node.allowed)} <span class="name">${node.name}</span>${item} <span class="kind">${node.kind}</span> ${details}${problem}${children}</li>`;
}

function treeSection(m: ReportModel): SafeHtml {
  return html`<section id="tree"><h2>Pipeline</h2><ul class="tree">${treeItem(m.tree)}</ul></section>`;
}

/** Tick marks at 1, 2 or 5 x 10^k seconds, at most about 8 of them. */
function ticks(spanS: number): number[] {
  const raw = spanS / 8;
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-3)));
  const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw) ?? 10 * power;
  const out: number[] = [];
  for (let t = 0; t <= spanS + 1e-9; t += step) out.push(t);
  return out;
}

function timelineRow(row: TimelineRow, t: Timeline): SafeHtml {
  const span = t.to - t.from;
  const at = (ms: number): number => ((ms - t.from) / span) * 100;
  const wait =
    row.waitFrom !== null && row.start > row.waitFrom
      ? html`<span class="tl-wait" style="left:${pct(at(row.waitFrom))};width:${pct(at(row.start) - at(row.waitFrom))}"></span>`
      : "";
  const left = at(row.start);
  const width = Math.max(0.25, at(row.end) - left);
  const waitText =
    row.wait_s === null
      ? "–"
      : html`${formatDuration(row.wait_s)}${row.dependency_s !== null && row.dependency_s >= 1 ? html`<small>${formatDuration(row.dependency_s)} on dependencies</small>` : ""}`;
  const runS = (row.end - row.start) / 1000;
  return html`<div class="tl-row"><div class="tl-label"><span class="tl-key">${row.key}</span><span class="tl-sub">${row.host ?? "?"}${row.slurmId !== null ? html` · job ${row.slurmId}` : ""}</span></div><div class="tl-track">${wait}<span class="tl-run ${row.outcome}" style="left:${pct(left)};width:${pct(width)}"></span></div><div class="tl-figs"><span class="tl-wait-s">${waitText}</span><span class="tl-run-s">${formatDuration(runS)}</span></div></div>`;
}

function timelineSection(m: ReportModel): SafeHtml {
  const t = m.timeline;
  if (t.rows.length === 0) return html`<section id="timeline"><h2>Timeline</h2><p class="muted">No step ran.</p></section>`;
  const spanS = (t.to - t.from) / 1000;
  const axis = ticks(spanS).map((s) => {
    const left = (s / spanS) * 100;
    const edge = left < 5 ? " start" : left > 92 ? " end" : "";
    return html`<span class="tick${edge}" style="left:${pct(left)}">${formatDuration(s).replace(".00 s", " s")}</span>`;
  });
  return html`<section id="timeline"><h2>Timeline</h2>
<p class="muted">From ${formatTime(t.from)}. Light: waiting (queue); solid: running. ${t.waitNote}${t.skipped > 0 ? ` ${t.skipped} steps reused from an earlier attempt are not drawn.` : ""}</p>
<div class="tl"><div class="tl-row tl-head"><div class="tl-label">step · host · job</div><div class="tl-track tl-axis">${axis}</div><div class="tl-figs"><span class="tl-wait-s">queue wait</span><span class="tl-run-s">ran</span></div></div>
${t.rows.map((r) => timelineRow(r, t))}</div>
${t.omitted > 0 ? html`<p class="muted">${String(t.omitted)} more steps are not drawn.</p>` : ""}
</section>`;
}

function logBlock(tail: LogTail): SafeHtml {
  if (tail.missing !== null) return html`<p class="muted log-missing">${tail.stream} (<code>${tail.path}</code>): ${tail.missing}</p>`;
  if (tail.lines.length === 0) return html`<p class="muted log-missing">${tail.stream} (<code>${tail.path}</code>): empty</p>`;
  return html`<div class="log"><div class="log-title">${tail.stream} <code>${tail.path}</code>${tail.truncated ? html` <span class="muted">(last ${String(tail.lines.length)} lines)</span>` : ""}</div><div class="log-scroll"><pre>${tail.lines.join("\n")}</pre></div></div>`;
}

function errorEntry(e: ErrorEntry): SafeHtml {
  const facts: Value[] = [];
  if (e.failure !== null) facts.push(html`<span class="failure">${e.failure}</span>`);
  if (e.exitCode !== null) facts.push(html`<span>exit status ${String(e.exitCode)}</span>`);
  if (e.reason !== null) facts.push(html`<span>${e.reason}</span>`);
  if (e.host !== null) facts.push(html`<span class="host">${e.host}</span>`);
  if (e.slurmId !== null) facts.push(html`<span class="slurm">job ${e.slurmId}</span>`);
  return html`<article class="error" data-key="${e.key}"><h3>${badge(e.notRun ? "not_run" : "failed", e.allowed)} <code>${e.key}</code></h3>
<p class="error-facts">${facts.map((f, i) => html`${i > 0 ? " · " : ""}${f}`)}</p>
<pre class="error-text">${e.error}</pre>
${e.logs.map(logBlock)}</article>`;
}

function errorsSection(m: ReportModel): SafeHtml {
  if (m.errors.length === 0) return html`<section id="errors"><h2>Errors</h2><p class="muted">No step failed.</p></section>`;
  return html`<section id="errors"><h2>Errors</h2>${m.errors.map(errorEntry)}${
    m.errorsOmitted > 0 ? html`<p class="muted">${String(m.errorsOmitted)} more failed steps are not listed.</p>` : ""
  }</section>`;
}

function imageFigure(img: ImageEntry): SafeHtml {
  const caption = html`<figcaption><code>${img.key}</code><br>${img.path}${img.bytes !== null ? html` <span class="muted">(${formatBytes(img.bytes)})</span>` : ""}</figcaption>`;
  if (img.dataUri === null) return html`<figure class="image missing"><div class="image-note">${img.note ?? "not embedded"}</div>${caption}</figure>`;
  return html`<figure class="image"><img src="${img.dataUri}" alt="${img.path}">${caption}</figure>`;
}

function imagesSection(m: ReportModel): SafeHtml {
  if (m.images.length === 0) return html`<section id="images"><h2>Images</h2><p class="muted">No step declared an image output.</p></section>`;
  return html`<section id="images"><h2>Images</h2><div class="images">${m.images.map(imageFigure)}</div></section>`;
}

const STYLE = `
:root{--ok:#1a7f37;--failed:#cf222e;--skipped:#6e7781;--not_run:#9a6700;--line:#d0d7de;--muted:#57606a;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;margin:0;padding:24px 32px;background:#fff}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}h3{font-size:15px;margin:0 0 6px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.muted{color:var(--muted);font-weight:normal}
table.facts{border-collapse:collapse}table.facts th{text-align:left;color:var(--muted);font-weight:normal;padding:2px 16px 2px 0}table.facts td{padding:2px 0}
.overall-error{color:var(--failed);white-space:pre-wrap}
.notes{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 8px 8px 28px}
.badge{display:inline-block;min-width:52px;text-align:center;color:#fff;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;line-height:18px}
.badge.ok{background:var(--ok)}.badge.failed{background:var(--failed)}.badge.skipped{background:var(--skipped)}.badge.not_run{background:var(--not_run)}
.failure{font-weight:600;color:var(--failed)}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:22px}ul.tree{padding-left:0}
ul.tree li{margin:3px 0}ul.tree ul{border-left:1px solid var(--line);margin-left:6px}
.name{font-weight:600}.item{font-family:ui-monospace,monospace;font-size:12px;background:var(--bg);padding:0 4px;border-radius:4px}
.kind{color:var(--muted);font-size:12px}.dur,.host,.slurm{color:var(--muted);font-size:12px;margin-left:8px}
.node-error{color:var(--failed);font-size:12.5px;margin-left:62px;white-space:pre-wrap;word-break:break-word}
.omitted{color:var(--muted)}
.tl{border:1px solid var(--line);border-radius:6px;padding:4px 8px}
.tl-row{display:grid;grid-template-columns:300px 1fr 210px;gap:10px;align-items:center;min-height:26px;border-bottom:1px solid #eaeef2}
.tl-row:last-child{border-bottom:0}
.tl-head{color:var(--muted);font-size:12px}
.tl-label{overflow:hidden}.tl-key{display:block;font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tl-sub{display:block;color:var(--muted);font-size:11px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tl-track{position:relative;height:16px;background:repeating-linear-gradient(90deg,transparent 0,transparent 49.5%,#f0f3f6 49.5%,#f0f3f6 50%)}
.tl-axis{height:18px;background:none}.tick{position:absolute;top:0;font-size:11px;transform:translateX(-50%);white-space:nowrap}.tick.start{transform:none}.tick.end{transform:translateX(-100%)}
.tl-wait{position:absolute;top:4px;height:8px;background:#d8dee4;border-radius:2px}
.tl-run{position:absolute;top:0;height:16px;border-radius:3px;min-width:2px}
.tl-run.ok{background:var(--ok)}.tl-run.failed{background:var(--failed)}.tl-run.skipped{background:var(--skipped)}.tl-run.not_run{background:var(--not_run)}
.tl-figs{display:flex;justify-content:space-between;align-items:center;font-size:12px;font-variant-numeric:tabular-nums}.tl-wait-s{color:var(--muted)}
.tl-wait-s small{display:block;font-size:10.5px}.tl-run-s{white-space:nowrap}
article.error{border:1px solid var(--line);border-left:4px solid var(--failed);border-radius:6px;padding:10px 12px;margin:10px 0}
.error-facts{margin:0 0 6px;color:var(--muted);font-size:12.5px}.error-facts .host,.error-facts .slurm{margin-left:0;font-size:12.5px}
pre{margin:4px 0;white-space:pre-wrap;word-break:break-word}
.error-text{color:var(--failed)}
.log{margin-top:8px}.log-title{font-size:12px;color:var(--muted)}
.log-scroll{display:flex;flex-direction:column-reverse;max-height:32em;overflow:auto;background:#0d1117;border-radius:6px}
.log pre{color:#e6edf3;padding:8px 10px;margin:0}
.log-missing{font-size:12px}
.images{display:flex;flex-wrap:wrap;gap:16px}
figure.image{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px;background:var(--bg);max-width:340px}
figure.image img{display:block;max-width:320px;max-height:320px;background:#fff}
figure.image figcaption{font-size:12px;margin-top:6px;word-break:break-all}
.image-note{width:200px;min-height:80px;color:var(--muted);font-size:12px}
footer{margin-top:32px;color:var(--muted);font-size:12px}
`;

/** The whole page. */
export function renderReportHtml(m: ReportModel): string {
  const title = `${m.pipeline} run ${m.runId}: ${m.success ? "ok" : (m.failure ?? "failed")}`;
  // What went wrong first: below a large tree (a 50-item map) the errors would be thousands of pixels down.
  const failedFirst = m.errors.length > 0;
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="hpcpipe report">
<title>${title}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body>
${header(m)}
${failedFirst ? errorsSection(m) : ""}
${treeSection(m)}
${timelineSection(m)}
${failedFirst ? "" : errorsSection(m)}
${imagesSection(m)}
<footer>Made by <code>hpcpipe report</code> at ${formatTime(m.generated)}.</footer>
</body>
</html>
`;
  return page.text;
}
