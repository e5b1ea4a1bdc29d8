// The ustar writer and streaming reader, checked against the system GNU tar in both directions.
import { mkdirSync, readFileSync, statSync, symlinkSync, linkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readTar, TarFormatError, TarReader, type TarFile, type TarReadLimits } from "../../src/transport/tar-reader.js";
import { TarPathError, writeTar } from "../../src/transport/tar.js";
import { run, runOk, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;

beforeEach(() => {
  ({ dir, cleanup } = tempDir("tar"));
});
afterEach(() => cleanup());

const LIMITS = { maxFileBytes: 1024 * 1024, maxTotalBytes: 64 * 1024 * 1024 };

function readAll(archive: Buffer, limits: TarReadLimits = LIMITS, chunkSize = archive.length): Map<string, TarFile> {
  const reader = new TarReader(limits);
  for (let at = 0; at < archive.length; at += chunkSize) reader.write(archive.subarray(at, at + chunkSize));
  return reader.end();
}

const text = (file: TarFile | undefined): string => (Buffer.isBuffer(file) ? file.toString("utf8") : `ERROR ${JSON.stringify(file)}`);

describe("writeTar, extracted by the system tar", () => {
  it("round-trips nested files, unicode names and binary content with the modes asked for", () => {
    const binary = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
    const files = new Map<string, string | Buffer>([
      ["top.txt", "hello\n"],
      ["scripts/run.sh", "#!/bin/bash\necho hi\n"],
      ["states/ünï cødé ✓.json", '{"ok":true}'],
      ["deep/a/b/c/empty", ""],
      ["bin.dat", binary],
    ]);
    const archive = writeTar(files, { modeOf: (p) => (p.endsWith(".sh") ? 0o700 : 0o600) });
    runOk("tar", ["-x", "-f", "-", "-C", dir], { input: archive });

    expect(readFileSync(path.join(dir, "top.txt"), "utf8")).toBe("hello\n");
    expect(readFileSync(path.join(dir, "states/ünï cødé ✓.json"), "utf8")).toBe('{"ok":true}');
    expect(readFileSync(path.join(dir, "deep/a/b/c/empty"))).toEqual(Buffer.alloc(0));
    expect(readFileSync(path.join(dir, "bin.dat"))).toEqual(binary);
    expect(statSync(path.join(dir, "scripts/run.sh")).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, "top.txt")).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, "deep/a")).mode & 0o777).toBe(0o700);
  });

  it("uses the ustar prefix field for paths longer than 100 bytes, which tar reads back whole", () => {
    const long = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(90)}.txt`;
    runOk("tar", ["-x", "-f", "-", "-C", dir], { input: writeTar(new Map([[long, "deep"]])) });
    expect(readFileSync(path.join(dir, long), "utf8")).toBe("deep");
    expect(runOk("tar", ["-t", "-f", "-"], { input: writeTar(new Map([[long, "deep"]])) })).toContain(long);
  });

  it("refuses paths that could escape or do not fit: absolute, '..', empty segments, too long", () => {
    for (const bad of ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "", "a\0b", "x".repeat(101), `${"p".repeat(156)}/x`]) {
      expect(() => writeTar(new Map([[bad, "x"]])), JSON.stringify(bad.slice(0, 20))).toThrow(TarPathError);
    }
    expect(() => writeTar(new Map([["a", "file"], ["a/b", "nested"]]))).toThrow(/both a file and a directory/);
  });

  it("writes 1,000 files into one archive that tar lists completely", () => {
    const files = new Map(Array.from({ length: 1000 }, (_, i) => [`states/s${i}.json`, `{"i":${i}}`] as const));
    const listed = runOk("tar", ["-t", "-f", "-"], { input: writeTar(files) }).trim().split("\n");
    expect(listed.filter((l) => l.endsWith(".json"))).toHaveLength(1000);
  });
});

describe("TarReader, reading what the system tar creates", () => {
  /** The archive the system tar writes to stdout. */
  function systemTar(args: string[]): Buffer {
    const result = run("tar", args, { cwd: dir });
    if (result.code !== 0) throw new Error(`tar ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }

  beforeEach(() => {
    mkdirSync(path.join(dir, "src/states/nested"), { recursive: true });
    writeFileSync(path.join(dir, "src/states/a.json"), '{"a":1}');
    writeFileSync(path.join(dir, "src/states/ünï cødé.json"), "unicode");
    writeFileSync(path.join(dir, `src/states/${"L".repeat(150)}.json`), "long name");
    writeFileSync(path.join(dir, "src/states/nested/b.json"), "b");
    mkdirSync(path.join(dir, `src/states/${"P".repeat(70)}`));
    writeFileSync(path.join(dir, `src/states/${"P".repeat(70)}/${"Q".repeat(60)}.json`), "split name");
    writeFileSync(path.join(dir, "src/big.bin"), Buffer.alloc(5000, 7));
    writeFileSync(path.join(dir, "outside.txt"), "secret");
    symlinkSync("../../outside.txt", path.join(dir, "src/states/link.json"));
    linkSync(path.join(dir, "src/states/a.json"), path.join(dir, "src/states/hard.json"));
    runOk("mkfifo", [path.join(dir, "src/states/fifo")]);
  });

  for (const format of ["gnu", "pax", "ustar", "oldgnu"]) {
    it(`reads regular files of a --format=${format} archive and reports links and FIFOs as errors`, () => {
      const split = `states/${"P".repeat(70)}/${"Q".repeat(60)}.json`; // > 100 bytes: ustar prefix, GNU long name or pax path
      const names = ["states/a.json", "states/ünï cødé.json", "states/nested/b.json", "states/link.json", "states/hard.json", "states/fifo", "big.bin", split];
      if (format !== "ustar") names.push(`states/${"L".repeat(150)}.json`);
      const archive = systemTar([`--format=${format}`, "-c", "-f", "-", "-C", "src", ...names.map((n) => `./${n}`)]);
      const files = readAll(archive, LIMITS, 777);

      expect(text(files.get("states/a.json"))).toBe('{"a":1}');
      expect(text(files.get("states/ünï cødé.json"))).toBe("unicode");
      expect(text(files.get("states/nested/b.json"))).toBe("b");
      expect(files.get("big.bin")).toEqual(Buffer.alloc(5000, 7));
      expect(text(files.get(split))).toBe("split name");
      if (format !== "ustar") expect(text(files.get(`states/${"L".repeat(150)}.json`))).toBe("long name");
      expect(files.get("states/link.json")).toEqual({ error: 'skipped: a symbolic link to "../../outside.txt", not a regular file' });
      expect(files.get("states/hard.json")).toEqual({ error: expect.stringContaining("hard link") });
      expect(files.get("states/fifo")).toEqual({ error: expect.stringContaining("FIFO") });
    });
  }

  it("refuses entries that escape: absolute names and '..' (tar -P keeps them)", () => {
    const archive = systemTar(["-c", "-P", "-f", "-", "-C", "src", "../outside.txt", path.join(dir, "outside.txt"), "states/a.json"]);
    const files = readAll(archive);
    expect(files.get("../outside.txt")).toEqual({ error: "refused: contains '..'" });
    expect(files.get(path.join(dir, "outside.txt"))).toEqual({ error: "refused: absolute path" });
    expect(text(files.get("states/a.json"))).toBe('{"a":1}');
  });

  it("reports a file over maxFileBytes as an error and keeps the others", () => {
    const archive = systemTar(["-c", "-f", "-", "-C", "src", "big.bin", "states/a.json"]);
    const files = readAll(archive, { maxFileBytes: 4096, maxTotalBytes: 1e9 });
    expect(files.get("big.bin")).toEqual({ error: "skipped: 5000 bytes exceeds the limit of 4096 bytes per file" });
    expect(text(files.get("states/a.json"))).toBe('{"a":1}');
  });

  it("reports files beyond maxTotalBytes as errors", () => {
    const archive = systemTar(["-c", "-f", "-", "-C", "src", "big.bin", "states/a.json"]);
    const files = readAll(archive, { maxFileBytes: 1e6, maxTotalBytes: 5003 });
    expect(files.get("big.bin")).toBeInstanceOf(Buffer);
    expect(files.get("states/a.json")).toEqual({ error: expect.stringContaining("for all files together was reached") });
  });

  it("gives the same result when fed one byte at a time", () => {
    const archive = systemTar(["-c", "-f", "-", "-C", "src", "states"]);
    expect(readAll(archive, LIMITS, 1)).toEqual(readAll(archive));
  });

  it("with onFile hands each file over as it completes and keeps none (a million state files are never held)", () => {
    const archive = systemTar(["-c", "-f", "-", "-C", "src", "big.bin", "states"]);
    const handed = new Map<string, TarFile>();
    const reader = new TarReader({ maxFileBytes: 4096, maxTotalBytes: 1e9, onFile: (name, file) => handed.set(name, file) });
    // One byte at a time: an entry is handed over only once it is complete.
    for (let at = 0; at < archive.length; at++) reader.write(archive.subarray(at, at + 1));
    expect(reader.end().size).toBe(0);
    const kept = readAll(archive, { maxFileBytes: 4096, maxTotalBytes: 1e9 });
    expect(handed).toEqual(kept);
    expect(handed.get("big.bin")).toEqual({ error: "skipped: 5000 bytes exceeds the limit of 4096 bytes per file" });
  });

  it("refuses more entries than maxEntries", () => {
    const archive = systemTar(["-c", "-f", "-", "-C", "src", "states"]);
    expect(() => readAll(archive, { ...LIMITS, maxEntries: 1 })).toThrow(/more than 1 entries/);
  });

  it("reads back what writeTar wrote", async () => {
    const files = new Map<string, string | Buffer>([["x/y.txt", "y"], ["z", Buffer.from([0, 1, 2])]]);
    const got = await readTar((async function* () { yield writeTar(files); })(), LIMITS);
    expect(got).toEqual(new Map([["x/y.txt", Buffer.from("y")], ["z", Buffer.from([0, 1, 2])]]));
  });
});

describe("TarReader on malformed or hostile streams", () => {
  const archive = (): Buffer => writeTar(new Map([["a.txt", "x".repeat(600)], ["b.txt", "b"]]));

  it("throws TarFormatError on a corrupt header checksum", () => {
    const bad = archive();
    bad[0] = "Z".charCodeAt(0);
    expect(() => readAll(bad)).toThrow(TarFormatError);
  });

  it("throws TarFormatError when the stream stops inside an entry", () => {
    expect(() => readAll(archive().subarray(0, 700))).toThrow(/truncated/);
  });

  it("streams a 256 MiB entry past a 1 KiB cap without holding it in memory", async () => {
    const header = writeTar(new Map([["huge.bin", Buffer.alloc(0)]])).subarray(0, 512);
    // Rewrite the size field to 256 MiB and fix the checksum.
    const size = 256 * 1024 * 1024;
    header.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "ascii");
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
    const chunk = Buffer.alloc(1024 * 1024, 1);
    async function* stream(): AsyncGenerator<Buffer> {
      yield header;
      for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
      yield Buffer.alloc(1024);
    }
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const source = (async function* () {
      for await (const c of stream()) {
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
        yield c;
      }
    })();
    const files = await readTar(source, { maxFileBytes: 1024, maxTotalBytes: 1024 });
    expect(files.get("huge.bin")).toEqual({ error: expect.stringContaining("exceeds the limit of 1024 bytes") });
    expect(peak - before).toBeLessThan(32 * 1024 * 1024);
  });
});
