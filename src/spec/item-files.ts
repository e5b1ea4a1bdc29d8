/**
 * Map items that are local files (`items_glob`, or `items`/`items_file` with
 * `stage_items: true`): the files are found and hashed here, when the spec
 * is loaded, so a bad path is a spec error that names its line and nothing
 * is submitted. Each file is staged into the run at
 * `work/inputs/<map>/<its path relative to items_root>`: the basename and the
 * layout are kept (tools choose by `.glb` or `.gltf`; a glTF's relative `.bin`
 * and texture paths resolve when `stage_with` stages them too), and the item's
 * value is that path relative to work/, where steps run.
 */
import { readdirSync, statSync } from "node:fs";
import type { Dirent } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { globRegExp, hasWildcard } from "../store/glob.js";
import { hashFileSync } from "../store/hash.js";
import type { StagedFile } from "../store/staging.js";
import { itemProblem } from "./map-step.js";
import { errorText } from "./source.js";
import type { PathSegment } from "./source.js";
import { preview } from "../core/preview.js";

/** Where staged item files go, relative to the run's work directory (steps run there). */
export const INPUTS_DIR = "inputs";

/** One item path as the user wrote it, with where it was written (for messages). */
export interface ItemPath {
  path: string;
  /** The field of the map entry, e.g. `["items_file"]` or `["items", 2]`. */
  field: PathSegment[];
  /** e.g. `models.txt line 3`, or `` for an inline item. */
  where: string;
}

export interface ItemFilesRequest {
  /** The map's name: its files go under `inputs/<map>/`. */
  map: string;
  /** `items_glob` patterns (relative to the spec's directory), or explicit paths. */
  glob?: readonly string[];
  paths?: readonly ItemPath[];
  /** `stage_with`: patterns of files staged beside the items (not items themselves). */
  stageWith?: readonly string[];
  /** Absolute layout root (`items_root`, default the spec's directory). */
  root: string;
  specDir: string;
}

export interface ItemFiles {
  /** Item values: `inputs/<map>/<layout>`, relative to work/. */
  items: string[];
  /** SHA-256 of each item's file, in item order. */
  hashes: string[];
  /** Every file to stage (items and stage_with files, once each), keyed `work/inputs/<map>/<layout>`. */
  files: StagedFile[];
}

export interface ItemFilesProblem {
  field: PathSegment[];
  message: string;
}

interface Found {
  abs: string;
  size: number;
}

/**
 * The regular files under `dir` (sorted), as paths relative to it. Symlinked
 * directories are not followed, and names starting with `.` are skipped, as
 * the shell's globs do: `**\/*.glb` never picks up `.git/` or the copies in a
 * local run's `.hpcpipe/runs/`.
 */
function walk(dir: string, maxDepth: number, out: string[], unreadable: string[], prefix = "", depth = 1): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    // A missing base matches nothing (said by the caller); a directory that cannot be read would hide files.
    if (depth > 1 || (err as NodeJS.ErrnoException).code !== "ENOENT") unreadable.push(`${dir}: ${errorText(err)}`);
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const rel = prefix === "" ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) {
      if (depth < maxDepth) walk(join(dir, e.name), maxDepth, out, unreadable, rel, depth + 1);
    } else if (e.isFile()) out.push(rel);
    else if (e.isSymbolicLink()) {
      try {
        if (statSync(join(dir, e.name)).isFile()) out.push(rel);
      } catch {
        // A dangling link is no file.
      }
    }
  }
}

/** The files a pattern matches (relative to the spec's directory, or absolute), in path order; a problem when none. */
export function expandGlob(pattern: string, specDir: string): { files: string[] } | { problem: string } {
  const segments = pattern.split("/");
  const wild = segments.findIndex(hasWildcard);
  if (wild < 0) {
    const abs = resolve(specDir, pattern);
    try {
      const info = statSync(abs);
      if (info.isFile()) return { files: [abs] };
      if (info.isDirectory()) return { problem: `${preview(pattern)} is a directory (${abs}); write ${preview(`${pattern.replace(/\/+$/, "")}/**`)} to take every file in it` };
      return { problem: `${preview(pattern)} is not a regular file (${abs})` };
    } catch (err) {
      return { problem: `${preview(pattern)} matches no file: ${abs}: ${errorText(err)}` };
    }
  }
  const base = resolve(specDir, segments.slice(0, wild).join("/") || (isAbsolute(pattern) ? "/" : "."));
  const rest = segments.slice(wild).join("/");
  const re = globRegExp(rest);
  const candidates: string[] = [];
  const unreadable: string[] = [];
  walk(base, rest.includes("**") ? Infinity : segments.length - wild, candidates, unreadable);
  if (unreadable.length > 0) return { problem: `${preview(pattern)}: a directory it searches cannot be read (${unreadable[0]}${unreadable.length > 1 ? ` and ${unreadable.length - 1} more` : ""})` };
  const files = candidates.filter((rel) => re.test(rel)).map((rel) => join(base, rel));
  if (files.length === 0) return { problem: `${preview(pattern)} matches no file (searched ${base})` };
  return { files };
}

/** `abs` relative to `root` with `/`, or null when it is not inside it. */
function layoutPath(root: string, abs: string): string | null {
  const rel = relative(root, abs);
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return rel.split(sep).join("/");
}

/** Finds, checks and hashes a map's item files (and its stage_with files). */
export function resolveItemFiles(request: ItemFilesRequest): { value: ItemFiles } | { problems: ItemFilesProblem[] } {
  const problems: ItemFilesProblem[] = [];
  const { root, specDir } = request;
  const outsideRoot = (abs: string): string =>
    `${abs} is outside items_root (${root}); staged files keep their layout relative to items_root, so set items_root to a directory that holds them all`;

  // The items: [absolute path, field, where].
  const itemAbs: Array<{ abs: string; field: PathSegment[]; where: string }> = [];
  (request.glob ?? []).forEach((pattern, i) => {
    const field: PathSegment[] = request.glob && request.glob.length > 1 ? ["items_glob", i] : ["items_glob"];
    const found = expandGlob(pattern, specDir);
    if ("problem" in found) problems.push({ field, message: `items_glob ${found.problem}` });
    else for (const abs of found.files) itemAbs.push({ abs, field, where: `items_glob ${preview(pattern)}: ` });
  });
  if (request.glob) {
    // Several patterns: one sorted list, each file once.
    const seen = new Set<string>();
    const unique = itemAbs.filter((f) => !seen.has(f.abs) && (seen.add(f.abs), true));
    unique.sort((a, b) => (a.abs < b.abs ? -1 : a.abs > b.abs ? 1 : 0));
    // Copied back one by one: a million files cannot be spread into splice()'s arguments.
    itemAbs.length = 0;
    for (const f of unique) itemAbs.push(f);
  }
  for (const p of request.paths ?? []) {
    const abs = resolve(specDir, p.path);
    try {
      const info = statSync(abs);
      if (info.isDirectory()) problems.push({ field: p.field, message: `${p.where}${preview(p.path)} is a directory (${abs}); an item is one file (items_glob: ${preview(`${p.path.replace(/\/+$/, "")}/**`)} takes every file in it)` });
      else if (!info.isFile()) problems.push({ field: p.field, message: `${p.where}${preview(p.path)} is not a regular file (${abs})` });
      else itemAbs.push({ abs, field: p.field, where: p.where });
    } catch (err) {
      problems.push({ field: p.field, message: `${p.where}item file ${preview(p.path)} does not exist or cannot be read (${abs}: ${errorText(err)})` });
    }
  }

  const siblings: Array<{ abs: string; field: PathSegment[] }> = [];
  (request.stageWith ?? []).forEach((pattern, i) => {
    const field: PathSegment[] = ["stage_with", i];
    const found = expandGlob(pattern, specDir);
    if ("problem" in found) problems.push({ field, message: `stage_with ${found.problem}` });
    else for (const abs of found.files) siblings.push({ abs, field });
  });
  if (problems.length > 0) return { problems };

  // Layout, item values, hashes (each file read once).
  const digests = new Map<string, Found & { sha256: string; rel: string }>();
  const stage = (abs: string, field: PathSegment[], where: string): (Found & { sha256: string; rel: string }) | null => {
    const known = digests.get(abs);
    if (known) return known;
    const rel = layoutPath(root, abs);
    if (rel === null) {
      problems.push({ field, message: `${where}${outsideRoot(abs)}` });
      return null;
    }
    try {
      const d = hashFileSync(abs);
      const entry = { abs, size: d.size, sha256: d.sha256, rel };
      digests.set(abs, entry);
      return entry;
    } catch (err) {
      problems.push({ field, message: `${where}${abs} cannot be read: ${errorText(err)}` });
      return null;
    }
  };
  const items: string[] = [];
  const hashes: string[] = [];
  for (const item of itemAbs) {
    const staged = stage(item.abs, item.field, item.where);
    if (staged === null) continue;
    const value = `${INPUTS_DIR}/${request.map}/${staged.rel}`;
    const bad = itemProblem(value);
    if (bad) {
      problems.push({ field: item.field, message: `${item.where}the item ${preview(value)} (for ${item.abs}) ${bad}` });
      continue;
    }
    items.push(value);
    hashes.push(staged.sha256);
  }
  for (const s of siblings) stage(s.abs, s.field, "stage_with: ");
  if (problems.length > 0) return { problems };
  const files: StagedFile[] = [...digests.values()].map((d) => ({ abs: d.abs, rel: `work/${INPUTS_DIR}/${request.map}/${d.rel}`, size: d.size, sha256: d.sha256 }));
  return { value: { items, hashes, files } };
}
