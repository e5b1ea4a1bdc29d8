// A minimal 8-bit PNG decoder (node:zlib only) for the benchmarks and, through test/support/png.ts, the tests:
// the bench build cannot import test/, so the one copy lives here.
import { inflateSync } from "node:zlib";

export interface Image {
  width: number;
  height: number;
  /** Samples per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (8-bit only). */
  channels: number;
  /** Unfiltered samples, row after row. */
  data: Uint8Array;
}

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
