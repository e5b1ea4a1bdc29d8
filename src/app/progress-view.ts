/**
 * How progress looks: a bar per row with its counts, throughput, ETA and
 * latest image for a terminal (a frame redrawn in place), and plain
 * timestamped lines for logs and pipes. Pure functions over RowProgress.
 */
import type { RowProgress } from "./progress.js";
import type { RunStatus } from "./status.js";

/** `[####!!>>....]`: done `#`, failed `!`, running `>`, pending `.`; every non-zero count gets at least one cell when it fits. */
export function progressBar(counts: RowProgress["counts"], width: number): string {
  const w = Math.max(1, Math.floor(width));
  const parts = [counts.done, counts.failed, counts.running, counts.pending];
  const total = parts.reduce((a, b) => a + b, 0);
  if (total === 0) return `[${".".repeat(w)}]`;
  const exact = parts.map((n) => (n * w) / total);
  const cells = exact.map(Math.floor);
  // Largest remainders first, then make sure a count that is there shows.
  let left = w - cells.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r);
  for (const { i } of order) {
    if (left <= 0) break;
    cells[i] = (cells[i] ?? 0) + 1;
    left -= 1;
  }
  for (let i = 0; i < cells.length; i++) {
    if ((parts[i] ?? 0) === 0 || (cells[i] ?? 0) > 0) continue;
    const widest = cells.indexOf(Math.max(...cells));
    if ((cells[widest] ?? 0) <= 1) continue;
    cells[widest] = (cells[widest] ?? 0) - 1;
    cells[i] = 1;
  }
  const [d = 0, f = 0, r = 0, p = 0] = cells;
  return `[${"#".repeat(d)}${"!".repeat(f)}${">".repeat(r)}${".".repeat(p)}]`;
}

/** `42s`, `3m05s`, `2h07m`; `?` for unknown. */
export function durationText(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Tasks ended per second, per minute or per hour, whichever reads best; `-` before the first. */
export function rateText(perS: number | null): string {
  if (perS === null || !(perS > 0)) return "-/min";
  if (perS >= 1) return `${perS.toFixed(perS >= 10 ? 0 : 1)}/s`;
  const perMin = perS * 60;
  if (perMin >= 1) return `${perMin.toFixed(perMin >= 10 ? 0 : 1)}/min`;
  return `${(perMin * 60).toFixed(1)}/h`;
}

export function countsText(row: Pick<RowProgress, "counts" | "failedItems">): string {
  const c = row.counts;
  return `${c.done} done, ${c.failed} failed, ${c.running} running, ${c.pending} pending${itemsFailedText(row)}`;
}

/** Items that failed beyond the failed tasks (allowed failures, packed tasks): `, 3 items failed`. */
function itemsFailedText(row: Pick<RowProgress, "counts" | "failedItems">): string {
  return row.failedItems > row.counts.failed ? `, ${row.failedItems} item${row.failedItems === 1 ? "" : "s"} failed` : "";
}

function etaOf(row: RowProgress): string {
  return row.final ? "ended" : `ETA ${durationText(row.etaS)}`;
}

/** Keeps the end of a path (the file name matters most): `…/out/frame_0042.png`. */
export function clipStart(text: string, width: number): string {
  return text.length <= width ? text : `…${text.slice(text.length - Math.max(0, width - 1))}`;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** Throughput means something for a row of more than one task, and once it ended only when it was measured. */
function rateOf(row: RowProgress): string | null {
  return row.total > 1 && !(row.final && row.ratePerS === null) ? rateText(row.ratePerS) : null;
}

/** What follows a row's bar, fullest first: left out from the right (state, rate, then the counts but the failed) when the terminal is narrow. */
function tails(row: RowProgress): string[] {
  const ended = `${row.counts.done + row.counts.failed}/${row.total}`;
  const rate = rateOf(row);
  const join = (parts: Array<string | null>): string => parts.filter((p): p is string => p !== null).join("  ");
  return [
    join([ended, countsText(row), rate, etaOf(row), row.state]),
    join([ended, countsText(row), rate, etaOf(row)]),
    join([ended, countsText(row), etaOf(row)]),
    join([ended, `${row.counts.failed} failed${itemsFailedText(row)}`, etaOf(row)]),
  ];
}

/** Bar width (10-30) and which tail fits every row of a frame `width` wide with labels `labelW` wide. */
function layout(rows: readonly RowProgress[], labelW: number, width: number): { barW: number; variant: number } {
  const last = 3;
  for (let variant = 0; variant < last; variant++) {
    let longest = 0;
    for (const row of rows) longest = Math.max(longest, (tails(row)[variant] ?? "").length);
    const barW = width - labelW - 6 - longest;
    if (barW >= 10) return { barW: Math.min(30, barW), variant };
  }
  return { barW: 10, variant: last };
}

/** One row: label, bar, ended/total, the counts, throughput, ETA and state, clipped to `width`. */
export function rowLine(row: RowProgress, labelW: number, width: number, shape = layout([row], labelW, width)): string {
  const label = clip(row.label, labelW).padEnd(labelW);
  return clip(`${label}  ${progressBar(row.counts, shape.barW)}  ${tails(row)[shape.variant] ?? ""}`, width).trimEnd();
}

/** The frame's first line: the run, and every task of it at a glance. */
export function frameHeadline(status: RunStatus): string {
  const c = status.counts;
  const tasks = c.pending + c.running + c.done + c.failed;
  const end = status.final ? (status.result ? (status.result.success ? "finished: ok" : `finished: failed, exit ${status.result.exit_code}`) : "finished") : "running";
  // Where the run stands comes before the counts: a narrow terminal clips the end of the line.
  return `run ${status.run_id} (${status.pipeline} on ${status.cluster}) [${end}]: ${c.done + c.failed}/${tasks} tasks ended, ${c.failed} failed`;
}

/** The rows of a frame and their image lines, within `room` lines: images of ended rows go first, then all images, then ended rows, then the rest. */
function rowLines(rows: readonly RowProgress[], line: (row: RowProgress) => string, image: (row: RowProgress) => string, room: number): string[] {
  const build = (showImage: (r: RowProgress) => boolean, shown: readonly RowProgress[]): string[] => {
    const out: string[] = [];
    for (const row of shown) {
      out.push(line(row));
      if (row.latestImage !== null && showImage(row)) out.push(image(row));
    }
    return out;
  };
  for (const showImage of [() => true, (r: RowProgress) => !r.final, () => false]) {
    const out = build(showImage, rows);
    if (out.length <= room) return out;
  }
  const open = rows.filter((r) => !r.final);
  const ended = rows.length - open.length;
  const summary = ended > 0 ? [`(${ended} ended row${ended === 1 ? "" : "s"} not shown)`] : [];
  const out = build(() => false, open);
  if (out.length + summary.length <= room) return [...summary, ...out];
  const keep = Math.max(0, room - summary.length - 1);
  return [...summary, ...out.slice(0, keep), `(${out.length - keep} more row${out.length - keep === 1 ? "" : "s"} not shown)`];
}

/**
 * The frame a terminal shows: the run's headline, a row (and its latest image) per step, group and map,
 * and when it was updated; at most `height` lines (a frame taller than the terminal could not be redrawn
 * in place).
 */
export function progressFrame(status: RunStatus, rows: readonly RowProgress[], options: { width?: number; height?: number; elapsedS?: number; stopped?: boolean } = {}): string[] {
  const width = Math.max(40, options.width ?? 100);
  let widest = 4;
  for (const r of rows) widest = Math.max(widest, r.label.length);
  const labelW = Math.min(widest, Math.max(12, Math.floor(width * 0.35)));
  const shape = layout(rows, labelW, width);
  const out = [clip(frameHeadline(status), width)];
  // The headline and the last line are always there; one line of the terminal stays free for the cursor.
  const room = Math.max(1, (options.height ?? Number.POSITIVE_INFINITY) - 3);
  out.push(...rowLines(rows, (row) => rowLine(row, labelW, width, shape), (row) => `  latest image: ${clipStart(row.latestImage ?? "", width - 16)}`, room));
  const elapsed = options.elapsedS === undefined ? "" : `  elapsed ${durationText(options.elapsedS)}`;
  const polled = Date.parse(status.polled_at);
  out.push(clip(`updated ${Number.isNaN(polled) ? status.polled_at : clockText(polled)}${elapsed}${status.final || options.stopped === true ? "" : "  (Ctrl-C stops watching)"}`, width));
  return out;
}

/** `HH:MM:SS` of an epoch time, local to this machine as a person's clock is. */
export function clockText(ms: number): string {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** One plain line for a row, for logs and pipes: `12:00:05 p.renders [4 tasks]: 2/4 ended (...), 1.2/min, ETA 35s, RUNNING, latest image PATH`. */
export function plainLine(row: RowProgress, atMs: number): string {
  const ended = row.counts.done + row.counts.failed;
  const parts = [`${ended}/${row.total} ended (${countsText(row)})`, rateOf(row), etaOf(row), row.state].filter((p): p is string => p !== null);
  if (row.latestImage !== null) parts.push(`latest image ${row.latestImage}`);
  return `${clockText(atMs)} ${row.label}: ${parts.join(", ")}`;
}
