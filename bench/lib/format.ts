// Figures and tables for the benchmarks' output (bench/submit.ts, bench/batch.ts, bench/load.ts).

/** Seconds since an arbitrary origin, from the monotonic clock. */
export const now = (): number => performance.now() / 1000;

export const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1 ? (sorted[Math.floor(mid)] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
};

export const sec = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(s < 10 ? 2 : 1)} s` : "-");
export const msec = (s: number): string => (Number.isFinite(s) ? `${(s * 1000).toFixed(0)} ms` : "-");
export const int = (n: number): string => (Number.isFinite(n) ? n.toLocaleString("en-US") : "-");
export const signed = (s: number): string => (Number.isFinite(s) ? `${s < 0 ? "-" : "+"}${sec(Math.abs(s))}` : "-");
/** Kilobytes as MiB. */
export const mib = (kb: number): string => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MiB` : "-");

/** The median, with the range when there are several values. */
export function spread(values: readonly number[]): string {
  if (values.length < 2) return sec(median(values));
  return `${sec(median(values))} [${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}]`;
}

/** `a / b` as "12.3x", or "-" when it cannot be computed. */
export function ratio(a: number, b: number): string {
  const r = a / b;
  return Number.isFinite(r) && r > 0 ? `${r.toFixed(r < 10 ? 2 : 1)}x` : "-";
}

/** Prints a table: a header row, a rule, then rows; the first column (and those in `left`) left-aligned, the others right-aligned. */
export function table(header: string[], rows: string[][], left: readonly number[] = []): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 || left.includes(i) ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ").trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const r of rows) console.log(line(r));
}
