/**
 * The line-per-item file of a merged result (`result.items.jsonl`, beside
 * `result.json`): a map with more items than `itemsInlineMax()` keeps its
 * items' states here, one JSON line per item, instead of in `step_states`.
 * Written as a stream (a temp file renamed into place), read as a stream,
 * every line validated: a result of a million items is never one object.
 */
import { closeSync, constants, copyFileSync, fsyncSync, linkSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { CompletedState, completedStateSchema } from "./completed-state.js";
import type { CompletedStateJson } from "./completed-state.js";
import { issuesText, preview } from "./preview.js";

/** The lines file's name, beside result.json. */
export const ITEMS_FILE = "result.items.jsonl";

/** A map with more items than this keeps them in the lines file (default; see itemsInlineMax). */
export const ITEMS_INLINE_MAX = 1000;

/** Environment variable that sets the threshold (tests, benchmarks): a whole number >= 0. */
export const ITEMS_INLINE_ENV = "HPCPIPE_ITEMS_INLINE_MAX";

/** How many failed items of a large map keep their states in result.json too (the rest are in the lines file only). */
export const FAILED_ITEMS_INLINE = 1000;

/** The threshold: HPCPIPE_ITEMS_INLINE_MAX when set, else ITEMS_INLINE_MAX. */
export function itemsInlineMax(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[ITEMS_INLINE_ENV];
  if (text === undefined || text === "") return ITEMS_INLINE_MAX;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw new RangeError(`${ITEMS_INLINE_ENV} must be a whole number >= 0, got ${preview(text)}`);
  return n;
}

/** One line of the lines file: a map's item with its own state and its steps' states (by the key after the item). */
export interface ItemLine {
  map: string;
  index: number;
  item: string | null;
  state: CompletedStateJson | null;
  steps: Record<string, CompletedStateJson>;
}

const itemLineSchema = z
  .object({
    map: z.string().min(1),
    index: z.number().int().nonnegative(),
    item: z.string().nullable(),
    state: completedStateSchema.nullable(),
    steps: z.record(z.string(), completedStateSchema),
  })
  .strict();

/** What result.json keeps of a map whose items are in the lines file (in the map state's `meta.item_lines`). */
export interface ItemLinesSummary {
  /** The lines file, relative to result.json's directory. */
  file: string;
  items: number;
  ok: number;
  failed: number;
  not_run: number;
  /** The failed (or not run) items' indices, the first FAILED_ITEMS_INLINE; their states are also in step_states. */
  failed_items: number[];
  /** The ten slowest items by their own state's duration, slowest first; their states are also in step_states. */
  slowest: Array<{ index: number; duration_s: number }>;
  /** Steps restored from the step cache (leaves with an exit code). */
  cached_steps: number;
  /** The items' leaf steps (every step of the plan, recorded or not): failed, not run, and succeeded by the attempt that ran them ("none": not recorded). */
  leaf_steps: { failed: number; not_run: number; ok_by_attempt: Record<string, number> };
}

export const itemLinesSummarySchema: z.ZodType<ItemLinesSummary> = z.object({
  file: z.string().min(1),
  items: z.number().int().nonnegative(),
  ok: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  not_run: z.number().int().nonnegative(),
  failed_items: z.array(z.number().int().nonnegative()),
  slowest: z.array(z.object({ index: z.number().int().nonnegative(), duration_s: z.number() })),
  cached_steps: z.number().int().nonnegative(),
  leaf_steps: z.object({ failed: z.number().int().nonnegative(), not_run: z.number().int().nonnegative(), ok_by_attempt: z.record(z.string(), z.number().int().nonnegative()) }),
});

/** The summary of a map state whose items are in the lines file, or null (its items are inline). */
export function itemLinesOf(state: { meta: Record<string, unknown> } | undefined): ItemLinesSummary | null {
  const raw = state?.meta.item_lines;
  if (raw === undefined) return null;
  const parsed = itemLinesSummarySchema.safeParse(raw);
  if (!parsed.success) throw new ItemLinesError(`meta.item_lines of the map is not valid: ${issuesText(parsed.error.issues)}`);
  return parsed.data;
}

/** A lines file that cannot be read or holds a bad line. */
export class ItemLinesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ItemLinesError";
  }
}

/** Where each merged result's lines file is now (temp or final), so the iterator and the writers find it. */
const linesFiles = new WeakMap<object, string>();
/** Temp lines files not yet renamed into place: removed when the process exits. */
const pendingTemps = new Set<string>();
let exitHook = false;

/** The lines file holding the items of `result` (absolute), or undefined when none is known. */
export function itemsFileOf(result: object): string | undefined {
  return linesFiles.get(result);
}

/** Records where the items of `result` are (after a merge wrote them, or a reader found them beside result.json). */
export function attachItemsFile(result: object, path: string): void {
  linesFiles.set(result, path);
}

/** Writes the first `length` bytes of `bytes` (all of it when it is shorter), however many calls it takes. */
function writeAll(fd: number, bytes: Buffer, length: number): void {
  const end = Math.min(length, bytes.length);
  for (let done = 0; done < end; ) done += writeSync(fd, bytes, done, end - done);
}

/** The writer's buffer: lines are encoded into it and written when it is full. */
const WRITE_BUFFER = 4 << 20;

/**
 * Writes item lines to a temp file in `dir` (synchronously: each line is
 * encoded into a 4 MiB buffer, written when full); `finish()` fsyncs and
 * closes it and returns its path, which the result's writer renames into
 * place (placeItemsFile).
 */
export class ItemLinesWriter {
  readonly path: string;
  private fd: number | null;
  private readonly buffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private size = 0;
  /** Lines written. */
  count = 0;

  constructor(dir: string) {
    this.path = join(dir, `.${ITEMS_FILE}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    this.fd = openSync(this.path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    pendingTemps.add(this.path);
    if (!exitHook) {
      exitHook = true;
      process.once("exit", () => {
        for (const p of pendingTemps) rmSync(p, { force: true });
      });
    }
  }

  write(line: ItemLine): void {
    if (this.fd === null) throw new ItemLinesError(`${this.path}: written after it was finished`);
    const text = `${JSON.stringify(line)}\n`;
    this.count++;
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.size + text.length * 3 > this.buffer.length) this.flush();
    if (text.length * 3 > this.buffer.length) writeAll(this.fd, Buffer.from(text, "utf8"), Infinity);
    else this.size += this.buffer.write(text, this.size, "utf8");
  }

  private flush(): void {
    if (this.fd === null) return;
    writeAll(this.fd, this.buffer, this.size);
    this.size = 0;
  }

  finish(): string {
    this.flush();
    if (this.fd !== null) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
    }
    return this.path;
  }

  /** Closes and removes the temp file (a merge that failed). */
  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.path, { force: true });
    pendingTemps.delete(this.path);
  }
}

/**
 * Puts the lines file of `result` beside `resultPath` (as ITEMS_FILE) before
 * result.json is written: a temp file is renamed into place, a file already
 * in place elsewhere is copied. A result without one removes a stale file.
 */
export function placeItemsFile(result: object, resultPath: string): void {
  const target = join(dirname(resultPath), ITEMS_FILE);
  const current = linesFiles.get(result);
  if (current === undefined) {
    rmSync(target, { force: true });
    return;
  }
  if (current === target) return;
  if (pendingTemps.has(current) && dirname(current) === dirname(target)) {
    renameSync(current, target);
    pendingTemps.delete(current);
  } else {
    // A second home for the same lines (a local run's directory and the run store): a hard link when it can be.
    const tmp = join(dirname(target), `.${ITEMS_FILE}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      linkSync(current, tmp);
    } catch {
      copyFileSync(current, tmp);
    }
    renameSync(tmp, target);
    if (pendingTemps.has(current)) {
      rmSync(current, { force: true });
      pendingTemps.delete(current);
    }
  }
  linesFiles.set(result, target);
}

const READ_CHUNK = 1 << 20;
/** A line longer than this is corrupt (a state file is at most 1 MiB; an item holds a few). */
const MAX_LINE_CHARS = 64 * 1024 * 1024;

/** The raw lines of a file, with their 1-based numbers, read in 1 MiB chunks. */
function* rawLines(path: string): Generator<{ text: string; line: number; last: boolean }> {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw new ItemLinesError(`${path}: cannot read the items of the result (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let carry = "";
    let line = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const text = carry + buf.toString("utf8", 0, n);
      // A chunk may end inside a multi-byte character: decode from the last newline on next time.
      let start = 0;
      for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
        yield { text: text.slice(start, nl), line: ++line, last: false };
        start = nl + 1;
      }
      carry = text.slice(start);
      if (carry.length > MAX_LINE_CHARS) throw new ItemLinesError(`${path}: line ${line + 1} is over ${MAX_LINE_CHARS} characters`);
    }
    if (carry !== "") yield { text: carry, line: line + 1, last: true };
  } finally {
    closeSync(fd);
  }
}

/**
 * Every line of a lines file (of map `mapKey` only, when given), in file
 * order, validated. A torn or corrupt line throws, naming the file and line.
 */
export function* readItemLines(path: string, mapKey?: string): Generator<ItemLine, void, undefined> {
  for (const { text, line, last } of rawLines(path)) {
    const where = `${path}: line ${line}`;
    if (last) throw new ItemLinesError(`${where}: torn (no newline at its end); the file is incomplete`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ItemLinesError(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    const parsed = itemLineSchema.safeParse(json);
    if (!parsed.success) throw new ItemLinesError(`${where}: not an item line: ${issuesText(parsed.error.issues)}`);
    if (mapKey === undefined || parsed.data.map === mapKey) yield parsed.data as ItemLine;
  }
}

/** One item line as a map item's states. */
export function itemLineStates(line: ItemLine): { state: CompletedState | null; steps: Record<string, CompletedState> } {
  const steps: Record<string, CompletedState> = {};
  for (const [k, v] of Object.entries(line.steps)) steps[k] = CompletedState.fromJSON(v);
  return { state: line.state === null ? null : CompletedState.fromJSON(line.state), steps };
}

/** The lines file of a result read from `resultPath`: named by the file field of a map's summary, beside it. */
export function itemsFileBeside(resultPath: string, summary: ItemLinesSummary): string {
  const name = basename(summary.file);
  if (name !== summary.file || name === "" || name === "." || name === "..") throw new ItemLinesError(`${resultPath}: meta.item_lines.file ${preview(summary.file)} is not a file name`);
  return join(dirname(resultPath), name);
}
