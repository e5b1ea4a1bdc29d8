/**
 * Reading `states/*.json` written by job wrappers: size-capped, JSON-parsed,
 * validated with zod, and checked against its file name. Every bad file is a
 * problem for that step, never an exception for the whole collection.
 */
import { constants } from "node:fs";
import { open, readdir } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { STATE_FILE_MAX_BYTES, STEP_KEY_PATTERN, stateFileSchema } from "../plan/state-file.js";
import type { StateFile } from "../plan/state-file.js";

/** A state file that could not be used, by file name (relative to the states directory). */
export interface StateProblem {
  file: string;
  error: string;
}

export interface StateDirResult {
  /** Valid state files by step key. */
  states: Map<string, StateFile>;
  problems: StateProblem[];
}

export type ParsedState = { ok: true; key: string; state: StateFile } | { ok: false; error: string };

/** Temp files of the atomic write (`.<key>.json.tmp.<pid>`) are not states. */
export const STATE_TEMP_FILE = /^\..*\.tmp\./;

const READ_CONCURRENCY = 64;

/** The step key a state file name stands for, or null when the name cannot be a state file. */
export function keyOfStateFile(name: string): string | null {
  if (!name.endsWith(".json")) return null;
  const key = name.slice(0, -".json".length);
  return STEP_KEY_PATTERN.test(key) && key.length <= 1024 ? key : null;
}

/** Validates the text of one state file; pure, so remote collectors reuse it on fetched text. */
export function parseStateText(name: string, text: string): ParsedState {
  const key = keyOfStateFile(name);
  if (key === null) return { ok: false, error: `file name ${JSON.stringify(name)} is not <step key>.json` };
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > STATE_FILE_MAX_BYTES) return tooBig(bytes);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, error: text.trim() === "" ? "state file is empty" : `not valid JSON (${why})` };
  }
  const parsed = stateFileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`);
    const more = parsed.error.issues.length > 5 ? `; and ${parsed.error.issues.length - 5} more` : "";
    return { ok: false, error: `not a valid state file: ${issues.join("; ")}${more}` };
  }
  if (parsed.data.key !== key) {
    return { ok: false, error: `state file names key ${JSON.stringify(parsed.data.key)}, not ${JSON.stringify(key)} as its file name says` };
  }
  return { ok: true, key, state: parsed.data };
}

/** Reads at most `limit` bytes of an open file; null when it is bigger. `expected` sizes the buffer (from fstat). */
async function readCapped(fh: FileHandle, limit: number, expected: number): Promise<string | null> {
  let buf = Buffer.allocUnsafe(Math.min(expected, limit) + 1);
  let length = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, length, buf.length - length, length);
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
  return buf.subarray(0, length).toString("utf8");
}

const tooBig = (size: number): ParsedState => ({ ok: false, error: `state file is ${size} bytes, over the ${STATE_FILE_MAX_BYTES}-byte limit` });

async function readOne(dir: string, name: string): Promise<ParsedState> {
  if (keyOfStateFile(name) === null) return parseStateText(name, "");
  let fh: FileHandle;
  try {
    // No symlinks (a state must not point elsewhere) and no blocking on a FIFO.
    fh = await open(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") return { ok: false, error: "not a regular file" };
    throw err;
  }
  try {
    const info = await fh.stat();
    if (!info.isFile()) return { ok: false, error: "not a regular file" };
    if (info.size > STATE_FILE_MAX_BYTES) return tooBig(info.size);
    const text = await readCapped(fh, STATE_FILE_MAX_BYTES, info.size);
    if (text === null) return { ok: false, error: `state file is over the ${STATE_FILE_MAX_BYTES}-byte limit` };
    return parseStateText(name, text);
  } finally {
    await fh.close();
  }
}

/**
 * Reads every `*.json` in a states directory. A directory that does not exist
 * (no job ever started) gives no states and no problems.
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
  const results = new Array<ParsedState>(wanted.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < wanted.length) {
      const i = next++;
      const name = wanted[i] as string;
      try {
        results[i] = await readOne(statesDir, name);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Renamed away between readdir and open: not a problem of the run.
        results[i] = code === "ENOENT" ? { ok: false, error: "" } : { ok: false, error: `cannot read: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, wanted.length) }, worker));

  const states = new Map<string, StateFile>();
  const problems: StateProblem[] = [];
  wanted.forEach((file, i) => {
    const r = results[i];
    if (r === undefined) return;
    if (r.ok) states.set(r.key, r.state);
    else if (r.error !== "") problems.push({ file, error: r.error });
  });
  return { states, problems };
}
