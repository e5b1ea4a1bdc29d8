/**
 * Minimal PNG reading for the tests of the rendering examples, with node:zlib only: the size
 * from the IHDR chunk, and the pixels of an 8-bit, non-interlaced image (the IDAT chunks
 * inflated and each row's filter undone). What Blender and ffmpeg write here is all 8-bit,
 * non-interlaced grey, grey+alpha, RGB or RGBA. Malformed input throws an Error naming it.
 */
import { readFileSync } from "node:fs";
import { inflateSync } from "node:zlib";

export interface Image {
  width: number;
  height: number;
  /** Samples per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (8-bit only). */
  channels: number;
  /** Unfiltered samples, row after row. */
  data: Uint8Array;
}

export type Rgb = [number, number, number];

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Width and height from the IHDR chunk, which must come first. `name` is for error messages. */
export function pngSize(bytes: Buffer, name = "image"): { width: number; height: number } {
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error(`${name}: not a PNG (no PNG signature)`);
  const first = bytes.toString("latin1", 12, 16);
  if (first !== "IHDR") throw new Error(`${name}: the first PNG chunk is ${JSON.stringify(first)}, expected IHDR`);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

const CHANNELS: Readonly<Record<number, number>> = { 0: 1, 4: 2, 2: 3, 6: 4 };

/** Decodes an 8-bit, non-interlaced PNG given as bytes. */
export function decodePngBytes(bytes: Buffer, name = "image"): Image {
  const { width, height } = pngSize(bytes, name);
  const bitDepth = bytes[24];
  const colourType = bytes[25];
  const interlace = bytes[28];
  if (bitDepth !== 8 || interlace !== 0) throw new Error(`${name}: expected an 8-bit, non-interlaced PNG, got bit depth ${bitDepth}, interlace ${interlace}`);
  const channels = CHANNELS[colourType ?? -1];
  if (channels === undefined) throw new Error(`${name}: unsupported PNG colour type ${colourType}`);
  const idat: Buffer[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString("latin1", at + 4, at + 8);
    if (at + 12 + length > bytes.length) throw new Error(`${name}: the ${type} chunk at byte ${at} runs past the end of the file`);
    if (type === "IDAT") idat.push(bytes.subarray(at + 8, at + 8 + length));
    if (type === "IEND") break;
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) throw new Error(`${name}: inflated ${raw.length} bytes, expected ${height * (stride + 1)}`);
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? (data[out + x - channels] ?? 0) : 0;
      const b = y > 0 ? (data[out - stride + x] ?? 0) : 0;
      const c = x >= channels && y > 0 ? (data[out - stride + x - channels] ?? 0) : 0;
      const v = line[x] ?? 0;
      const predictor = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : NaN;
      if (Number.isNaN(predictor)) throw new Error(`${name}: bad filter type ${filter} on row ${y}`);
      data[out + x] = (v + predictor) & 0xff;
    }
  }
  return { width, height, channels, data };
}

/** Decodes an 8-bit, non-interlaced PNG file. */
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
