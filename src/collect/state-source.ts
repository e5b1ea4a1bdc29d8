/**
 * Where the merger takes state files from: a map of files already read (the
 * cluster's, from one transfer), or a states directory on this machine read
 * one file at a time as the merge reaches its step, so a million items'
 * states are never held at once.
 */
import { closeSync, constants, openSync, opendirSync, readSync, rmSync, writeSync } from "node:fs";
import type { StateFile } from "../plan/state-file.js";
import { STATE_FILE_MAX_BYTES } from "../plan/state-file.js";
import { preview } from "../core/preview.js";
import { badPackName, PACK_FILE_MAX_BYTES, PackIndex, packOfFileName, parsePackFile } from "./pack-file.js";
import type { PackContents, PackLine } from "./pack-file.js";
import { keyOfStateFile, parseStateText, readPackBytes, readStateFile, STATE_TEMP_FILE } from "./read-states.js";
import type { ParsedState, StateProblem } from "./read-states.js";

export interface StateSource {
  /** The valid state file of `key`, or undefined. */
  state(key: string): StateFile | undefined;
  /** Why the file of `key` is unusable, until consumed; undefined when it is fine or absent. */
  problem(key: string): string | undefined;
  /** The file (relative to the states directory) that holds the unusable state of `key`, when it is not `<key>.json` (a pack file). */
  fileOf?(key: string): string | undefined;
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
  const keyed = new Map<string, StateProblem>();
  const stray: StateProblem[] = [];
  for (const p of problems) {
    const key = p.key ?? keyOfStateFile(p.file.slice(p.file.lastIndexOf("/") + 1));
    if (key !== null && !keyed.has(key)) keyed.set(key, p);
    else stray.push(p);
  }
  const visited = new Set<string>();
  return {
    state: (key) => states.get(key),
    problem: (key) => keyed.get(key)?.error,
    fileOf: (key) => (keyed.get(key)?.key !== undefined ? keyed.get(key)?.file : undefined),
    consume: (key) => void keyed.delete(key),
    visit: (key) => void visited.add(key),
    release: () => undefined,
    leftovers: () => {
      for (const [key, p] of keyed) stray.push(p.key !== undefined ? { file: p.file, error: p.error } : { file: `${key}.json`, error: p.error });
      return { unknown: [...states.keys()].filter((k) => !visited.has(k)), stray };
    },
  };
}

/** Parsed pack files kept at once: the merge reads a map's items in order, so one is read per 100 items, each once. */
const PARSED_PACKS = 4;

/** A pack file parsed by a CachedSource, and the keys the merge asked of it so far (null: none, or all). */
interface ParsedPack {
  file: string;
  contents: PackContents;
  asked: Set<string> | null;
}

/** Pack file bytes, why they cannot be read, or null (gone). */
type PackBytes = Buffer | { error: string } | null;

/**
 * What DirSource and SpoolSource share: each key's state read (and validated)
 * once while the merge needs it, its problem reported once, and forgotten on
 * release(). A key's state is its last line in a pack file if there is one
 * (found through the PackIndex of file names; the last few pack files stay
 * parsed), else its `<key>.json`. A subclass says how to read one key's file
 * and one pack file, and lists its per-key files for the leftovers.
 */
abstract class CachedSource implements StateSource {
  private cache = new Map<string, ParsedState | null>();
  private readonly consumed = new Set<string>();
  /** Every unusable file met (the merge's, then the leftovers'). */
  readonly problems: StateProblem[] = [];
  /** The pack files, by item range. */
  protected readonly packs = new PackIndex();
  /** Names ending in `.jsonl` that are not a pack file's (reported by leftovers() among the pack files' problems). */
  protected readonly badPacks = new Set<string>();
  /**
   * Parsed pack files, the most recently used last, each with the keys the merge asked of it (forgotten
   * with it). An array made anew when it changes, not a Map: a long-lived Map whose entries are deleted
   * keeps its old tables linked to the new ones, and one old table promoted to the old heap then kept
   * every later file's states alive until a full GC.
   */
  private parsed: ParsedPack[] = [];
  /** Stray problems of each pack file parsed so far (reported by leftovers()). */
  private readonly packStray = new Map<string, StateProblem[]>();
  /** The pack file parsed or used last (the last of `parsed`). */
  private recent: ParsedPack | null = null;
  /** Pack files the merge asked every key of while they were parsed: no leftovers there. */
  private readonly complete = new Set<string>();

  /** The file of `key`, parsed and validated; null when there is none. */
  protected abstract load(key: string): ParsedState | null;
  /** The bytes of a pack file the index holds. */
  protected abstract loadPack(file: string): PackBytes;
  /** After the merge: the per-key files' unknown keys and problems (`hasPackLine`: a pack line takes the key's place). */
  protected abstract keyFileLeftovers(inTree: (key: string) => boolean, hasPackLine: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] };

  /** A pack file, parsed (once while it stays among the last few used). */
  private pack(file: string): ParsedPack {
    // The file of the last key asked, normally: already the most recently used.
    if (this.recent !== null && this.recent.file === file) return this.recent;
    const kept = this.parsed.find((p) => p.file === file);
    if (kept !== undefined) {
      this.parsed = [...this.parsed.filter((p) => p !== kept), kept];
      this.recent = kept;
      return kept;
    }
    const name = packOfFileName(file);
    const bytes = name === null ? { error: badPackName(file) } : this.loadPack(file);
    const contents: PackContents =
      bytes === null ? { byKey: new Map(), stray: [] } : Buffer.isBuffer(bytes) && name !== null ? parsePackFile(file, name, bytes) : { byKey: new Map(), stray: [{ file, error: (bytes as { error: string }).error }] };
    if (!this.packStray.has(file)) this.packStray.set(file, contents.stray);
    this.recent = { file, contents, asked: null };
    // The oldest is forgotten with what was asked of it: leftovers() reads it again unless it was complete (memory stays bounded).
    this.parsed = [...this.parsed.slice(this.parsed.length >= PARSED_PACKS ? 1 : 0), this.recent];
    return this.recent;
  }

  /** The last pack line of `key` (in the last file of its range that has one), or undefined. */
  private packLine(key: string, ask: boolean): PackLine | undefined {
    let found: PackLine | undefined;
    // The merge asks for the items of one pack file in a row: when no ranges overlap, a key the most recent
    // parsed file holds is in no other file (its lines were checked against its range), so no lookup is needed.
    const recent = this.recent;
    const files = recent !== null && recent.contents.byKey.has(key) && !this.packs.overlaps() ? [recent.file] : this.packs.filesOf(key);
    for (const file of files) {
      const parsed = this.pack(file);
      const line = parsed.contents.byKey.get(key);
      if (line === undefined) continue;
      found = line;
      if (!ask || this.complete.has(file)) continue;
      const keys = (parsed.asked ??= new Set());
      keys.add(key);
      if (keys.size === parsed.contents.byKey.size) {
        this.complete.add(file);
        parsed.asked = null;
      }
    }
    return found;
  }

  protected read(key: string): ParsedState | null {
    let r = this.cache.get(key);
    if (r === undefined) {
      const line = this.packs.size > 0 ? this.packLine(key, true) : undefined;
      r = line !== undefined ? line : this.load(key);
      if (r !== null && !r.ok) this.problems.push({ file: r.file ?? `${key}.json`, error: r.error });
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

  fileOf(key: string): string | undefined {
    const r = this.read(key);
    return r !== null && !r.ok ? r.file : undefined;
  }

  consume(key: string): void {
    this.consumed.add(key);
  }

  visit(): void {}

  release(): void {
    // A new map, not clear(): clear() links the old table to the new one, and an old table promoted to the old
    // heap then kept every later item's states alive until a full GC.
    if (this.cache.size > 0) this.cache = new Map();
  }

  leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
    this.release();
    const own = this.keyFileLeftovers(inTree, (key) => this.packLine(key, false) !== undefined);
    const unknown = new Set(own.unknown);
    const fromPacks: StateProblem[] = [];
    // In the order their lines apply, as readStateDir reads them; then the names that are not a pack file's.
    for (const file of [...this.packs.ordered(), ...[...this.badPacks].sort()]) {
      if (this.badPacks.has(file)) {
        fromPacks.push({ file, error: badPackName(file) });
        continue;
      }
      // The merge asked for every key of this file: none is unknown, and its stray problems were met when it was parsed.
      if (!this.complete.has(file)) {
        for (const [key, line] of this.pack(file).contents.byKey) {
          if (inTree(key)) continue;
          if (line.ok) unknown.add(key);
          else fromPacks.push({ file, error: line.error });
        }
      }
      // One by one here and below: a pack file's stray lines, and the problems of a million items, are too many
      // to spread into push()'s arguments ("Maximum call stack size exceeded").
      for (const p of this.packStray.get(file) ?? []) fromPacks.push(p);
    }
    for (const p of fromPacks) this.problems.push(p);
    // In file name order, as a listing of per-key files gives them.
    const names = [...unknown].map((k) => `${k}.json`).sort();
    return { unknown: names.map((n) => n.slice(0, -".json".length)), stray: [...own.stray, ...fromPacks] };
  }
}

/** A states directory read as the merge asks: four system calls per file, each file read once; pack files one at a time. */
export class DirSource extends CachedSource {
  /** State files in the directory (counted by leftovers()). */
  files = 0;
  private listed = false;

  constructor(readonly dir: string) {
    super();
  }

  /** The pack files of the directory, listed once before the first read (their names are the index). */
  private listPacks(): void {
    if (this.listed) return;
    this.listed = true;
    let dir;
    try {
      dir = opendirSync(this.dir, { bufferSize: 1024 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    try {
      for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
        if (entry.name.endsWith(".jsonl") && !STATE_TEMP_FILE.test(entry.name) && !this.packs.add(entry.name)) this.badPacks.add(entry.name);
      }
    } finally {
      dir.closeSync();
    }
  }

  protected load(key: string): ParsedState | null {
    return readStateFile(this.dir, `${key}.json`);
  }

  protected loadPack(file: string): PackBytes {
    return readPackBytes(this.dir, file);
  }

  protected override read(key: string): ParsedState | null {
    this.listPacks();
    return super.read(key);
  }

  override leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
    this.listPacks();
    return super.leftovers(inTree);
  }

  protected keyFileLeftovers(inTree: (key: string) => boolean, hasPackLine: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
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
        if (STATE_TEMP_FILE.test(name)) continue;
        if (name.endsWith(".jsonl")) {
          // Pack files (and .jsonl names that are not a pack file's) were listed before the first read.
          this.files++;
          continue;
        }
        if (!name.endsWith(".json")) continue;
        this.files++;
        const key = keyOfStateFile(name);
        if (key !== null && (inTree(key) || hasPackLine(key))) continue;
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
    for (const p of stray) this.problems.push(p);
    return { unknown, stray };
  }
}

/** A file of the transfer: its content, or why it was skipped (too large, a link, ...). */
export type SpooledFile = Buffer | { error: string };

/** Offset and length of a spooled file in one number: lengths below 2^21 (a state file is at most 1 MiB), offsets below 2^32. */
const LENGTH_BITS = 2 ** 21;

/**
 * State files as a transfer streams them in (the cluster's tar), spooled to
 * one local file as they arrive and read back as the merge asks: memory
 * holds one number per per-key file and two per pack file, not the files.
 * Names are checked as they come (`states/<key>.json`,
 * `states/<pack>.items-<first>-<last>.jsonl`); contents are validated when
 * read. `close()` removes the spool.
 */
export class SpoolSource extends CachedSource {
  private fd: number | null;
  private size = 0;
  private readonly index = new Map<string, number | { offset: number; length: number }>();
  /** Pack files: where in the spool, or why the transfer could not give them. */
  private readonly packAt = new Map<string, { offset: number; length: number } | { error: string }>();
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

  /** State files received: one per key or pack file (a retried transfer's repeats count once). */
  get files(): number {
    return this.index.size + this.keyedErrors.size + this.badNames.size + this.packAt.size + this.badPacks.size;
  }

  /** One file of the transfer; `path` is relative to the run directory (`states/<key>.json` or a pack file). */
  add(path: string, file: SpooledFile): void {
    const name = stateFileNameOf(path);
    if (name === null) {
      // JSON-quoted so the merger cannot read it as any step's file.
      this.badNames.set(path, { file: preview(path), error: `unexpected file name from the cluster: ${preview(path)}` });
      return;
    }
    if (name.endsWith(".jsonl")) return this.addPack(path, name, file);
    // The transfer's pattern (states/*.json*) also matches names like x.json.bak: not state files.
    if (!name.endsWith(".json")) return;
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
    if (file.length > STATE_FILE_MAX_BYTES) {
      // The transfer's cap is a pack file's; a per-key file has the state cap.
      this.keyedErrors.set(key, `state file is ${file.length} bytes, over the ${STATE_FILE_MAX_BYTES}-byte limit`);
      return;
    }
    this.keyedErrors.delete(key);
    const offset = this.spool(file);
    // One number while it fits (offsets below 2^32); past 4 GiB of spool (pack files before it), two.
    this.index.set(key, offset < 2 ** 32 ? offset * LENGTH_BITS + file.length : { offset, length: file.length });
  }

  private addPack(path: string, name: string, file: SpooledFile): void {
    if (!this.packs.add(name)) {
      this.badPacks.add(name);
      return;
    }
    if (!Buffer.isBuffer(file)) this.packAt.set(name, { error: file.error });
    else if (file.length > PACK_FILE_MAX_BYTES) this.packAt.set(name, { error: `pack file is ${file.length} bytes, over the ${PACK_FILE_MAX_BYTES}-byte limit` });
    else this.packAt.set(name, { offset: this.spool(file), length: file.length });
  }

  /** Appends bytes to the spool; their offset. */
  private spool(file: Buffer): number {
    if (this.fd === null) throw new Error(`${this.path}: the spool is closed`);
    const at = this.size;
    for (let done = 0; done < file.length; ) done += writeSync(this.fd, file, done, file.length - done, at + done);
    this.size += file.length;
    return at;
  }

  private readSpool(offset: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const n = readSync(this.fd as number, buf, done, length - done, offset + done);
      if (n === 0) throw new Error(`${this.path}: the spool ends before ${offset + length}`);
      done += n;
    }
    return buf;
  }

  protected load(key: string): ParsedState | null {
    const at = this.index.get(key);
    if (at !== undefined && this.fd !== null) {
      const length = typeof at === "number" ? at % LENGTH_BITS : at.length;
      const offset = typeof at === "number" ? (at - length) / LENGTH_BITS : at.offset;
      return parseStateText(`${key}.json`, this.readSpool(offset, length).toString("utf8"));
    }
    const error = this.keyedErrors.get(key);
    return error !== undefined ? { ok: false, error } : null;
  }

  protected loadPack(file: string): PackBytes {
    const at = this.packAt.get(file);
    if (at === undefined || this.fd === null) return null;
    return "error" in at ? { error: at.error } : this.readSpool(at.offset, at.length);
  }

  protected keyFileLeftovers(inTree: (key: string) => boolean, hasPackLine: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
    const unknown: string[] = [];
    const stray: StateProblem[] = [...this.badNames.values()];
    for (const key of this.index.keys()) {
      if (inTree(key) || hasPackLine(key)) continue;
      const r = this.load(key);
      if (r?.ok === true) unknown.push(key);
      else if (r !== null) {
        stray.push({ file: `${key}.json`, error: r.error });
        this.problems.push({ file: `${key}.json`, error: r.error });
      }
    }
    for (const [key, error] of this.keyedErrors) if (!inTree(key) && !hasPackLine(key)) stray.push({ file: `${key}.json`, error });
    for (const p of this.badNames.values()) this.problems.push(p);
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

/** `<name>` of `states/<name>` with no further `/` (what a transfer of `states/*.json*` may hold); else null. */
export function stateFileNameOf(path: string): string | null {
  if (!path.startsWith("states/")) return null;
  const name = path.slice("states/".length);
  return name !== "" && !name.includes("/") && !name.includes("\\") && name !== "." && name !== ".." ? name : null;
}
