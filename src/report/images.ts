/**
 * Image outputs in the report: which declared outputs to fetch, and how the
 * fetched bytes become embedded images (raster formats only, each and all
 * together capped) or a note saying why not.
 */
import { formatBytes } from "../core/units.js";
import type { CompletedStateJson } from "../core/completed-state.js";
import { walkTree } from "./tree.js";
import type { ReportPlan } from "./tree.js";

/** Largest image embedded. */
export const IMAGE_MAX_BYTES = 5 * 1024 * 1024;
/** All embedded images together. */
export const IMAGES_TOTAL_MAX_BYTES = 50 * 1024 * 1024;
/** Images considered at all (each is one file to fetch). */
export const MAX_IMAGES = 100;

const IMAGE_EXTENSIONS = /\.(png|jpe?g|gif|webp|svg)$/i;

/** An image output as fetched: its bytes, or why it could not be (too large, absent, outside the run...). */
export type FetchedImage = { bytes: Buffer } | { note: string };

export interface ImageEntry {
  /** The step that declared it. */
  key: string;
  /** Relative to the work directory, as declared. */
  path: string;
  /** `data:image/png;base64,...` (only for bytes whose signature is a known raster format), or null with a note. */
  dataUri: string | null;
  mime: string | null;
  bytes: number | null;
  note: string | null;
}

/**
 * An output path the report may read: relative, inside the work directory,
 * no `..`, no control characters; returned normalised (no `./`, single `/`).
 * Null otherwise (absolute outputs are not fetched: they may be anywhere).
 */
export function safeOutputPath(path: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (path === "" || path.length > 1024 || /[\u0000-\u001f\u007f\\]/.test(path) || path.startsWith("/") || path.startsWith("~")) return null;
  const segments = path.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.length === 0 || segments.some((s) => s === "..")) return null;
  return segments.join("/");
}

/** The image outputs of the run's steps, in tree order: the declared outputs that existed, with an image extension. */
export function imageTargets(plan: ReportPlan | null, result: CompletedStateJson, attempt = 1): Array<{ key: string; path: string }> {
  const { leaves, states } = walkTree(plan, result, attempt);
  const seen = new Set<string>();
  const out: Array<{ key: string; path: string }> = [];
  for (const key of leaves) {
    const files = states[key]?.outputs.files;
    if (!Array.isArray(files)) continue;
    for (const file of files) {
      if (typeof file !== "string" || !IMAGE_EXTENSIONS.test(file) || seen.has(file)) continue;
      seen.add(file);
      out.push({ key, path: file });
    }
  }
  return out.slice(0, MAX_IMAGES);
}

/** The MIME type of a raster image from its first bytes; null for anything else (SVG included: it can carry scripts). */
export function imageMime(bytes: Buffer): string | null {
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return "image/png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
  if (bytes.length >= 6 && /^GIF8[79]a$/.test(bytes.toString("latin1", 0, 6))) return "image/gif";
  if (bytes.length >= 12 && bytes.toString("latin1", 0, 4) === "RIFF" && bytes.toString("latin1", 8, 12) === "WEBP") return "image/webp";
  return null;
}

/** The image targets as entries of the page: embedded as data: URIs when fetched, allowed and within the caps; else a note. */
export function imageEntries(targets: Array<{ key: string; path: string }>, fetched: ReadonlyMap<string, FetchedImage>, notFetched: string | null): ImageEntry[] {
  let total = 0;
  return targets.map(({ key, path }) => {
    const entry: ImageEntry = { key, path, dataUri: null, mime: null, bytes: null, note: null };
    if (/\.svg$/i.test(path)) {
      entry.note = "SVG images are not embedded (an SVG can carry scripts); open the file itself";
      return entry;
    }
    if (safeOutputPath(path) === null) {
      entry.note = "not embedded: the path is outside the run's work directory";
      return entry;
    }
    const got = fetched.get(path);
    if (got === undefined) {
      entry.note = notFetched ?? "not fetched";
      return entry;
    }
    if ("note" in got) {
      entry.note = got.note;
      return entry;
    }
    entry.bytes = got.bytes.length;
    if (got.bytes.length > IMAGE_MAX_BYTES) {
      entry.note = `not embedded: ${formatBytes(got.bytes.length)} is over the ${formatBytes(IMAGE_MAX_BYTES)} limit per image`;
      return entry;
    }
    if (total + got.bytes.length > IMAGES_TOTAL_MAX_BYTES) {
      entry.note = `not embedded: the report already holds ${formatBytes(total)} of images (limit ${formatBytes(IMAGES_TOTAL_MAX_BYTES)})`;
      return entry;
    }
    const mime = imageMime(got.bytes);
    if (mime === null) {
      entry.note = "not embedded: the file is not a PNG, JPEG, GIF or WebP image";
      return entry;
    }
    total += got.bytes.length;
    entry.mime = mime;
    entry.dataUri = `data:${mime};base64,${got.bytes.toString("base64")}`;
    return entry;
  });
}
