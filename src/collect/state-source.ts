/**
 * Where the merger takes state files from: a map of files already read (the
 * cluster's, from one transfer), or a states directory on this machine read
 * one file at a time as the merge reaches its step, so a million items'
 * states are never held at once.
 */
import { closeSync, constants, openSync, opendirSync, readSync, rmSync, writeSync } from "node:fs";
import type { StateFile } from "../plan/state-file.js";
import { preview } from "../core/preview.js";
import { keyOfStateFile, parseStateText, readStateFile, STATE_TEMP_FILE } from "./read-states.js";
import type { ParsedState, StateProblem } from "./read-states.js";

export interface StateSource {
  /** The valid state file of `key`, or undefined. */
  state(key: string): StateFile | undefined;
  /** Why the file of `key` is unusable, until consumed; undefined when it is fine or absent. */
  problem(key: string): string | undefined;
  /** The merge made the problem of `key` a failed state: it is not reported again. */
  consume(key: string): void;
  /** The merge took `key` into the tree. */
  visit(key: string): void;
  /** The merge is done with the keys read so far (one item of a large map): they may be forgotten. */
  release(): void;
  /** After the merge: valid states that name no step of the tree, and problems of files that name none. */
  leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] };
  /** Frees what the source holds (a spool file); the merge that read it is done. */
  close?(): void;
}

/** Spool files not yet removed: removed when the process exits. */
const openSpools = new Set<string>();
let exitHook = false;

/** States already read and validated (and the files that were not usable), as readStateDir or a transfer gives them. */
export function mapSource(states: ReadonlyMap<string, StateFile>, problems: readonly StateProblem[] = []): StateSource {
  const keyed = new Map<string, string>();
  const stray: StateProblem[] = [];
  for (const p of problems) {
    const key = keyOfStateFile(p.file.slice(p.file.lastIndexOf("/") + 1));
    if (key !== null && !keyed.has(key)) keyed.set(key, p.error);
    else stray.push(p);
  }
  const visited = new Set<string>();
  return {
    state: (key) => states.get(key),
    problem: (key) => keyed.get(key),
    consume: (key) => void keyed.delete(key),
    visit: (key) => void visited.add(key),
    release: () => undefined,
    leftovers: () => {
      for (const [key, error] of keyed) stray.push({ file: `${key}.json`, error });
      return { unknown: [...states.keys()].filter((k) => !visited.has(k)), stray };
    },
  };
}

/**
 * What DirSource and SpoolSource share: each key's file read (and validated) once while the merge needs it,
 * its problem reported once, and forgotten on release(). A subclass says how to read one key's file.
 */
abstract class CachedSource implements StateSource {
  private readonly cache = new Map<string, ParsedState | null>();
  private readonly consumed = new Set<string>();
  /** Every unusable file met (the merge's, then the leftovers'). */
  readonly problems: StateProblem[] = [];

  /** The file of `key`, parsed and validated; null when there is none. */
  protected abstract load(key: string): ParsedState | null;

  abstract leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] };

  protected read(key: string): ParsedState | null {
    let r = this.cache.get(key);
    if (r === undefined) {
      r = this.load(key);
      if (r !== null && !r.ok) this.problems.push({ file: `${key}.json`, error: r.error });
      this.cache.set(key, r);
    }
    return r;
  }

  state(key: string): StateFile | undefined {
    const r = this.read(key);
    return r !== null && r.ok ? r.state : undefined;
  }

  problem(key: string): string | undefined {
    const r = this.read(key);
    return r !== null && !r.ok && !this.consumed.has(key) ? r.error : undefined;
  }

  consume(key: string): void {
    this.consumed.add(key);
  }

  visit(): void {}

  release(): void {
    this.cache.clear();
  }
}

/** A states directory read as the merge asks: four system calls per file, each file read once. */
export class DirSource extends CachedSource {
  /** State files in the directory (counted by leftovers()). */
  files = 0;

  constructor(readonly dir: string) {
    super();
  }

  protected load(key: string): ParsedState | null {
    return readStateFile(this.dir, `${key}.json`);
  }

  leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
    this.release();
    const badNames: StateProblem[] = [];
    const notInTree: StateProblem[] = [];
    const unknown: string[] = [];
    let dir;
    try {
      dir = opendirSync(this.dir, { bufferSize: 1024 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { unknown, stray: [] };
      throw err;
    }
    try {
      for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
        const name = entry.name;
        if (!name.endsWith(".json") || STATE_TEMP_FILE.test(name)) continue;
        this.files++;
        const key = keyOfStateFile(name);
        if (key !== null && inTree(key)) continue;
        const r = readStateFile(this.dir, name);
        if (r === null) continue;
        if (r.ok) unknown.push(r.key);
        else (key === null ? badNames : notInTree).push({ file: name, error: r.error });
      }
    } finally {
      dir.closeSync();
    }
    const byName = (a: StateProblem, b: StateProblem): number => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0);
    badNames.sort(byName);
    notInTree.sort(byName);
    const stray = [...badNames, ...notInTree];
    this.problems.push(...stray);
    return { unknown: unknown.map((k) => `${k}.json`).sort().map((n) => n.slice(0, -".json".length)), stray };
  }
}

/** A file of the transfer: its content, or why it was skipped (too large, a link, ...). */
export type SpooledFile = Buffer | { error: string };

/** Offset and length of a spooled file in one number: lengths below 2^21 (a state file is at most 1 MiB), offsets below 2^32. */
const LENGTH_BITS = 2 ** 21;

/**
 * State files as a transfer streams them in (the cluster's tar), spooled to
 * one local file as they arrive and read back as the merge asks: memory
 * holds one number per file, not the files. Names are checked as they come
 * (`states/<key>.json`); contents are validated when read. `close()`
 * removes the spool.
 */
export class SpoolSource extends CachedSource {
  private fd: number | null;
  private size = 0;
  private readonly index = new Map<string, number>();
  /** Files the transfer could not give (by key), and names that cannot be a step's. */
  private readonly keyedErrors = new Map<string, string>();
  private readonly badNames = new Map<string, StateProblem>();

  constructor(readonly path: string) {
    super();
    this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    openSpools.add(path);
    if (!exitHook) {
      exitHook = true;
      process.once("exit", () => {
        for (const p of openSpools) rmSync(p, { force: true });
      });
    }
  }

  /** State files received: one per key (a retried transfer's repeats count once). */
  get files(): number {
    return this.index.size + this.keyedErrors.size + this.badNames.size;
  }

  /** One file of the transfer; `path` is relative to the run directory (`states/<key>.json`). */
  add(path: string, file: SpooledFile): void {
    const name = stateFileNameOf(path);
    if (name === null) {
      // JSON-quoted so the merger cannot read it as any step's file.
      this.badNames.set(path, { file: preview(path), error: `unexpected file name from the cluster: ${preview(path)}` });
      return;
    }
    const key = keyOfStateFile(name);
    if (key === null) {
      const parsed = parseStateText(name, "");
      this.badNames.set(path, { file: name, error: parsed.ok ? "" : parsed.error });
      return;
    }
    if (!Buffer.isBuffer(file)) {
      this.index.delete(key);
      this.keyedErrors.set(key, file.error);
      return;
    }
    if (this.fd === null) throw new Error(`${this.path}: the spool is closed`);
    if (file.length >= LENGTH_BITS || this.size + file.length >= 2 ** 32) {
      this.keyedErrors.set(key, `state file is ${file.length} bytes, too large to spool`);
      return;
    }
    writeSync(this.fd, file, 0, file.length, this.size);
    this.keyedErrors.delete(key);
    this.index.set(key, this.size * LENGTH_BITS + file.length);
    this.size += file.length;
  }

  protected load(key: string): ParsedState | null {
    const at = this.index.get(key);
    if (at !== undefined && this.fd !== null) {
      const length = at % LENGTH_BITS;
      const buf = Buffer.allocUnsafe(length);
      readSync(this.fd, buf, 0, length, (at - length) / LENGTH_BITS);
      return parseStateText(`${key}.json`, buf.toString("utf8"));
    }
    const error = this.keyedErrors.get(key);
    return error !== undefined ? { ok: false, error } : null;
  }

  leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
    this.release();
    const unknown: string[] = [];
    const stray: StateProblem[] = [...this.badNames.values()];
    for (const key of this.index.keys()) {
      if (inTree(key)) continue;
      const r = this.read(key);
      if (r?.ok === true) unknown.push(key);
      else if (r !== null) stray.push({ file: `${key}.json`, error: r.error });
    }
    for (const [key, error] of this.keyedErrors) if (!inTree(key)) stray.push({ file: `${key}.json`, error });
    this.problems.push(...this.badNames.values());
    return { unknown, stray };
  }

  /** Closes and removes the spool file. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.path, { force: true });
    openSpools.delete(this.path);
  }
}

/** `<name>` of `states/<name>` with no further `/` (what a transfer of `states/*.json` may hold); else null. */
export function stateFileNameOf(path: string): string | null {
  if (!path.startsWith("states/")) return null;
  const name = path.slice("states/".length);
  return name !== "" && !name.includes("/") && !name.includes("\\") && name !== "." && name !== ".." ? name : null;
}
