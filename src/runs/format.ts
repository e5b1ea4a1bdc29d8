import type { RunRecord } from "./record.js";

/** The fields `hpcpipe runs --json` prints per run. */
export interface RunListEntry {
  run_id: string;
  pipeline: string;
  cluster: string;
  phase: RunRecord["phase"];
  created: string;
  updated: string;
  jobs: number;
  remote_dir: string;
  error: string | null;
}

export function runListEntry(record: RunRecord): RunListEntry {
  return {
    run_id: record.run_id,
    pipeline: record.pipeline,
    cluster: record.cluster,
    phase: record.phase,
    created: record.created,
    updated: record.updated,
    jobs: Object.keys(record.jobs).length,
    remote_dir: record.remote_dir,
    error: record.error,
  };
}

/** One line per run, newest first, under a header; a note when there are none. */
export function formatRunsTable(records: readonly RunRecord[]): string {
  if (records.length === 0) return "no runs recorded yet (submit one with `hpcpipe submit PIPELINE --cluster C`)\n";
  const rows = records.map((r) => [r.run_id, r.pipeline, r.cluster, r.phase, r.created.replace("T", " ").replace(/\.\d+Z$/, "Z"), String(Object.keys(r.jobs).length)]);
  const header = ["run", "pipeline", "cluster", "phase", "created", "jobs"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join("  ");
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}
