// When an event watch asks the scheduler (src/watch/cadence.ts): at once at the start and after a
// failure, follow-ups while a failure is unsettled, otherwise at most every 60 s, easing off to 180 s.
import { describe, expect, it } from "vitest";
import { cadencePolicy, DEFAULT_CADENCE, SchedulerCadence } from "../../src/watch/cadence.js";

const QUIET = { learned: false, unsettled: false };

describe("SchedulerCadence", () => {
  it("asks at once at the start, then after 60 s, easing off by 1.5 to 180 s while answers teach nothing", () => {
    const c = new SchedulerCadence(DEFAULT_CADENCE, 0);
    expect(c.dueAt).toBe(0);
    const gaps: number[] = [];
    let t = 0;
    for (let i = 0; i < 7; i++) {
      c.answered(t, QUIET);
      gaps.push(c.dueAt - t);
      t = c.dueAt;
    }
    expect(gaps).toEqual([60_000, 90_000, 135_000, 180_000, 180_000, 180_000, 180_000]);
  });

  it("can start without asking (the caller knows the jobs were just submitted)", () => {
    expect(new SchedulerCadence(DEFAULT_CADENCE, 5_000, false).dueAt).toBe(65_000);
  });

  it("asks right after a failure event, then follows it up after 1, 2, 4 s while it is unsettled, then back to 60 s", () => {
    const c = new SchedulerCadence(DEFAULT_CADENCE, 0);
    c.answered(0, QUIET);
    c.answered(60_000, QUIET); // next routine query at 150 s
    c.failure(70_000);
    expect(c.dueAt).toBe(70_000);
    c.answered(70_000, { learned: false, unsettled: true });
    expect(c.dueAt).toBe(71_000);
    c.answered(71_000, { learned: false, unsettled: true });
    expect(c.dueAt).toBe(73_000);
    c.answered(73_000, { learned: false, unsettled: true });
    expect(c.dueAt).toBe(77_000);
    c.answered(77_000, { learned: true, unsettled: false });
    expect(c.dueAt).toBe(137_000);
  });

  it("a follow-up never waits longer than the routine interval", () => {
    const c = new SchedulerCadence(DEFAULT_CADENCE, 0);
    c.failure(0);
    let t = 0;
    for (let i = 0; i < 12; i++) {
      c.answered(t, { learned: false, unsettled: true });
      expect(c.dueAt - t).toBeLessThanOrEqual(60_000);
      t = c.dueAt;
    }
  });

  it("an answer that learned something (a death without a state) resets the interval to 60 s", () => {
    const c = new SchedulerCadence(DEFAULT_CADENCE, 0);
    for (const t of [0, 60_000, 150_000]) c.answered(t, QUIET);
    expect(c.dueAt).toBe(285_000);
    c.answered(285_000, { learned: true, unsettled: false });
    expect(c.dueAt).toBe(345_000);
  });

  it("a failure event never postpones a query that is due sooner", () => {
    const c = new SchedulerCadence(DEFAULT_CADENCE, 0);
    c.failure(10);
    expect(c.dueAt).toBe(0);
  });

  it("refuses policies that would ask in a tight loop", () => {
    expect(() => cadencePolicy({ everyMs: 0 })).toThrow(/everyMs/);
    expect(() => cadencePolicy({ maxMs: 1_000 })).toThrow(/maxMs/);
    expect(() => cadencePolicy({ factor: 0.5 })).toThrow(/factor/);
    expect(() => cadencePolicy({ followUpMs: 0 })).toThrow(/followUpMs/);
  });
});
