import { describe, expect, it } from "vitest";
import {
  DEFAULT_POLL_POLICY,
  PollInterval,
  busyCapOf,
  nextPollDelay,
  pollPolicy,
  statusFingerprint,
  unknownRecord,
} from "../../src/slurm/index.js";

const middle = (): number => 0.5; // no jitter
const policy = pollPolicy({ initialMs: 500, factor: 1.5, maxMs: 30_000, jitter: 0.2 });

describe("poll interval policy", () => {
  it("starts at 0.5 s", () => {
    expect(nextPollDelay(null, false, middle, policy)).toEqual({ baseMs: 500, delayMs: 500 });
  });

  it("backs off by 1.5 per quiet poll up to the 30 s cap", () => {
    const bases: number[] = [];
    let base: number | null = null;
    for (let poll = 0; poll < 14; poll += 1) {
      base = nextPollDelay(base, false, middle, policy).baseMs;
      bases.push(base);
    }
    expect(bases.slice(0, 4)).toEqual([500, 750, 1125, 1687.5]);
    expect(Math.max(...bases)).toBe(30_000);
    expect(bases.at(-1)).toBe(30_000);
  });

  it("goes back to 0.5 s when something changes after a quiet spell (an interval above 5 s)", () => {
    expect(nextPollDelay(20_000, true, middle, policy).baseMs).toBe(500);
    expect(nextPollDelay(5_695, true, middle, policy).baseMs).toBe(500);
  });

  it("eases off to 5 s, and stays there, while every poll sees a change (a run whose tasks keep finishing)", () => {
    const bases: number[] = [];
    let base: number | null = null;
    for (let poll = 0; poll < 12; poll += 1) {
      base = nextPollDelay(base, poll > 0, middle, policy).baseMs;
      bases.push(base);
    }
    expect(bases).toEqual([500, 750, 1125, 1687.5, 2531.25, 3796.875, 5000, 5000, 5000, 5000, 5000, 5000]);
    // Then quiet: the usual back-off to the cap; a change from there starts at 0.5 s again.
    expect(nextPollDelay(5000, false, middle, policy).baseMs).toBe(7500);
    expect(nextPollDelay(7500, true, middle, policy).baseMs).toBe(500);
  });

  it("keeps the busy interval at most half of a configured cap, and takes busyMaxMs", () => {
    expect(busyCapOf(pollPolicy({ maxMs: 800, initialMs: 100 }))).toBe(400);
    expect(busyCapOf(pollPolicy({ busyMaxMs: 2_000 }))).toBe(2_000);
    expect(() => pollPolicy({ busyMaxMs: 60_000 })).toThrow(/busyMaxMs/);
  });

  it("spreads delays over ±20% with the injected random", () => {
    expect(nextPollDelay(1000, false, () => 0, policy).delayMs).toBe(1200); // base 1500 - 20%
    expect(nextPollDelay(1000, false, () => 0.999999, policy).delayMs).toBe(1800); // base 1500 + 20%
  });

  it("never waits longer than the cap, jitter included", () => {
    expect(nextPollDelay(30_000, false, () => 0.999999, policy)).toEqual({ baseMs: 30_000, delayMs: 30_000 });
  });

  it("takes a configured cap", () => {
    const short = pollPolicy({ maxMs: 2_000 });
    let base: number | null = null;
    for (let poll = 0; poll < 10; poll += 1) base = nextPollDelay(base, false, middle, short).baseMs;
    expect(base).toBe(2_000);
  });

  it("refuses policies that would spin or never back off", () => {
    expect(() => pollPolicy({ initialMs: 0 })).toThrow(/initialMs/);
    expect(() => pollPolicy({ maxMs: 100 })).toThrow(/maxMs/);
    expect(() => pollPolicy({ factor: 0.5 })).toThrow(/factor/);
    expect(() => pollPolicy({ jitter: 1 })).toThrow(/jitter/);
    expect(pollPolicy()).toEqual(DEFAULT_POLL_POLICY);
  });

  it("keeps its state across polls in PollInterval", () => {
    const interval = new PollInterval(policy, middle);
    expect([interval.next(false), interval.next(false), interval.next(true), interval.next(false)]).toEqual([500, 750, 1125, 1688]);
    interval.reset();
    expect(interval.next(false)).toBe(500);
  });
});

describe("status fingerprint", () => {
  it("changes when a task's state changes and not when only the map order does", () => {
    const a = unknownRecord("5");
    const b = { ...unknownRecord("6"), state: "RUNNING" as const };
    const first = statusFingerprint(new Map([["5", [a]], ["6", [b]]]));
    expect(statusFingerprint(new Map([["6", [b]], ["5", [a]]]))).toBe(first);
    expect(statusFingerprint(new Map([["5", [a]], ["6", [{ ...b, state: "COMPLETED" as const }]]]))).not.toBe(first);
  });
});
