// When `submit --cluster local` (in the background) may leave: once the detached supervisor took the run.
// A run of a few milliseconds can end, and its supervisor with it, between two looks at the record: the
// record then says the run's last phase and no supervisor, and that is a started run, not a failed start.
import { describe, expect, it } from "vitest";
import { tookTheRun } from "../../src/app/local-supervisor.js";

const me = { pid: 4242, started: "2026-12-07T15:00:00.000Z" };

describe("tookTheRun", () => {
  it("is false while the record is the CLI's first one", () => {
    expect(tookTheRun({ phase: "submitting", supervisor: null }, 4242)).toBe(false);
    expect(tookTheRun({ phase: "submitting", supervisor: undefined }, 4242)).toBe(false);
  });
  it("is true once this supervisor records itself", () => {
    expect(tookTheRun({ phase: "submitted", supervisor: me }, 4242)).toBe(true);
  });
  it("is true when the run has already ended and the supervisor with it", () => {
    expect(tookTheRun({ phase: "collected", supervisor: null }, 4242)).toBe(true);
    expect(tookTheRun({ phase: "cancelled", supervisor: null }, 4242)).toBe(true);
  });
  it("is false for another process's supervisor", () => {
    expect(tookTheRun({ phase: "submitted", supervisor: { ...me, pid: 99 } }, 4242)).toBe(false);
  });
});
