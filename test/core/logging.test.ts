import fs from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { CompletedState, createLogger, ManualClock, Pipeline, silentLogger, StepGroup } from "../../src/core/index.js";
import type { Context } from "../../src/core/index.js";
import { fnStep, makeTempDir, memoryLogger } from "./helpers.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("logging", () => {
  it("logs step start and step succeeded with its duration, at INFO, for every step and the pipeline", async () => {
    const log = memoryLogger();
    const clock = new ManualClock();
    const p = new Pipeline({ name: "p", steps: [fnStep("a", () => clock.advance(250)), fnStep("b", () => clock.advance(1000))] });
    await p.run({}, { logger: log.logger, clock });
    const lines = log.lines();
    expect(lines.map((l) => [l.msg, l.step])).toEqual([
      ["step start", "p"],
      ["step start", "p.a"],
      ["step succeeded", "p.a"],
      ["step start", "p.b"],
      ["step succeeded", "p.b"],
      ["step succeeded", "p"],
    ]);
    expect(lines.every((l) => l.level === 30)).toBe(true);
    expect(lines.filter((l) => l.msg === "step succeeded").map((l) => l.duration_s)).toEqual([0.25, 1, 1.25]);
  });

  it("logs step failed with the failure kind and the error", async () => {
    const log = memoryLogger();
    const p = new Pipeline({
      name: "p",
      steps: [
        fnStep("bad", () => {
          throw new Error("no disk");
        }),
      ],
    });
    await p.run({}, { logger: log.logger, clock: new ManualClock() });
    const failed = log.lines().filter((l) => l.msg === "step failed");
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ level: 30, step: "p.bad", failure: "STEP_EXCEPTION", error: "Error: no disk", duration_s: 0 });
    expect(failed[1]).toMatchObject({ step: "p", failure: "STEP_EXCEPTION", error: "p.bad: Error: no disk" });
  });

  it("logs a missing requirement as a failure without a start", async () => {
    const log = memoryLogger();
    await new Pipeline({ name: "p", requires: [], steps: [fnStep("a", () => {}, { requires: ["x"] })] }).run({}, { logger: log.logger });
    expect(log.messages()).toEqual(["step start", "step failed", "step failed"]);
    expect(log.lines()[1]).toMatchObject({ step: "p.a", failure: "MISSING_REQUIREMENT" });
  });

  it("logs a skipped idempotent step as skipped, without start or success lines for it", async () => {
    const log = memoryLogger();
    const p = new Pipeline({ name: "p", idempotent: false, steps: [fnStep("a", () => {})] });
    const context: Context = {};
    await p.run(context);
    await p.run(context, { logger: log.logger });
    expect(log.lines().map((l) => [l.msg, l.step])).toEqual([
      ["step start", "p"],
      ["step skipped (idempotent, already succeeded)", "p.a"],
      ["step succeeded", "p"],
    ]);
    expect(log.lines()[1]?.level).toBe(30);
  });

  it("logs a validation failure as step failed with the problem", async () => {
    const log = memoryLogger();
    await new Pipeline({ name: "p", steps: [fnStep("a", () => {}, { provides: ["k"] })] }).run({}, { logger: log.logger });
    expect(log.lines().find((l) => l.step === "p.a" && l.msg === "step failed")).toMatchObject({
      failure: "STEP_FAILED",
      error: "validation failed: did not provide 'k'",
    });
  });

  it("a logger given to the pipeline's constructor is used when run is not given one", async () => {
    const log = memoryLogger();
    await new Pipeline({ name: "p", logger: log.logger, steps: [fnStep("a", () => {})] }).run({});
    expect(log.messages()).toContain("step succeeded");
  });

  it("a logger passed to run wins over the constructor's", async () => {
    const ctorLog = memoryLogger();
    const runLog = memoryLogger();
    await new Pipeline({ name: "p", logger: ctorLog.logger, steps: [fnStep("a", () => {})] }).run({}, { logger: runLog.logger });
    expect(ctorLog.lines()).toEqual([]);
    expect(runLog.lines().length).toBeGreaterThan(0);
  });

  it("children of a parallel group log under their namespaced keys", async () => {
    const log = memoryLogger();
    const g = new StepGroup({ name: "g", parallel: true, steps: [fnStep("a", () => {}), fnStep("b", () => CompletedState.fail("x"))] });
    await g.run({}, { logger: log.logger });
    const steps = log.lines().map((l) => `${String(l.msg)} ${String(l.step)}`);
    expect(steps).toContain("step succeeded g.a");
    expect(steps).toContain("step failed g.b");
  });

  it("a logger set above INFO does not receive the lifecycle lines", async () => {
    const log = memoryLogger("warn");
    await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run({}, { logger: log.logger });
    expect(log.lines()).toEqual([]);
  });

  it("without a logger nothing is written to stdout, stderr or the default logger's stream", async () => {
    const stream = (silentLogger as unknown as Record<symbol, { write: (s: string) => void }>)[pino.symbols.streamSym];
    expect(stream).toBeDefined();
    const streamWrite = vi.spyOn(stream as { write: (s: string) => void }, "write");
    const fsWrite = vi.spyOn(fs, "write");
    const fsWriteSync = vi.spyOn(fs, "writeSync");
    const stdout = vi.spyOn(process.stdout, "write");
    const stderr = vi.spyOn(process.stderr, "write");
    const p = new Pipeline({
      name: "p",
      steps: [
        fnStep("a", () => {}),
        fnStep("b", () => {
          throw new Error("x");
        }),
      ],
    });
    await p.run({});
    await p.run({}, { dryRun: true });
    await new Promise((r) => setTimeout(r, 20));
    const toStd = (calls: unknown[][]): unknown[][] => calls.filter((c) => c[0] === 1 || c[0] === 2);
    expect(streamWrite).not.toHaveBeenCalled();
    expect(toStd(fsWrite.mock.calls)).toEqual([]);
    expect(toStd(fsWriteSync.mock.calls)).toEqual([]);
    expect(stdout).not.toHaveBeenCalled();
    expect(stderr).not.toHaveBeenCalled();
  });

  it("the spies used to prove silence do see a pino logger at INFO writing to stdout", async () => {
    // Guards the previous test: if pino wrote by another route, that test would prove nothing.
    // Swallow the output but report it fully written, so nothing reaches the terminal.
    const written = (s: unknown): number => Buffer.byteLength(String(s));
    const fsWrite = vi.spyOn(fs, "write").mockImplementation(((_fd: number, s: string, ...rest: unknown[]) => {
      const cb = rest.find((r) => typeof r === "function") as ((e: null, n: number) => void) | undefined;
      cb?.(null, written(s));
    }) as unknown as typeof fs.write);
    const fsWriteSync = vi.spyOn(fs, "writeSync").mockImplementation(((_fd: number, s: unknown) => written(s)) as unknown as typeof fs.writeSync);
    const loud = pino({ level: "info" });
    await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run({}, { logger: loud });
    await new Promise((r) => setTimeout(r, 20));
    const calls = [...fsWrite.mock.calls, ...fsWriteSync.mock.calls].filter((c) => c[0] === 1);
    expect(calls.length).toBeGreaterThan(0);
  });

  it("createLogger writes INFO JSON lines named pipeline to the given file, synchronously", async () => {
    const { dir, cleanup } = await makeTempDir();
    try {
      const file = join(dir, "run.log");
      const logger = createLogger({ destination: file });
      await new Pipeline({ name: "p", steps: [fnStep("a", () => {})] }).run({}, { logger });
      // No flush or wait: the destination is synchronous.
      const lines = (await readFile(file, "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l.msg)).toEqual(["step start", "step start", "step succeeded", "step succeeded"]);
      expect(lines.every((l) => l.name === "pipeline" && l.level === 30)).toBe(true);
      expect(lines[0]).not.toHaveProperty("pid");
    } finally {
      await cleanup();
    }
  });
});
