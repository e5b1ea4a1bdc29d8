/**
 * A streaming tar reader for what `tar -c` sends back (ustar, GNU long names,
 * pax headers). It keeps regular files only, each within a size cap, and
 * never holds more than the caps in memory: oversized data is counted and
 * dropped as it streams past. Entries that could escape the target directory
 * (absolute, `..`, links, devices) come back as `{ error }`.
 */
import { BLOCK, FIELD, headerChecksum, unsafePathReason } from "./tar.js";
import { preview } from "../core/preview.js";

/** The archive itself is malformed (bad checksum, truncated, oversized metadata). */
export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarFormatError";
  }
}

export interface TarReadLimits {
  /** A larger regular file comes back as `{ error }`, its data not kept. */
  maxFileBytes: number;
  /** Once this many bytes are kept, further files come back as `{ error }`. */
  maxTotalBytes: number;
  /** More entries than this is a TarFormatError (default 1,000,000). */
  maxEntries?: number;
  /** Each file (or why it was skipped) as it completes, instead of keeping it in `files`. */
  onFile?: (name: string, file: TarFile) => void;
}

export type TarFile = Buffer | { error: string };

/** GNU long names and pax headers are metadata: cap them so they cannot exhaust memory. */
const META_LIMIT = 64 * 1024;

const TYPE_NAMES: Record<string, string> = {
  "1": "hard link",
  "2": "symbolic link",
  "3": "character device",
  "4": "block device",
  "6": "FIFO",
};

function readString(header: Buffer, [at, len]: readonly [number, number]): string {
  const field = header.subarray(at, at + len);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? len : end).toString("utf8");
}

/** Octal, or GNU base-256 (high bit set) for large values. */
function readNumber(header: Buffer, [at, len]: readonly [number, number]): number {
  const field = header.subarray(at, at + len);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    let value = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < len; i++) value = value * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(value)) throw new TarFormatError("tar header number too large");
    return value;
  }
  const text = field.toString("ascii").replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`tar header field is not octal: ${preview(text)}`);
  return parseInt(text, 8);
}

/** pax records: `<length> <key>=<value>\n`. */
function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(data.subarray(at, space).toString("ascii"));
    if (!Number.isInteger(length) || length <= space - at || at + length > data.length) throw new TarFormatError("malformed pax header");
    const record = data.subarray(space + 1, at + length - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

/** Strips leading `./` and trailing `/` as tar writes them. */
function normalize(name: string): string {
  let n = name;
  while (n.startsWith("./")) n = n.slice(2);
  while (n.endsWith("/") && n.length > 1) n = n.slice(0, -1);
  return n;
}

type EntrySink = (data: Buffer | null) => void;

/** Feed it chunks with `write`, then call `end`; read `files`. */
export class TarReader {
  readonly files = new Map<string, TarFile>();
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private dataLeft = 0;
  private padLeft = 0;
  /** Chunks of the current entry when it is kept, else null (data counted and dropped). */
  private chunks: Buffer[] | null = null;
  private sink: EntrySink | null = null;
  private zeroBlocks = 0;
  private finished = false;
  private entries = 0;
  private kept = 0;
  private longName: string | null = null;
  private longLink: string | null = null;
  private pax: Map<string, string> | null = null;

  constructor(private readonly limits: TarReadLimits) {}

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.finished) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, chunk.length - off);
        // Copy, so a kept small file does not pin the whole incoming chunk.
        if (this.chunks) this.chunks.push(Buffer.from(chunk.subarray(off, off + n)));
        this.dataLeft -= n;
        off += n;
        if (this.dataLeft === 0) this.completeEntry();
      } else if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, chunk.length - off);
        this.padLeft -= n;
        off += n;
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill === BLOCK) {
          this.headerFill = 0;
          this.onHeader();
        }
      }
    }
  }

  /** Throws TarFormatError when the archive stopped inside an entry. */
  end(): Map<string, TarFile> {
    if (!this.finished && (this.dataLeft > 0 || this.padLeft > 0 || this.headerFill > 0 || this.sink !== null)) {
      throw new TarFormatError("tar archive is truncated (it ended inside an entry)");
    }
    return this.files;
  }

  private onHeader(): void {
    if (this.header.every((b) => b === 0)) {
      // Two zero blocks end the archive; anything after them is ignored.
      if (++this.zeroBlocks >= 2) this.finished = true;
      return;
    }
    this.zeroBlocks = 0;
    const stored = readNumber(this.header, FIELD.checksum);
    if (stored !== headerChecksum(this.header)) throw new TarFormatError("tar header checksum mismatch (corrupt or not a tar stream)");
    if (++this.entries > (this.limits.maxEntries ?? 1_000_000)) throw new TarFormatError(`tar archive has more than ${this.limits.maxEntries ?? 1_000_000} entries`);

    const type = readString(this.header, FIELD.type) || "0";
    const headerSize = readNumber(this.header, FIELD.size);
    if (type === "L" || type === "K" || type === "x" || type === "g") {
      if (headerSize > META_LIMIT) throw new TarFormatError(`tar metadata entry of ${headerSize} bytes exceeds ${META_LIMIT}`);
      this.startEntry(headerSize, true, (data) => this.onMeta(type, data ?? Buffer.alloc(0)));
      return;
    }

    const pax = this.pax;
    const paxSize = pax?.get("size");
    const size = paxSize !== undefined ? Number(paxSize) : headerSize;
    if (!Number.isSafeInteger(size) || size < 0) throw new TarFormatError("invalid entry size in tar header");

    const name = normalize(pax?.get("path") ?? this.longName ?? this.entryName());
    const link = pax?.get("linkpath") ?? this.longLink ?? readString(this.header, FIELD.linkname);
    this.longName = null;
    this.longLink = null;
    this.pax = null;

    if (type === "5") return this.startEntry(size, false, () => undefined);
    const unsafe = unsafePathReason(name);
    if (unsafe) return this.skip(name, size, `refused: ${unsafe}`);
    const special = TYPE_NAMES[type];
    if (special) return this.skip(name, size, `skipped: a ${special}${link ? ` to ${preview(link)}` : ""}, not a regular file`);
    if (type !== "0" && type !== "7") return this.skip(name, size, `skipped: unsupported tar entry type ${preview(type)}`);
    if (size > this.limits.maxFileBytes) return this.skip(name, size, `skipped: ${size} bytes exceeds the limit of ${this.limits.maxFileBytes} bytes per file`);
    if (this.kept + size > this.limits.maxTotalBytes) {
      return this.skip(name, size, `skipped: the limit of ${this.limits.maxTotalBytes} bytes for all files together was reached`);
    }
    this.kept += size;
    this.startEntry(size, true, (data) => this.emit(name, data ?? Buffer.alloc(0)));
  }

  private emit(name: string, file: TarFile): void {
    if (this.limits.onFile !== undefined) this.limits.onFile(name, file);
    else this.files.set(name, file);
  }

  /** The ustar name, with the prefix field when the header is POSIX ustar (GNU uses those bytes otherwise). */
  private entryName(): string {
    const name = readString(this.header, FIELD.name);
    const magic = this.header.subarray(FIELD.magic[0], FIELD.magic[0] + 6).toString("latin1");
    if (magic !== "ustar\0") return name;
    const prefix = readString(this.header, FIELD.prefix);
    return prefix ? `${prefix}/${name}` : name;
  }

  private onMeta(type: string, data: Buffer): void {
    if (type === "L") this.longName = data.toString("utf8").replace(/\0.*$/s, "");
    else if (type === "K") this.longLink = data.toString("utf8").replace(/\0.*$/s, "");
    else if (type === "x") this.pax = parsePax(data);
    // "g" (global pax header) only carries defaults we do not use.
  }

  private skip(name: string, size: number, error: string): void {
    this.emit(name, { error });
    this.startEntry(size, false, () => undefined);
  }

  private startEntry(size: number, keep: boolean, sink: EntrySink): void {
    this.dataLeft = size;
    this.padLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    this.chunks = keep ? [] : null;
    this.sink = sink;
    if (size === 0) this.completeEntry();
  }

  private completeEntry(): void {
    const sink = this.sink;
    const data = this.chunks ? Buffer.concat(this.chunks) : null;
    this.sink = null;
    this.chunks = null;
    sink?.(data);
  }
}

/** Reads a whole tar stream with the given caps. */
export async function readTar(source: AsyncIterable<Buffer | string>, limits: TarReadLimits): Promise<Map<string, TarFile>> {
  const reader = new TarReader(limits);
  for await (const chunk of source) reader.write(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk);
  return reader.end();
}
