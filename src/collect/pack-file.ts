/**
 * Pack files (issue 16): a packed map task writes ONE state file for all its
 * items, `states/<PACK>.items-<FIRST>-<LAST>.jsonl`, one JSON line per unit or
 * step state (each line what `states/<key>.json` would hold). The format is
 * fixed in the wrapper (templates/lib.sh): a torn last line (no `\n`) is
 * ignored, the last line of a key wins, and a key's pack line wins over its
 * `states/<key>.json`. This module names and parses one pack file, and maps
 * a key to the pack files that may hold it through a small index of ranges
 * (one entry per file, never one per key).
 */
import { preview } from "../core/preview.js";
import { mapItemOfKey } from "./job-index.js";
import { parseStateFile, STATE_FILE_MAX_BYTES, STEP_KEY_PATTERN } from "../plan/state-file.js";
import { issuesText } from "../core/preview.js";
import type { ParsedState, StateProblem } from "./read-states.js";

/** Largest pack file a reader accepts (100 items of a few steps are far below it); bigger is a problem, not parsed. */
export const PACK_FILE_MAX_BYTES = 64 * 1024 * 1024;

/** What a pack file's name says: the map's step key and the first and last item index it covers. */
export interface PackName {
  pack: string;
  first: number;
  last: number;
}

const PACK_FILE = /^(.+)\.items-(0|[1-9][0-9]{0,14})-(0|[1-9][0-9]{0,14})\.jsonl$/;

/** The pack a file name stands for, or null when the name is not `<step key>.items-<FIRST>-<LAST>.jsonl`. */
export function packOfFileName(name: string): PackName | null {
  const m = PACK_FILE.exec(name);
  if (m === null) return null;
  const pack = m[1] as string;
  const first = Number(m[2]);
  const last = Number(m[3]);
  if (!STEP_KEY_PATTERN.test(pack) || pack.length > 1024 || first > last) return null;
  return { pack, first, last };
}

/** A name ending in `.jsonl` that is not a pack file's: why it cannot be read. */
export function badPackName(name: string): string {
  return `file name ${preview(name)} is not <step key>.items-<first>-<last>.jsonl`;
}

/** A key's line: its state, or why the line is unusable; `line` is 1-based. */
export type PackLine = ParsedState & { line: number };

/** One pack file, parsed: the last line of each key, and the lines that cannot be any key's. */
export interface PackContents {
  byKey: Map<string, PackLine>;
  /** Lines that name no key (not JSON, no key field), keys outside the file's range, or the file itself (too big, unreadable). */
  stray: StateProblem[];
}

/** The problem of one line, with the file and line number in it. */
const lineProblem = (file: string, line: number, error: string): StateProblem => ({ file, error: `line ${line}: ${error}` });

/**
 * Parses a pack file's bytes. Never throws: every bad line is a problem naming
 * the file and the line; a line that names a key of this pack but is invalid
 * is that key's problem (as an unusable `states/<key>.json` would be).
 */
export function parsePackFile(file: string, name: PackName, bytes: Buffer): PackContents {
  const byKey = new Map<string, PackLine>();
  const stray: StateProblem[] = [];
  if (bytes.length > PACK_FILE_MAX_BYTES) {
    stray.push({ file, error: `pack file is ${bytes.length} bytes, over the ${PACK_FILE_MAX_BYTES}-byte limit` });
    return { byKey, stray };
  }
  let line = 0;
  for (let start = 0; start < bytes.length; ) {
    const end = bytes.indexOf(10, start);
    // A torn last line (the writer was killed mid-append): not a line yet.
    if (end < 0) break;
    line++;
    const at = start;
    start = end + 1;
    if (end - at > STATE_FILE_MAX_BYTES) {
      stray.push(lineProblem(file, line, `${end - at} bytes, over the ${STATE_FILE_MAX_BYTES}-byte limit of a state`));
      continue;
    }
    const text = bytes.toString("utf8", at, end);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      stray.push(lineProblem(file, line, text.trim() === "" ? "empty line" : `not valid JSON (${err instanceof Error ? err.message : String(err)})`));
      continue;
    }
    const claimed = typeof json === "object" && json !== null ? (json as { key?: unknown }).key : undefined;
    const key = typeof claimed === "string" && STEP_KEY_PATTERN.test(claimed) && claimed.length <= 1024 ? claimed : null;
    if (key === null) {
      stray.push(lineProblem(file, line, `names no step key (key ${preview(claimed)})`));
      continue;
    }
    const item = mapItemOfKey(name.pack, key);
    if (item === null || item < name.first || item > name.last) {
      stray.push(lineProblem(file, line, `key ${preview(key)} is not an item ${name.first}..${name.last} of ${preview(name.pack)}, as the file name says`));
      continue;
    }
    const parsed = parseStateFile(json);
    // The last line of a key wins: delete first so iteration order is the order of last lines.
    byKey.delete(key);
    byKey.set(key, parsed.success ? { ok: true, key, state: parsed.data, line } : { ok: false, error: `line ${line}: not a valid state: ${issuesText(parsed.error.issues)}`, file, line });
  }
  return { byKey, stray };
}

/**
 * Which pack files may hold a key: per pack name, the files' item ranges,
 * sorted. At a million items that is 10,000 entries, not 3,000,000 keys.
 */
export class PackIndex {
  private readonly byPack = new Map<string, Array<PackName & { file: string }>>();
  private readonly unsorted = new Set<string>();
  private readonly names = new Set<string>();

  /** Adds a pack file by name; false when the name is not a pack file's. */
  add(file: string): boolean {
    const name = packOfFileName(file);
    if (name === null) return false;
    if (this.names.has(file)) return true;
    this.names.add(file);
    const list = this.byPack.get(name.pack) ?? [];
    list.push({ ...name, file });
    this.byPack.set(name.pack, list);
    this.unsorted.add(name.pack);
    this.overlapping = null;
    return true;
  }

  get size(): number {
    return this.names.size;
  }

  /** Some item is in the ranges of two files of one pack (a resume that packed the items differently). */
  overlaps(): boolean {
    // Asked once per key read: clear() allocates a new table even when the set is empty.
    if (this.unsorted.size > 0) {
      for (const pack of this.unsorted) this.sortPack(pack);
      this.unsorted.clear();
    }
    if (this.overlapping === null) {
      this.overlapping = false;
      for (const list of this.byPack.values()) for (let i = 1; i < list.length; i++) if ((list[i] as PackName).first <= (list[i - 1] as PackName).last) this.overlapping = true;
    }
    return this.overlapping;
  }

  private overlapping: boolean | null = null;

  private sortPack(pack: string): void {
    this.byPack.get(pack)?.sort((a, b) => a.first - b.first || a.last - b.last || (a.file < b.file ? -1 : 1));
  }

  /** Every pack file, by name order. */
  files(): string[] {
    return [...this.names].sort();
  }

  /** Every pack file in the order their lines apply (by pack name, then range): where ranges overlap, the later file's line wins. */
  ordered(): string[] {
    this.overlaps();
    return [...this.byPack.keys()].sort().flatMap((pack) => (this.byPack.get(pack) ?? []).map((r) => r.file));
  }

  /** The pack files whose range holds the item of `key`, in range order (a later file's line wins). */
  filesOf(key: string): string[] {
    if (this.byPack.size === 0) return [];
    const out: string[] = [];
    // A pack name is a prefix of the key followed by `.<item index>`; try each dot.
    for (let dot = key.indexOf("."); dot > 0; dot = key.indexOf(".", dot + 1)) {
      const pack = key.slice(0, dot);
      const list = this.byPack.get(pack);
      if (list === undefined) continue;
      const item = mapItemOfKey(pack, key);
      if (item === null) continue;
      if (this.unsorted.delete(pack)) this.sortPack(pack);
      // The last range starting at or before the item, then back over overlapping ones (none, normally).
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((list[mid] as PackName).first <= item) lo = mid + 1;
        else hi = mid;
      }
      const found: string[] = [];
      for (let i = lo - 1; i >= 0; i--) {
        const r = list[i] as PackName & { file: string };
        if (r.last >= item) found.push(r.file);
        // Ranges of one pack do not overlap unless a resume packed the items differently: look a little further back.
        else if (lo - 1 - i > 64) break;
      }
      out.push(...found.reverse());
    }
    return out;
  }
}
