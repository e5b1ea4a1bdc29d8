/**
 * Login profiles and ~/.bashrc may print to stdout before a remote command
 * runs. A command whose stdout must be exact (a tar stream) prints a random
 * marker line first; this drops everything up to and including it.
 */
export class AfterMarker {
  private seen = false;
  private pending = Buffer.alloc(0);
  private readonly marker: Buffer;

  constructor(
    marker: string,
    private readonly next: (chunk: Buffer) => void,
    /** Bytes of noise tolerated before the marker. */
    private readonly maxNoise = 64 * 1024,
  ) {
    this.marker = Buffer.from(`${marker}\n`, "utf8");
  }

  write(chunk: Buffer): void {
    if (this.seen) return this.next(chunk);
    this.pending = Buffer.concat([this.pending, chunk]);
    const at = this.pending.indexOf(this.marker);
    if (at === -1) {
      if (this.pending.length > this.maxNoise + this.marker.length) {
        throw new Error(`no start marker within the first ${this.maxNoise} bytes of output (does a login script print a lot?)`);
      }
      return;
    }
    this.seen = true;
    const rest = this.pending.subarray(at + this.marker.length);
    this.pending = Buffer.alloc(0);
    if (rest.length > 0) this.next(rest);
  }

  /** Whether the marker was seen (the command got as far as printing it). */
  get found(): boolean {
    return this.seen;
  }
}
