/**
 * Reading `states/*.json` written by job wrappers: size-capped, JSON-parsed,
 * validated with zod, and checked against its file name. Every bad file is a
 * problem for that step, never an exception for the whole collection.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseStateFile, STATE_FILE_MAX_BYTES, STEP_KEY_PATTERN } from "../plan/state-file.js";
import type { StateFile } from "../plan/state-file.js";
import { issuesText, preview } from "../core/preview.js";
import { badPackName, PACK_FILE_MAX_BYTES, PackIndex, packOfFileName, parsePackFile } from "./pack-file.js";
import type { PackContents } from "./pack-file.js";

/** A state file that could not be used, by file name (relative to the states directory). */
export interface StateProblem {
  file: string;
  error: string;
  /** The step key it is the state of, when the file is a pack file (one line of it; the error names the line). */
  key?: string;
}

export interface StateDirResult {
  /** Valid state files by step key. */
  states: Map<string, StateFile>;
  problems: StateProblem[];
}

/** `file`: where the unusable state is when that is not `<key>.json` (a pack file's line). */
export type ParsedState = { ok: true; key: string; state: StateFile } | { ok: false; error: string; file?: string };

/** Temp files of the atomic write (`.<key>.json.tmp.<pid>`) are not states. */
export const STATE_TEMP_FILE = /^\..*\.tmp\./;

/** The step key a state file name stands for, or null when the name cannot be a state file. */
export function keyOfStateFile(name: string): string | null {
  if (!name.endsWith(".json")) return null;
  const key = name.slice(0, -".json".length);
  return STEP_KEY_PATTERN.test(key) && key.length <= 1024 ? key : null;
}

/** Validates the text of one state file; pure, so remote collectors reuse it on fetched text. */
export function parseStateText(name: string, text: string): ParsedState {
  const key = keyOfStateFile(name);
  if (key === null) return { ok: false, error: `file name ${preview(name)} is not <step key>.json` };
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > STATE_FILE_MAX_BYTES) return tooBig(bytes);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, error: text.trim() === "" ? "state file is empty" : `not valid JSON (${why})` };
  }
  const parsed = parseStateFile(json);
  if (!parsed.success) {
    return { ok: false, error: `not a valid state file: ${issuesText(parsed.error.issues)}` };
  }
  if (parsed.data.key !== key) {
    return { ok: false, error: `state file names key ${preview(parsed.data.key)}, not ${preview(key)} as its file name says` };
  }
  return { ok: true, key, state: parsed.data };
}

/** Reads at most `limit` bytes of an open file; null when it is bigger. `expected` sizes the buffer (from fstat). */
function readCapped(fd: number, limit: number, expected: number): Buffer | null {
  let buf = Buffer.allocUnsafe(Math.min(expected, limit) + 1);
  let length = 0;
  for (;;) {
    const bytesRead = readSync(fd, buf, length, buf.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
    if (length > limit) return null;
    if (length === buf.length) {
      // The file grew since fstat: read on, still within the cap.
      const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, limit + 1));
      buf.copy(bigger, 0, 0, length);
      buf = bigger;
    }
  }
  return buf.subarray(0, length);
}

const tooBig = (size: number): ParsedState => ({ ok: false, error: `state file is ${size} bytes, over the ${STATE_FILE_MAX_BYTES}-byte limit` });

/**
 * One state file with four system calls (open, fstat, read, close) and no
 * promise per call: a million small files read at disk speed, not at the
 * pace of five async round trips each.
 */
function readOne(dir: string, name: string): ParsedState {
  if (keyOfStateFile(name) === null) return parseStateText(name, "");
  let fd: number;
  try {
    // No symlinks (a state must not point elsewhere) and no blocking on a FIFO.
    fd = openSync(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") return { ok: false, error: "not a regular file" };
    throw err;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return { ok: false, error: "not a regular file" };
    if (info.size > STATE_FILE_MAX_BYTES) return tooBig(info.size);
    const bytes = readCapped(fd, STATE_FILE_MAX_BYTES, info.size);
    if (bytes === null) return { ok: false, error: `state file is over the ${STATE_FILE_MAX_BYTES}-byte limit` };
    return parseStateText(name, bytes.toString("utf8"));
  } finally {
    closeSync(fd);
  }
}

/** A pack file's bytes (at most PACK_FILE_MAX_BYTES), why it cannot be read, or null when it does not exist. */
export function readPackBytes(dir: string, name: string): Buffer | { error: string } | null {
  let fd: number;
  try {
    fd = openSync(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    return { error: code === "ELOOP" ? "not a regular file" : `cannot read: ${err instanceof Error ? err.message : String(err)}` };
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return { error: "not a regular file" };
    const tooLarge = { error: `pack file is ${info.size} bytes, over the ${PACK_FILE_MAX_BYTES}-byte limit` };
    if (info.size > PACK_FILE_MAX_BYTES) return tooLarge;
    return readCapped(fd, PACK_FILE_MAX_BYTES, info.size) ?? { error: `pack file is over the ${PACK_FILE_MAX_BYTES}-byte limit` };
  } catch (err) {
    return { error: `cannot read: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * A pack file of a directory, parsed: its keys' last lines and its stray
 * problems (a bad name, a file that cannot be read, lines of no key).
 */
export function readPackFile(dir: string, name: string): PackContents {
  const pack = packOfFileName(name);
  if (pack === null) return { byKey: new Map(), stray: [{ file: name, error: badPackName(name) }] };
  const bytes = readPackBytes(dir, name);
  if (bytes === null) return { byKey: new Map(), stray: [] };
  if (!Buffer.isBuffer(bytes)) return { byKey: new Map(), stray: [{ file: name, error: bytes.error }] };
  return parsePackFile(name, pack, bytes);
}

/** One state file of a directory, validated; null when it does not exist (never written, or renamed away since listed). */
export function readStateFile(dir: string, name: string): ParsedState | null {
  try {
    return readOne(dir, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    return { ok: false, error: `cannot read: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Files read between two turns of the event loop (timers and signals keep running during a long read). */
const READ_BATCH = 512;

/**
 * Reads every `*.json` and `*.jsonl` (pack file) in a states directory; a
 * key's last line in a pack file wins over its `<key>.json`. A directory
 * that does not exist (no job ever started) gives no states and no problems.
 */
export async function readStateDir(statesDir: string): Promise<StateDirResult> {
  let names: string[];
  try {
    names = await readdir(statesDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { states: new Map(), problems: [] };
    throw err;
  }
  const wanted = names.filter((n) => n.endsWith(".json") && !STATE_TEMP_FILE.test(n)).sort();
  const states = new Map<string, StateFile>();
  const problems: StateProblem[] = [];
  for (let i = 0; i < wanted.length; i++) {
    if (i > 0 && i % READ_BATCH === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const file = wanted[i] as string;
    const r = readStateFile(statesDir, file);
    if (r === null) continue;
    if (r.ok) states.set(r.key, r.state);
    else problems.push({ file, error: r.error });
  }
  // Pack files after: a key's pack line wins over its own file (which is older: a restore at submission).
  const jsonl = names.filter((n) => n.endsWith(".jsonl") && !STATE_TEMP_FILE.test(n)).sort();
  if (jsonl.length === 0) return { states, problems };
  // In range order (as DirSource reads them), bad names where their name sorts.
  const index = new PackIndex();
  const bad = jsonl.filter((n) => !index.add(n));
  const packs = [...index.ordered(), ...bad];
  const fromPacks = new Map<string, StateProblem | null>();
  const stray: StateProblem[] = [];
  for (const file of packs) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    const contents = readPackFile(statesDir, file);
    for (const [key, line] of contents.byKey) {
      if (line.ok) states.set(key, line.state);
      else states.delete(key);
      fromPacks.set(key, line.ok ? null : { file, error: line.error, key });
    }
    // One by one: a pack file may have more bad lines than push() takes arguments.
    for (const p of contents.stray) stray.push(p);
  }
  const kept = problems.filter((p) => !fromPacks.has(keyOfStateFile(p.file) ?? ""));
  const keyed = [...fromPacks.values()].filter((p): p is StateProblem => p !== null);
  return { states, problems: [...kept, ...stray, ...keyed] };
}
