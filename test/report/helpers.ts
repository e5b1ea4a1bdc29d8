// Shared by the report tests: plans compiled by the real compiler from small specs,
// state JSON as job wrappers write it, and a minimal PNG encoder (node:zlib); decoding is test/support/png.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { deflateSync } from "node:zlib";
import { preparePlan } from "../../src/app/prepare.js";
import type { CompletedStateJson } from "../../src/core/completed-state.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { decodePngBytes } from "../support/png.js";
import type { Image } from "../support/png.js";

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

export type DecodedPng = Image;

/** Decodes an 8-bit, non-interlaced PNG (what Chromium's screenshots are): the shared reader of test/support/png.ts. */
export function decodePng(bytes: Buffer): DecodedPng {
  return decodePngBytes(bytes, "screenshot");
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

/**
 * The report tests' pipeline: a step that draws `png` into a declared output, a parallel
 * group whose `bad` child prints 50 lines then `hostile` on stderr and fails, and a step
 * that never runs.
 */
export function demoSpec(name: string, png: Buffer, hostile: string, defaults = ""): string {
  return `
name: ${name}
context:
  dot: ${png.toString("base64")}
${defaults}steps:
  - step: draw
    run: mkdir -p out && printf '%s' "$dot" | base64 -d > out/dot.png && echo drew
    requires: [dot]
    outputs: [out/dot.png]
  - group: checks
    parallel: true
    steps:
      - step: good
        run: echo fine
      - step: bad
        run: |
          for i in $(seq 1 50); do echo "progress line $i"; done
          printf '%s\\n' "$HOSTILE" >&2
          exit 3
        env: { HOSTILE: ${JSON.stringify(hostile)} }
  - step: after
    run: echo never
`;
}
