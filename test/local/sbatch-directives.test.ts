import { describe, expect, it } from "vitest";
import { expandFilenamePattern, parseSbatchDirectives, parseSignalOption } from "../../src/local/sbatch-directives.js";
import { warnDelayS } from "../../src/local/task-process.js";

describe("#SBATCH directives the local executor honours", () => {
  it("reads output, error, time and the warning signal from the header, up to the first command", () => {
    const script = [
      "#!/bin/bash",
      "#SBATCH --job-name=render",
      "#SBATCH --output=logs/slurm-%A_%a.out",
      "#SBATCH -e 'logs/err %j.txt'",
      "#SBATCH --time 1:00:00",
      "# a comment",
      "",
      "#SBATCH --signal=B:USR1@90",
      "echo hi",
      "#SBATCH --output=ignored-after-the-first-command",
    ].join("\n");
    expect(parseSbatchDirectives(script)).toEqual({
      output: "logs/slurm-%A_%a.out",
      error: "logs/err %j.txt",
      time: "1:00:00",
      signal: { signal: "SIGUSR1", seconds: 90, batchOnly: true },
    });
  });

  it.each([
    ["B:USR1@60", { signal: "SIGUSR1", seconds: 60, batchOnly: true }],
    ["USR2", { signal: "SIGUSR2", seconds: 60, batchOnly: false }],
    ["SIGTERM@5", { signal: "SIGTERM", seconds: 5, batchOnly: false }],
    ["B:10@30", { signal: "SIGUSR1", seconds: 30, batchOnly: true }],
  ])("parses --signal=%s", (value, expected) => {
    expect(parseSignalOption(value)).toEqual(expected);
  });

  it("refuses a signal it does not know", () => {
    expect(parseSignalOption("B:NOPE@60")).toBeNull();
  });

  it("expands SLURM's file name patterns", () => {
    const v = { arrayJobId: "50", taskId: "3", jobId: "53", jobName: "thumbs", user: "u", node: "n1" };
    expect(expandFilenamePattern("logs/%x-%A_%a-%j-%3a-%%.out", v)).toBe("logs/thumbs-50_3-53-003-%.out");
  });

  it("never sends the warning before the job can have set its traps", () => {
    expect(warnDelayS(120, 60)).toBe(60);
    expect(warnDelayS(60, 60)).toBe(1);
    expect(warnDelayS(1, 0.1)).toBeCloseTo(0.9);
    expect(warnDelayS(0.5, 60)).toBe(0.25);
  });
});
