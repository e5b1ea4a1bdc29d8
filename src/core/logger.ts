import { pino } from "pino";
import type { Logger } from "pino";

export type { Logger } from "pino";

/** The default logger: silent, so a library never writes unless given a logger. */
export const silentLogger: Logger = pino({ level: "silent" });

/** JSON lines (for programs and files) or compact lines (for people at a terminal). */
export type LogFormat = "json" | "pretty";

/** Where log lines go; written synchronously, one line a call. */
export interface LogSink {
  write(line: string): unknown;
}

export interface LoggerOptions {
  level?: string;
  /** A file descriptor or path (default 2, stderr), used when no `sink` is given. */
  destination?: string | number;
  /** Lines go here instead of to `destination` (e.g. `process.stderr`). */
  sink?: LogSink;
  name?: string;
  /** Default `json`. */
  format?: LogFormat;
}

/**
 * A pino logger at INFO writing JSON lines (or, with `format: "pretty"`,
 * compact lines for people) to a file descriptor, a path or a sink
 * (synchronously, so nothing is lost on exit).
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const dest: LogSink = options.sink ?? pino.destination({ dest: options.destination ?? 2, sync: true });
  const out: LogSink = options.format === "pretty" ? { write: (line: string) => dest.write(formatLogLine(line)) } : dest;
  return pino({ level: options.level ?? "info", name: options.name ?? "pipeline", base: undefined }, out);
}

/** `json` when asked, or when the stream is not a terminal (piped, a file); else `pretty`. */
export function logFormatFor(stream: { isTTY?: boolean }, asked: LogFormat | "auto" = "auto"): LogFormat {
  if (asked !== "auto") return asked;
  return stream.isTTY === true ? "pretty" : "json";
}

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const OWN_FIELDS = new Set(["level", "time", "msg", "name", "pid", "hostname", "v"]);
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

const escapeControl = (text: string): string => text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

function fieldText(value: unknown): string {
  // Durations for people: milliseconds are plenty (0.0018295470000000479 -> 0.002).
  if (typeof value === "number" && Number.isFinite(value) && !Number.isInteger(value)) {
    return Math.abs(value) >= 0.001 ? String(Math.round(value * 1000) / 1000) : value.toPrecision(2);
  }
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? escapeControl(value) : escapeControl(JSON.stringify(value));
  return escapeControl(JSON.stringify(value) ?? String(value));
}

/** One pino JSON line as `HH:MM:SS.mmm LEVEL message  key=value ...` (local time); anything else unchanged. */
export function formatLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return line;
    record = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof record.time === "number" ? new Date(record.time) : new Date();
  const hhmmss = [time.getHours(), time.getMinutes(), time.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  const stamp = `${hhmmss}.${String(time.getMilliseconds()).padStart(3, "0")}`;
  const level = (typeof record.level === "number" ? LEVELS[record.level] : undefined) ?? String(record.level ?? "");
  const fields = Object.entries(record)
    .filter(([k]) => !OWN_FIELDS.has(k))
    .map(([k, v]) => `${k}=${fieldText(v)}`);
  const msg = escapeControl(typeof record.msg === "string" ? record.msg : "");
  return `${stamp} ${level.padEnd(5)} ${msg}${fields.length > 0 ? `  ${fields.join(" ")}` : ""}\n`;
}
