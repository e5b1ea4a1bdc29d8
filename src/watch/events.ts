/**
 * The line protocol of the state watcher (templates/watch-states.sh): every
 * line the cluster sends is validated with zod; a line that does not parse
 * is dropped (the caller logs it at debug level), never thrown.
 */
import { z } from "zod";
import { STATE_FILE_MAX_BYTES } from "../plan/state-file.js";
import { preview } from "../core/preview.js";

/** A state file's name as the watcher sends it (the wrapper's keys, `.json`). */
const STATE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\.json$/;

/** `inode:size:mtime:ctime`: changes whenever the file is replaced or rewritten. */
const SIGNATURE = /^\d{1,20}:(\d{1,12}):\d{1,20}:\d{1,20}$/;

const modeSchema = z.enum(["inotify", "scan"]);

/** One parsed line. */
export type WatchEvent =
  | { kind: "hello"; protocol: number; pid: number }
  | { kind: "mode"; mode: "inotify" | "scan" }
  | { kind: "ready"; mode: "inotify" | "scan" }
  /** A scan is done: the state lines since the last one are a consistent view (apply them together). */
  | { kind: "scanned" }
  /** `text` is the file's content, or null when the watcher did not send it (too big, unreadable, not text). */
  | { kind: "state"; name: string; signature: string; size: number; text: string | null };

const helloSchema = z.tuple([z.literal("H"), z.string().regex(/^\d{1,4}$/).transform(Number), z.string().regex(/^\d{1,10}$/).transform(Number)]);
const modeLineSchema = z.tuple([z.enum(["M", "R"]), modeSchema]);
const stateSchema = z.object({
  signature: z.string().regex(SIGNATURE),
  name: z.string().regex(STATE_NAME).max(1024 + 5),
  text: z.string().min(1).max(STATE_FILE_MAX_BYTES),
});

/** The longest line accepted: a state file at the cap plus its header. */
export const MAX_LINE_BYTES = STATE_FILE_MAX_BYTES + 4096;

/** Parses one line (without its newline); null when it is not a valid watcher line. */
export function parseWatchLine(line: string): WatchEvent | null {
  const tag = line.slice(0, 2);
  if (tag === "S ") {
    const [, signature = "", name = ""] = line.split(" ", 3);
    const text = line.slice(2 + signature.length + 1 + name.length + 1);
    const parsed = stateSchema.safeParse({ signature, name, text });
    if (!parsed.success) return null;
    const size = Number(SIGNATURE.exec(parsed.data.signature)?.[1]);
    const inline = parsed.data.text === "-" ? null : parsed.data.text;
    return { kind: "state", name: parsed.data.name, signature: parsed.data.signature, size, text: inline };
  }
  if (line === "E") return { kind: "scanned" };
  const words = line.split(" ");
  if (tag === "H ") {
    const parsed = helloSchema.safeParse(words);
    return parsed.success ? { kind: "hello", protocol: parsed.data[1], pid: parsed.data[2] } : null;
  }
  const parsed = modeLineSchema.safeParse(words);
  if (!parsed.success) return null;
  return parsed.data[0] === "M" ? { kind: "mode", mode: parsed.data[1] } : { kind: "ready", mode: parsed.data[1] };
}

/**
 * Splits a byte stream into lines and hands each parsed line on; a bad or
 * over-long line goes to `onBad` (with a short preview) and is skipped.
 */
export class WatchLineSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #skipping = false;

  constructor(
    private readonly onEvent: (event: WatchEvent) => void,
    private readonly onBad: (preview: string) => void,
  ) {}

  write(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.#push(chunk.subarray(start, nl));
      this.#line();
      start = nl + 1;
    }
    if (start < chunk.length) this.#push(chunk.subarray(start));
  }

  #push(part: Buffer): void {
    if (this.#skipping) return;
    this.#pendingBytes += part.length;
    if (this.#pendingBytes > MAX_LINE_BYTES) {
      this.#skipping = true;
      this.onBad(`a line longer than ${MAX_LINE_BYTES} bytes`);
      this.#pending = [];
      return;
    }
    this.#pending.push(part);
  }

  #line(): void {
    const skipped = this.#skipping;
    const text = Buffer.concat(this.#pending).toString("utf8");
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#skipping = false;
    if (skipped) return;
    const event = parseWatchLine(text);
    if (event === null) this.onBad(preview(text, 80));
    else this.onEvent(event);
  }
}
