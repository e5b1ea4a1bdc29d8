/** Time comes in through this interface so timing is exact in tests. */
export interface Clock {
  /** Monotonic milliseconds, for durations. */
  now(): number;
  /** Wall-clock time as an ISO 8601 string, for timestamps. */
  isoNow(): string;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  isoNow: () => new Date().toISOString(),
};

/** A clock that only moves when told to; for tests and reproducible runs. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(
    startMs = 0,
    private readonly epochMs = Date.UTC(2026, 0, 1),
  ) {
    this.ms = startMs;
  }
  now(): number {
    return this.ms;
  }
  isoNow(): string {
    return new Date(this.epochMs + this.ms).toISOString();
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
