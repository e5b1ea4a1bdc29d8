import { describe, expect, it } from "vitest";
import {
  AccountingDisabledError,
  AccountingUnavailableError,
  InvalidJobIdError,
  PermissionDeniedError,
  SchedulerError,
  checkResult,
  failureOf,
} from "../../src/slurm/index.js";
import { fixture, resultOf } from "./fixtures.js";

function thrownBy(name: string): unknown {
  const captured = fixture(name);
  try {
    checkResult(captured.argv, resultOf(captured));
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("typed SLURM errors from real output", () => {
  it("turns squeue's 'Invalid job id specified' for one purged id into InvalidJobIdError", () => {
    const error = thrownBy("squeue-invalid-id");
    expect(error).toBeInstanceOf(InvalidJobIdError);
    expect(error).toMatchObject({ code: 1, argv: fixture("squeue-invalid-id").argv });
  });

  it("turns scontrol's 'Invalid job id specified' into InvalidJobIdError", () => {
    expect(thrownBy("scontrol-invalid-id")).toBeInstanceOf(InvalidJobIdError);
  });

  it("turns 'Slurm accounting storage is disabled' into AccountingDisabledError", () => {
    const error = thrownBy("sacct-accounting-disabled");
    expect(error).toBeInstanceOf(AccountingDisabledError);
    expect(error).toBeInstanceOf(SchedulerError);
    expect((error as SchedulerError).stderr).toContain("Slurm accounting storage is disabled");
  });

  it("turns an unreachable slurmdbd into AccountingUnavailableError", () => {
    expect(thrownBy("sacct-dbd-unreachable")).toBeInstanceOf(AccountingUnavailableError);
  });

  it("turns 'Unable to connect to database' into AccountingUnavailableError (synthetic fixture)", () => {
    expect(thrownBy("synthetic-sacct-database-down")).toBeInstanceOf(AccountingUnavailableError);
  });

  it("keeps argv, exit code, stdout and stderr of a failed sbatch", () => {
    const captured = fixture("sbatch-bad-partition");
    const error = thrownBy("sbatch-bad-partition") as SchedulerError;
    expect(error).toBeInstanceOf(SchedulerError);
    expect(error.argv).toEqual(captured.argv);
    expect(error.code).toBe(1);
    expect(error.stderr).toContain("Invalid partition name specified");
    expect(error.message).toContain("Invalid partition name specified");
    expect(error.transient).toBe(false);
  });

  it("lets commands that succeeded through, also scancel of finished and unknown ids", () => {
    for (const name of ["squeue-all", "sacct-all", "scontrol-array", "scancel-many", "scancel-array", "squeue-unknown-ids"]) {
      const captured = fixture(name);
      expect(checkResult(captured.argv, resultOf(captured))).toEqual(resultOf(captured));
    }
  });

  it("marks socket timeouts and busy controllers as transient", () => {
    const argv = ["sbatch", "--parsable", "x.sh"];
    const timedOut = failureOf(argv, {
      code: 1,
      stdout: "",
      stderr: "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
    });
    expect(timedOut.transient).toBe(true);
    expect(failureOf(argv, { code: 1, stdout: "", stderr: "Resource temporarily unavailable" }).transient).toBe(true);
  });

  it("turns scancel of another user's job (exit 210) into PermissionDeniedError", () => {
    const error = thrownBy("scancel-permission-denied");
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect(error).toMatchObject({ code: 210 });
  });

  it("reports a command killed by a signal", () => {
    expect(failureOf(["squeue"], { code: null, stdout: "", stderr: "" }).message).toContain("a signal");
  });
});
