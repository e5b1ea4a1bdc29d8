/** Bounds how many channels are open at once on one connection; callers beyond the bound wait in order. */
export class ChannelLimiter {
  private active = 0;
  private peakActive = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxChannels must be a positive integer, got ${max}`);
  }

  /** The most channels that were open at the same time. */
  get peak(): number {
    return this.peakActive;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    this.peakActive = Math.max(this.peakActive, this.active);
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so `active` never overshoots.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
