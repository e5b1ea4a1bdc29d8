/**
 * A one-line transfer progress bar for a terminal: bytes, rate and ETA,
 * redrawn at most every 100 ms, cleared when the transfer completes.
 */
import { formatBytes } from "../src/store/index.js";

export interface TransferBar {
  /** `total` null: unknown in advance (bytes and rate only). */
  update(done: number, total: number | null): void;
  /** Clears the line (the caller prints the summary). */
  end(): void;
}

/** Seconds for people: 42s, 3m05s, 1h02m. */
function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The bar's text for `done` of `total` bytes after `elapsedS` seconds, `width` characters of bar. */
export function transferLine(label: string, done: number, total: number | null, elapsedS: number, width = 24): string {
  if (total === null) return `${label} ${formatBytes(done)}  ${formatBytes(Math.round(elapsedS > 0 ? done / elapsedS : 0))}/s`;
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * width);
  const rate = elapsedS > 0 ? done / elapsedS : 0;
  const left = rate > 0 ? (total - done) / rate : Number.NaN;
  return `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(Math.round(rate))}/s  ETA ${eta(left)}`;
}

/** A bar on `stream` when it is a terminal; otherwise nothing (the plain progress lines say enough). */
export function transferBar(stream: NodeJS.WriteStream, label: string, now: () => number = Date.now): TransferBar {
  if (stream.isTTY !== true) return { update: () => undefined, end: () => undefined };
  const start = now();
  let last = 0;
  let drawn = false;
  return {
    update(done, total) {
      const t = now();
      if ((total === null || done < total) && t - last < 100) return;
      last = t;
      drawn = true;
      stream.write(`\r\x1b[2K${transferLine(label, done, total, (t - start) / 1000)}`);
    },
    end() {
      if (drawn) stream.write("\r\x1b[2K");
      drawn = false;
    },
  };
}
