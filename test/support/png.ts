/**
 * PNG helpers for the tests of the rendering examples. The decoder (bench/lib/png.ts, node:zlib only) reads the size
 * from the IHDR chunk, and the pixels of an 8-bit, non-interlaced image (the IDAT chunks
 * inflated and each row's filter undone). What Blender and ffmpeg write here is all 8-bit,
 * non-interlaced grey, grey+alpha, RGB or RGBA. Malformed input throws an Error naming it.
 */
import { readFileSync } from "node:fs";
import { decodePngBytes } from "../../bench/lib/png.js";
import type { Image } from "../../bench/lib/png.js";

export { decodePngBytes, pngSize } from "../../bench/lib/png.js";
export type { Image } from "../../bench/lib/png.js";

export type Rgb = [number, number, number];

export function decodePng(path: string): Image {
  return decodePngBytes(readFileSync(path), path);
}

/** The colour at (x, y); grey images give three equal values. */
export function rgb(img: Image, x: number, y: number): Rgb {
  const i = (y * img.width + x) * img.channels;
  const d = img.data;
  if (img.channels < 3) return [d[i] ?? 0, d[i] ?? 0, d[i] ?? 0];
  return [d[i] ?? 0, d[i + 1] ?? 0, d[i + 2] ?? 0];
}

/** The largest difference of one channel between two colours. */
export function colourDistance(a: Rgb, b: Rgb): number {
  return Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1]), Math.abs(a[2] - b[2]));
}

export interface Foreground {
  /** Pixels that differ from the top-left corner's colour (the background) by more than 24 in a channel. */
  count: number;
  minX: number;
  maxX: number;
  minY: number;
  maxY: number;
}

/** The pixels that are not the background (the top-left corner's colour), and their bounding box. */
export function foreground(img: Image): Foreground {
  const bg = rgb(img, 0, 0);
  const f: Foreground = { count: 0, minX: img.width, maxX: -1, minY: img.height, maxY: -1 };
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      if (colourDistance(rgb(img, x, y), bg) <= 24) continue;
      f.count++;
      f.minX = Math.min(f.minX, x);
      f.maxX = Math.max(f.maxX, x);
      f.minY = Math.min(f.minY, y);
      f.maxY = Math.max(f.maxY, y);
    }
  }
  return f;
}

/** How many different sample values the image has (1 for a flat image). */
export function distinctSamples(img: Image): number {
  return new Set(img.data).size;
}

/** Pixels that satisfy `test`. */
export function countPixels(img: Image, test: (p: Rgb) => boolean): number {
  let n = 0;
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) if (test(rgb(img, x, y))) n++;
  return n;
}

/** The share (0..1) of pixels whose colour differs by more than `threshold` in a channel between two images of one size. */
export function changedShare(a: Image, b: Image, threshold = 24): number {
  if (a.width !== b.width || a.height !== b.height) throw new Error(`images of different sizes: ${a.width}x${a.height} and ${b.width}x${b.height}`);
  let changed = 0;
  for (let y = 0; y < a.height; y++) for (let x = 0; x < a.width; x++) if (colourDistance(rgb(a, x, y), rgb(b, x, y)) > threshold) changed++;
  return changed / (a.width * a.height);
}
