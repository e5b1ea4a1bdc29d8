/**
 * How a run's status looks: the per-job table of `status` (and the results
 * once final), and the in-place redraw the live progress view uses
 * (progress-view.ts draws its frames). Pure functions over a RunStatus snapshot.
 */
import type { JobStatus } from "../runs/index.js";
import { itemTallyText, summaryRows } from "./map-items.js";
import { tallyOfLines } from "./summary.js";
import type { RunStatus, StepResult } from "./status.js";

/** A SLURM state with its reason: `PENDING (Dependency)`, `CANCELLED (DependencyNeverSatisfied)`, `COMPLETED`. */
export function stateText(state: string, reason: string | null): string {
  return reason === null || reason === "" || reason === "None" ? state : `${state} (${reason})`;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

function hhmmss(iso: string): string {
  return /T(\d\d:\d\d:\d\d)/.exec(iso)?.[1] ?? iso;
}

function countsText(c: JobStatus["counts"]): string {
  return `pending ${c.pending}, running ${c.running}, done ${c.done}, failed ${c.failed}`;
}

/** The headline: run, pipeline, cluster, totals, and whether it has ended. */
export function headline(status: RunStatus): string {
  const tasks = status.counts.pending + status.counts.running + status.counts.done + status.counts.failed;
  const where = `run ${status.run_id} (${status.pipeline} on ${status.cluster})`;
  const end = status.final ? (status.result ? (status.result.success ? "finished: ok" : `finished: failed, exit ${status.result.exit_code}`) : "finished") : "running";
  return `${where}: ${status.jobs.length} job(s), ${tasks} task(s): ${countsText(status.counts)} [${end}]`;
}

/**
 * The live per-step view: one row per plan job (per chunk for a chunked
 * array) with its task counts and its SLURM state by name and reason.
 */
export function renderWatchView(status: RunStatus, options: { width?: number } = {}): string[] {
  const width = Math.max(60, options.width ?? 100);
  const rows = status.jobs.map((j) => ({
    job: j.job,
    slurm: j.slurmJobId ?? "-",
    label: j.label,
    counts: [j.counts.pending, j.counts.running, j.counts.done, j.counts.failed].map(String),
    state: stateText(j.state, j.reason),
  }));
  let idW = 3;
  let slurmW = 5;
  let numW = 4;
  let widestLabel = 4;
  for (const r of rows) {
    idW = Math.max(idW, r.job.length);
    slurmW = Math.max(slurmW, r.slurm.length);
    for (const c of r.counts) numW = Math.max(numW, c.length);
    widestLabel = Math.max(widestLabel, r.label.length);
  }
  const fixed = idW + slurmW + 4 * (numW + 2) + 6 + 24;
  const labelW = Math.max(12, Math.min(widestLabel, width - fixed));
  const line = (id: string, slurm: string, label: string, counts: string[], state: string): string =>
    [id.padEnd(idW), slurm.padEnd(slurmW), clip(label, labelW).padEnd(labelW), ...counts.map((c) => c.padStart(numW)), state].join("  ").trimEnd();
  const out = [clip(headline(status), width), line("job", "slurm", "step", ["pend", "run", "done", "fail"], "state")];
  for (const r of rows) out.push(line(r.job, r.slurm, r.label, r.counts, r.state));
  out.push(`updated ${hhmmss(status.polled_at)}${status.final ? "" : "  (Ctrl-C stops watching)"}`);
  // A line wider than the terminal would wrap and throw off the in-place redraw.
  return out.map((l) => clip(l, width));
}

/**
 * The text that replaces the previous frame in place: cursor up over it, each line cleared and rewritten
 * (`before`: lines for people printed above the new frame, where the old one began), and what is left of
 * the old frame below cleared. Never a clear from the top of the screen: some terminals (tmux) would
 * scroll the old frame into their history.
 */
export function redrawFrame(lines: readonly string[], previousLineCount: number, before: readonly string[] = []): string {
  const up = previousLineCount > 0 ? `\x1b[${previousLineCount}A` : "";
  const all = [...before, ...lines];
  const body = all.map((l) => `\r\x1b[2K${l}\n`).join("");
  return `${up}${body}${previousLineCount > all.length ? "\x1b[J" : ""}`;
}

/** The status as text, for `status` without --watch: the table and, once final, every step's result. */
export function formatStatus(status: RunStatus): string {
  const lines = renderWatchView(status, { width: 120 });
  lines.pop();
  if (status.error) lines.push(`error: ${status.error}`);
  if (status.steps !== null) {
    // A large map's items are counted in its result's summary (result.items.jsonl holds them), not listed.
    const rows = summaryRows(status.steps, (s: StepResult) => ({ success: s.success, notRun: s.not_run }), (s: StepResult) => tallyOfLines(s.item_lines));
    let w = 4;
    for (const row of rows) w = Math.max(w, row.key.length);
    w = Math.min(70, w);
    lines.push("", `${"step".padEnd(w)}  result`);
    for (const row of rows) {
      const s = row.state;
      const own = s.success ? "ok" : s.not_run ? `not run: ${stateText(s.slurm_state ?? "?", s.slurm_reason)}` : `${s.failure ?? "failed"}: ${s.error ?? ""}`;
      const result = row.kind === "map" ? `${own.replace(/\s+/g, " ").slice(0, 160)}; ${itemTallyText(row.items)}` : own.replace(/\s+/g, " ").slice(0, 200);
      lines.push(`${row.key.padEnd(w)}  ${result}`);
    }
  }
  for (const p of status.state_problems) lines.push(`unusable state file ${p.file}: ${p.error}`);
  if (!status.final) lines.push(`(still running: \`hpcpipe status ${status.run_id} --watch\` follows it, \`hpcpipe collect ${status.run_id}\` gathers the results)`);
  else if (status.steps !== null) lines.push(`(\`hpcpipe collect ${status.run_id}\` writes the merged result)`);
  return `${lines.join("\n")}\n`;
}
