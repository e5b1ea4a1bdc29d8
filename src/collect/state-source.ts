/**
 * Where the merger takes state files from: a map of files already read (the
 * cluster's, from one transfer), or a states directory on this machine read
 * one file at a time as the merge reaches its step, so a million items'
 * states are never held at once.
 */
import { opendirSync } from "node:fs";
import type { StateFile } from "../plan/state-file.js";
import { keyOfStateFile, readStateFile, STATE_TEMP_FILE } from "./read-states.js";
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
}

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

/** A states directory read as the merge asks: four system calls per file, each file read once. */
export class DirSource implements StateSource {
  private cache = new Map<string, ParsedState | null>();
  private consumed = new Set<string>();
  /** Every unusable file met, in the order met (the merge's, then the directory listing's). */
  readonly problems: StateProblem[] = [];
  /** State files in the directory (counted by leftovers()). */
  files = 0;

  constructor(readonly dir: string) {}

  private read(key: string): ParsedState | null {
    let r = this.cache.get(key);
    if (r === undefined) {
      r = readStateFile(this.dir, `${key}.json`);
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

  leftovers(inTree: (key: string) => boolean): { unknown: string[]; stray: StateProblem[] } {
    this.cache.clear();
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
