/**
 * A packed item's logs (issue 16): the steps of a packed map task append
 * their stdout/stderr to one pair of slot logs,
 * `logs/<pack>.items-<first>-<last>.s<slot>.out|.err`, each step's output
 * after a marker line `\n\x1ehpcpipe <KEY>\n`; the state line's `meta.log`
 * names the slot log (without suffix). A key's section is the bytes after
 * its LAST marker up to the `\n\x1e` that starts the next marker, or the end.
 */

/** A state's `meta.log` that names a slot log, checked (it becomes a path in the run directory). */
const SLOT_LOG = /^logs\/[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*\.items-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)\.s(0|[1-9][0-9]*)$/;

/** The slot log (`logs/<pack>.items-<first>-<last>.s<slot>`, no suffix) a state's meta names, or null: its logs are `logs/<key>.out|.err`. */
export function slotLogOf(meta: Readonly<Record<string, unknown>> | undefined): string | null {
  const log = meta?.log;
  return typeof log === "string" && log.length <= 1100 && SLOT_LOG.test(log) ? log : null;
}

/** The marker the wrapper writes before a key's step output. */
export function logMarker(key: string): Buffer {
  return Buffer.from(`\n\x1ehpcpipe ${key}\n`, "utf8");
}

const NEXT = Buffer.from("\n\x1e", "latin1");

/** The section of `key` in a slot log's bytes (after its last marker), or null when no marker of it is there. */
export function logSection(data: Buffer, key: string): Buffer | null {
  const marker = logMarker(key);
  const at = data.lastIndexOf(marker);
  if (at < 0) return null;
  const start = at + marker.length;
  const end = data.indexOf(NEXT, start);
  return data.subarray(start, end < 0 ? data.length : end);
}

/**
 * Cuts `key`'s sections out of a slot log read as a stream (a follow): what
 * push() returns is the section's bytes as they arrive; a marker split
 * between two chunks is still found. A later marker of the same key (the
 * step ran again) starts its section again.
 */
export class SectionFilter {
  private readonly marker: Buffer;
  private carry: Buffer = Buffer.alloc(0);
  private inSection = false;
  /** How many sections of the key were met (a second one: the step ran again). */
  sections = 0;

  constructor(readonly key: string) {
    this.marker = logMarker(key);
  }

  push(chunk: Buffer): Buffer {
    const data = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    const out: Buffer[] = [];
    let pos = 0;
    for (;;) {
      if (this.inSection) {
        const end = data.indexOf(NEXT, pos);
        if (end >= 0) {
          out.push(data.subarray(pos, end));
          this.inSection = false;
          pos = end;
          continue;
        }
        // A last `\n` may be the start of the next marker: held back until the next chunk.
        const keep = data.length > pos && data[data.length - 1] === 10 ? 1 : 0;
        out.push(data.subarray(pos, data.length - keep));
        this.carry = Buffer.from(data.subarray(data.length - keep));
        break;
      }
      const at = data.indexOf(this.marker, pos);
      if (at < 0) {
        this.carry = Buffer.from(data.subarray(Math.max(pos, data.length - (this.marker.length - 1))));
        break;
      }
      this.inSection = true;
      this.sections++;
      pos = at + this.marker.length;
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /** The end of the stream: a `\n` held back (it did not start a marker) is the section's. */
  flush(): Buffer {
    const rest = this.inSection ? this.carry : Buffer.alloc(0);
    this.carry = Buffer.alloc(0);
    return rest;
  }
}
