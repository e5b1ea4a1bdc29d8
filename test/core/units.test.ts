import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration } from "../../src/core/units.js";
import { formatDuration as reportDuration } from "../../src/report/html.js";
import { formatBytes as storeBytes } from "../../src/store/format.js";

describe("one rule for bytes and durations", () => {
  it("bytes: B, KiB, MiB, GiB with one decimal", () => {
    expect([0, 1023, 1536, 12.3 * 1024 ** 2, 2 * 1024 ** 3].map(formatBytes)).toEqual(["0 B", "1023 B", "1.5 KiB", "12.3 MiB", "2.0 GiB"]);
  });

  it("durations: seconds with two or one decimals, then minutes and hours; unknown is a dash", () => {
    expect([1.234, 12.34, 123, 3725, null, Number.NaN].map(formatDuration)).toEqual(["1.23 s", "12.3 s", "2 min 03 s", "1 h 02 min", "–", "–"]);
  });

  it("the report and the store use it (the same functions, not copies)", () => {
    expect(reportDuration).toBe(formatDuration);
    expect(storeBytes).toBe(formatBytes);
  });
});
