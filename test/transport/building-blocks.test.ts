// The small parts of the transport: channel limiting, reconnect backoff, and the start marker
// that shields a tar stream from whatever login scripts print.
import { describe, expect, it } from "vitest";
import { AfterMarker } from "../../src/transport/after-marker.js";
import { backoffDelay, DEFAULT_BACKOFF, sleep } from "../../src/transport/backoff.js";
import { RemoteCommandError, truncateOutput } from "../../src/transport/errors.js";
import { ChannelLimiter } from "../../src/transport/limiter.js";

describe("ChannelLimiter", () => {
  it("never runs more than max tasks at once and runs the rest in order as slots free up", async () => {
    const limiter = new ChannelLimiter(3);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        limiter.run(async () => {
          running++;
          peak = Math.max(peak, running);
          order.push(i);
          await sleep(2);
          running--;
        }),
      ),
    );
    expect(peak).toBe(3);
    expect(limiter.peak).toBe(3);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it("frees the slot when a task fails", async () => {
    const limiter = new ChannelLimiter(1);
    await expect(limiter.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(limiter.run(() => Promise.resolve(7))).resolves.toBe(7);
  });
});

describe("backoffDelay", () => {
  it("doubles from the base up to the cap, scaled by a jitter factor in [0.5, 1)", () => {
    const policy = { ...DEFAULT_BACKOFF, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(policy, a, () => 0.999999))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(policy, a, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
  });
});

describe("AfterMarker", () => {
  it("drops login-script noise before the marker line, even when the marker is split across chunks", () => {
    const out: Buffer[] = [];
    const framing = new AfterMarker("MARK-123", (c) => out.push(c));
    for (const chunk of ["Welcome to the cluster!\nMA", "RK-1", "23\nDATA", "-MORE"]) framing.write(Buffer.from(chunk));
    expect(framing.found).toBe(true);
    expect(Buffer.concat(out).toString()).toBe("DATA-MORE");
  });

  it("gives up when far too much noise comes before the marker", () => {
    const framing = new AfterMarker("M", () => undefined, 10);
    expect(() => framing.write(Buffer.alloc(100, 65))).toThrow(/no start marker/);
  });
});

describe("RemoteCommandError", () => {
  it("keeps the end of a long stderr in its message and fields, marking the cut", () => {
    const error = new RemoteCommandError("sbatch failed", ["sbatch"], 1, null, "", `${"x".repeat(10_000)}THE END`);
    expect(error.message).toMatch(/^sbatch failed\n--- remote stderr ---\n\[\.\.\. \d+ characters cut \.\.\.\]x+THE END$/);
    expect(error.stderr.length).toBeLessThan(4_100);
    expect(truncateOutput("short", 10)).toBe("short");
  });
});
