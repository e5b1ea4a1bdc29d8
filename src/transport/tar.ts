/**
 * A minimal ustar writer, so that uploading a whole bundle is one `tar -x`
 * on the remote side. Pure Node, no dependencies. The reader is in
 * tar-reader.ts; the header layout shared by both is here.
 */
import { preview } from "../core/preview.js";

export const BLOCK = 512;

/** Byte offsets and lengths of the ustar header fields both sides use. */
export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  type: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

/** A path that cannot go into (or come out of) an archive safely. */
export class TarPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarPathError";
  }
}

/** Why a relative archive path is unsafe, or null when it is fine: absolute, `..`, empty segments, NUL. */
export function unsafePathReason(path: string): string | null {
  if (path === "") return "empty path";
  if (path.includes("\0")) return "contains NUL";
  if (path.startsWith("/")) return "absolute path";
  const segments = path.split("/");
  if (segments.includes("..")) return "contains '..'";
  if (segments.some((s) => s === "" || s === ".")) return "empty or '.' path segment";
  return null;
}

/** Sum of the header bytes with the checksum field counted as spaces. */
export function headerChecksum(header: Buffer): number {
  const [at, len] = FIELD.checksum;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= at && i < at + len ? 0x20 : (header[i] ?? 0);
  return sum;
}

function writeString(header: Buffer, [at, len]: readonly [number, number], value: string): void {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > len) throw new TarPathError(`${preview(value)} does not fit in ${len} bytes`);
  bytes.copy(header, at);
}

function writeOctal(header: Buffer, [at, len]: readonly [number, number], value: number): void {
  const digits = value.toString(8);
  if (!Number.isSafeInteger(value) || value < 0 || digits.length > len - 1) {
    throw new RangeError(`tar header value ${value} does not fit in ${len - 1} octal digits`);
  }
  header.write(`${digits.padStart(len - 1, "0")}\0`, at, "ascii");
}

/** Splits a long path into ustar's prefix (<= 155 bytes) and name (<= 100 bytes) at a `/`. */
function splitName(path: string): { prefix: string; name: string } {
  if (Buffer.byteLength(path) <= FIELD.name[1]) return { prefix: "", name: path };
  for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= FIELD.prefix[1] && Buffer.byteLength(name) <= FIELD.name[1] && name !== "") {
      return { prefix, name };
    }
  }
  throw new TarPathError(`path too long for ustar (name <= 100 bytes, prefix <= 155 bytes): ${preview(path, 80)}`);
}

interface HeaderFields {
  path: string;
  type: "0" | "5";
  size: number;
  mode: number;
  mtime: number;
}

function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  const { prefix, name } = splitName(fields.path);
  writeString(block, FIELD.name, name);
  writeOctal(block, FIELD.mode, fields.mode);
  writeOctal(block, FIELD.uid, 0);
  writeOctal(block, FIELD.gid, 0);
  writeOctal(block, FIELD.size, fields.size);
  writeOctal(block, FIELD.mtime, fields.mtime);
  writeString(block, FIELD.type, fields.type);
  writeString(block, FIELD.magic, "ustar\0");
  writeString(block, FIELD.version, "00");
  writeString(block, FIELD.prefix, prefix);
  const sum = headerChecksum(block);
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, FIELD.checksum[0], "ascii");
  return block;
}

export interface TarWriteOptions {
  /** Mode of a file (default 0o600). */
  modeOf?: (path: string) => number;
  /** Mode of the directories created for nested files (default 0o700). */
  dirMode?: number;
  /** Modification time in seconds since the epoch (default now). */
  mtime?: number;
}

/** Parent directories of every file, parents first, each once. */
function parentDirs(paths: Iterable<string>): string[] {
  const dirs = new Set<string>();
  for (const path of paths) {
    const segments = path.split("/");
    for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join("/"));
  }
  return [...dirs].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
}

/**
 * Writes a ustar archive of `files` (relative path -> content), with entries
 * for their parent directories. Refuses absolute paths, `..`, empty or `.`
 * segments, a path used both as a file and as a directory, and paths that do
 * not fit ustar's name/prefix fields.
 */
export function writeTar(files: ReadonlyMap<string, string | Buffer>, options: TarWriteOptions = {}): Buffer {
  const modeOf = options.modeOf ?? (() => 0o600);
  const dirMode = options.dirMode ?? 0o700;
  const mtime = options.mtime ?? Math.floor(Date.now() / 1000);
  for (const path of files.keys()) {
    const reason = unsafePathReason(path);
    if (reason) throw new TarPathError(`refusing to archive ${preview(path)}: ${reason}`);
  }
  const dirs = parentDirs(files.keys());
  for (const dir of dirs) {
    if (files.has(dir)) throw new TarPathError(`${preview(dir)} is both a file and a directory`);
  }
  const blocks: Buffer[] = [];
  for (const dir of dirs) blocks.push(header({ path: `${dir}/`, type: "5", size: 0, mode: dirMode, mtime }));
  for (const [path, content] of files) {
    const data = typeof content === "string" ? Buffer.from(content, "utf8") : content;
    blocks.push(header({ path, type: "0", size: data.length, mode: modeOf(path), mtime }), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}

/** One file of a streamed archive: its path, size, mode, and how to read it (opened only when its turn comes). */
export interface TarStreamEntry {
  path: string;
  size: number;
  mode: number;
  open: () => AsyncIterable<Buffer | Uint8Array | string>;
}

/** Largest size ustar's 11 octal digits hold (8 GiB - 1); above it GNU tar's base-256 form is used. */
const MAX_OCTAL_SIZE = 0o77777777777;

function streamHeader(entry: TarStreamEntry, mtime: number): Buffer {
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new RangeError(`tar entry ${preview(entry.path)}: bad size ${entry.size}`);
  if (entry.size <= MAX_OCTAL_SIZE) return header({ path: entry.path, type: "0", size: entry.size, mode: entry.mode, mtime });
  // GNU base-256: the first byte 0x80, the size big-endian in the other 11 bytes of the field.
  const block = header({ path: entry.path, type: "0", size: 0, mode: entry.mode, mtime });
  const [at, len] = FIELD.size;
  block.fill(0, at, at + len);
  block[at] = 0x80;
  let size = entry.size;
  for (let i = at + len - 1; i > at; i--) {
    block[i] = size % 256;
    size = Math.floor(size / 256);
  }
  block.fill(0x20, FIELD.checksum[0], FIELD.checksum[0] + FIELD.checksum[1]);
  const sum = headerChecksum(block);
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, FIELD.checksum[0], "ascii");
  return block;
}

/**
 * A ustar archive of `entries` as a stream: each file is opened when its turn
 * comes and copied through in chunks, so memory stays flat whatever the sizes.
 * A file that turns out shorter or longer than its declared size (changed
 * while sending) fails the stream, naming it: the receiver must never keep a
 * blob whose bytes are not the ones that were hashed.
 */
export async function* tarStream(entries: Iterable<TarStreamEntry>, options: { mtime?: number } = {}): AsyncGenerator<Buffer> {
  const mtime = options.mtime ?? Math.floor(Date.now() / 1000);
  for (const entry of entries) {
    const reason = unsafePathReason(entry.path);
    if (reason) throw new TarPathError(`refusing to archive ${preview(entry.path)}: ${reason}`);
    yield streamHeader(entry, mtime);
    let sent = 0;
    for await (const chunk of entry.open()) {
      const data = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      sent += data.length;
      if (sent > entry.size) throw new Error(`${entry.path} grew while it was being sent (declared ${entry.size} bytes)`);
      yield data;
    }
    if (sent !== entry.size) throw new Error(`${entry.path} changed while it was being sent (${sent} of ${entry.size} bytes)`);
    const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(2 * BLOCK);
}
