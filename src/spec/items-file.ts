/**
 * Reading a map's items file as a stream of lines: a fixed-size buffer at a
 * time, so a file of a million items (tens of MiB) never sits in memory
 * as one string beside its split lines, and reading stops at the first bad line.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";

const CHUNK_BYTES = 1024 * 1024;

/**
 * Calls `visit` for every item line of the file (1-based line numbers): blank
 * lines and lines starting with `#` are skipped, a trailing `\r` is dropped.
 * `visit` returns false to stop early. Throws when the file cannot be read
 * or is not a regular file.
 */
export function forEachItemLine(path: string, visit: (item: string, line: number) => boolean | void): void {
  const fd = openSync(path, "r");
  try {
    if (!fstatSync(fd).isFile()) throw new Error("not a regular file");
    const decoder = new StringDecoder("utf8");
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let rest = "";
    let line = 0;
    const emit = (raw: string): boolean => {
      line += 1;
      const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (text.trim() === "" || text.startsWith("#")) return true;
      return visit(text, line) !== false;
    };
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      const chunk = n === 0 ? decoder.end() : decoder.write(buf.subarray(0, n));
      let text = rest + chunk;
      let at = text.indexOf("\n");
      let from = 0;
      while (at !== -1) {
        if (!emit(text.slice(from, at))) return;
        from = at + 1;
        at = text.indexOf("\n", from);
      }
      text = text.slice(from);
      if (n === 0) {
        if (text !== "") emit(text);
        return;
      }
      rest = text;
    }
  } finally {
    closeSync(fd);
  }
}
