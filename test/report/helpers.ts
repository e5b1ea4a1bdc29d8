// Shared by the report tests: plans compiled by the real compiler from small specs,
// state JSON as job wrappers write it, and a minimal PNG encoder/decoder (node:zlib).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { deflateSync, inflateSync } from "node:zlib";
import { preparePlan } from "../../src/app/prepare.js";
import type { CompletedStateJson } from "../../src/core/completed-state.js";
import type { CompiledPlan } from "../../src/plan/plan.js";

/** Compiles a YAML spec (for the local executor) without running anything. */
export function compileSpec(yaml: string, runId = "20260101-000000-abcdef"): CompiledPlan {
  const dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-report-plan-"));
  try {
    const spec = path.join(dir, "spec.yaml");
    writeFileSync(spec, yaml);
    return preparePlan({ spec, runId, localRunsDir: path.join(dir, "runs") }).plan;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A step's state as the merger records it: the wrapper's facts in meta. */
export function state(overrides: Partial<CompletedStateJson> & { meta?: Record<string, unknown> } = {}): CompletedStateJson {
  return {
    success: true,
    timestamp: "2026-01-01T00:00:10.000Z",
    duration_s: 1,
    provides: [],
    outputs: {},
    error: null,
    signature: "000000000000",
    failure: null,
    ...overrides,
    meta: { ...(overrides.meta ?? {}) },
  };
}

export function failed(error: string, overrides: Partial<CompletedStateJson> & { meta?: Record<string, unknown> } = {}): CompletedStateJson {
  return state({ success: false, failure: "STEP_FAILED", error, ...overrides });
}

/** The merged result of a run: a root state with step_states. */
export function result(root: Partial<CompletedStateJson>, steps: Record<string, CompletedStateJson>): CompletedStateJson {
  return { ...state(root), step_states: steps };
}

// ---------------------------------------------------------------------------- PNG

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A solid-colour RGB PNG. */
export function solidPng(width: number, height: number, rgb: [number, number, number]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => rgb).flat())]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

export interface DecodedPng {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium's screenshots are). */
export function decodePng(bytes: Buffer): DecodedPng {
  if (!bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error("not a PNG");
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at < bytes.length) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString("latin1", at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8];
      const colour = data[9];
      if (depth !== 8 || (colour !== 2 && colour !== 6) || data[12] !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${data[12]}`);
      channels = colour === 2 ? 3 : 4;
    } else if (type === "IDAT") idat.push(data);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? (out[y * stride + x - channels] as number) : 0;
      const b = y > 0 ? (out[(y - 1) * stride + x] as number) : 0;
      const c = x >= channels && y > 0 ? (out[(y - 1) * stride + x - channels] as number) : 0;
      const v = line[x] as number;
      let r: number;
      if (filter === 0) r = v;
      else if (filter === 1) r = v + a;
      else if (filter === 2) r = v + b;
      else if (filter === 3) r = v + ((a + b) >> 1);
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        r = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      } else throw new Error(`bad PNG filter ${filter}`);
      out[y * stride + x] = r & 0xff;
    }
  }
  return { width, height, channels, data: out };
}

/** Pixels within `tolerance` (per channel) of a colour. */
export function countColour(img: DecodedPng, rgb: [number, number, number], tolerance = 6): number {
  let n = 0;
  for (let i = 0; i < img.data.length; i += img.channels) {
    if (
      Math.abs((img.data[i] as number) - rgb[0]) <= tolerance &&
      Math.abs((img.data[i + 1] as number) - rgb[1]) <= tolerance &&
      Math.abs((img.data[i + 2] as number) - rgb[2]) <= tolerance
    ) {
      n += 1;
    }
  }
  return n;
}
