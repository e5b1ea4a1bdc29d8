/**
 * The holder's wire format on its unix socket: frames of [type: u8][length:
 * u32 BE][payload]. One socket connection carries one command: HELLO (the
 * client's login target, checked), EXEC, then stdin/stdout/stderr frames,
 * EXIT and CLOSED. JSON payloads are validated with zod on both sides.
 */
import { z } from "zod";

export const Frame = {
  HELLO: 1,
  EXEC: 2,
  STDIN: 3,
  STDIN_EOF: 4,
  SIGNAL: 5,
  CLOSE: 6,
  INFO: 7,
  SHUTDOWN: 8,
  WELCOME: 101,
  STARTED: 102,
  STDOUT: 103,
  STDERR: 104,
  EXIT: 105,
  CLOSED: 106,
  ERROR: 199,
} as const;

export const PROTOCOL_VERSION = 1;
/** Larger frames are a protocol error (data is sent in chunks far below this). */
const MAX_FRAME = 4 * 1024 * 1024;
/** Stdin is cut into frames of at most this many bytes. */
export const STDIN_CHUNK = 256 * 1024;

export const helloSchema = z.object({ version: z.literal(PROTOCOL_VERSION), target: z.array(z.string().max(600)).min(1).max(10) }).strict();
export const infoSchema = z
  .object({
    pid: z.number().int().positive(),
    target: z.array(z.string()).min(1),
    started_at: z.string(),
    idle_timeout_s: z.number().nonnegative(),
    max_channels: z.number().int().positive(),
    channels_open: z.number().int().nonnegative(),
    commands: z.number().int().nonnegative(),
  })
  .strict();
export type HolderInfo = z.infer<typeof infoSchema>;
export const execSchema = z.object({ command: z.string().max(8 * 1024 * 1024) }).strict();
export const signalSchema = z.object({ name: z.string().regex(/^[A-Z0-9]{1,16}$/) }).strict();
export const exitSchema = z.object({ code: z.number().int().nullable(), signal: z.string().max(32).nullable() }).strict();
export const errorSchema = z.object({ message: z.string().max(4000), dropped: z.boolean() }).strict();

export function encodeFrame(type: number, payload: Buffer | string | object = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload));
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

export function parseJson<T>(schema: z.ZodType<T>, payload: Buffer): T {
  return schema.parse(JSON.parse(payload.toString("utf8")));
}

/** Splits a byte stream into frames. */
export class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { type: number; payload: Buffer }[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: { type: number; payload: Buffer }[] = [];
    while (this.#buffer.length >= 5) {
      const length = this.#buffer.readUInt32BE(1);
      if (length > MAX_FRAME) throw new Error(`frame of ${length} bytes is larger than ${MAX_FRAME}`);
      if (this.#buffer.length < 5 + length) break;
      frames.push({ type: this.#buffer.readUInt8(0), payload: this.#buffer.subarray(5, 5 + length) });
      this.#buffer = this.#buffer.subarray(5 + length);
    }
    return frames;
  }
}
