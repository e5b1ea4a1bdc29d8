import { describe, expect, it } from "vitest";
import { JOB_STATES, isFinal, isSuccess, translateState, type JobState } from "../../src/slurm/index.js";

describe("SLURM job states", () => {
  it("translates every long name to the state of the same name", () => {
    for (const state of JOB_STATES.filter((name) => name !== "UNKNOWN")) {
      expect(translateState(state)).toEqual({ state, raw: state });
    }
  });

  it.each<[string, JobState]>([
    ["PD", "PENDING"],
    ["R", "RUNNING"],
    ["CG", "COMPLETING"],
    ["CD", "COMPLETED"],
    ["F", "FAILED"],
    ["TO", "TIMEOUT"],
    ["OOM", "OUT_OF_MEMORY"],
    ["CA", "CANCELLED"],
    ["NF", "NODE_FAIL"],
    ["PR", "PREEMPTED"],
    ["BF", "BOOT_FAIL"],
    ["DL", "DEADLINE"],
    ["RQ", "REQUEUED"],
    ["S", "SUSPENDED"],
    ["RV", "REVOKED"],
  ])("translates the short code %s to %s", (code, state) => {
    expect(translateState(code).state).toBe(state);
  });

  it("reads who cancelled a job from sacct's 'CANCELLED by 1001'", () => {
    expect(translateState("CANCELLED by 1001")).toEqual({ state: "CANCELLED", raw: "CANCELLED by 1001", cancelledBy: "1001" });
    expect(translateState("CANCELLED by 0").cancelledBy).toBe("0");
  });

  it("reads sacct's truncated 'CANCELLED+' as CANCELLED", () => {
    expect(translateState("CANCELLED+").state).toBe("CANCELLED");
  });

  it("maps the rarer squeue names onto the nearest state", () => {
    expect(translateState("CONFIGURING").state).toBe("PENDING");
    expect(translateState("REQUEUE_HOLD").state).toBe("REQUEUED");
    expect(translateState("STAGE_OUT").state).toBe("COMPLETING");
    expect(translateState("STOPPED").state).toBe("SUSPENDED");
  });

  it("turns text it does not know into UNKNOWN and keeps the text", () => {
    expect(translateState(" SOMETHING_NEW ")).toEqual({ state: "UNKNOWN", raw: "SOMETHING_NEW" });
    expect(translateState("")).toEqual({ state: "UNKNOWN", raw: "" });
  });

  it("calls only the ten end states final, so REQUEUED, SUSPENDED and UNKNOWN keep a poll going", () => {
    const final = JOB_STATES.filter(isFinal);
    expect(final.sort()).toEqual(
      ["BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT"].sort(),
    );
    expect(isFinal("REQUEUED")).toBe(false);
    expect(isFinal("COMPLETING")).toBe(false);
    expect(isSuccess("COMPLETED")).toBe(true);
    expect(isSuccess("TIMEOUT")).toBe(false);
  });
});
