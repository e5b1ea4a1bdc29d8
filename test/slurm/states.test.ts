import { describe, expect, it } from "vitest";
import { JOB_STATES, isFinal, isFinalText, isSuccess, translateState, unknownJobState, type JobState } from "../../src/slurm/index.js";
import { isFinalSlurmState } from "../../src/collect/index.js";

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

  it("calls only the ten end states and hpcpipe's LOST and NOT_SUBMITTED final, so REQUEUED, SUSPENDED and UNKNOWN keep a poll going", () => {
    const final = JOB_STATES.filter(isFinal);
    expect(final.sort()).toEqual(
      ["BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT", "LOST", "NOT_SUBMITTED"].sort(),
    );
    expect(isFinal("UNKNOWN")).toBe(false);
    expect(isFinal("REQUEUED")).toBe(false);
    expect(isFinal("COMPLETING")).toBe(false);
    expect(isSuccess("COMPLETED")).toBe(true);
    expect(isSuccess("TIMEOUT")).toBe(false);
  });
});

describe("the one state vocabulary for printed states (the merger uses it too)", () => {
  it("an unknown spelling is not final; sacct's 'CANCELLED by 1001', 'COMPLETED+' and squeue's codes are read", () => {
    expect(isFinalText("SOMETHING_NEW")).toBe(false);
    expect(isFinalSlurmState("SOMETHING_NEW")).toBe(false);
    expect(isFinalText("CANCELLED by 1001")).toBe(true);
    expect(isFinalText("COMPLETED+")).toBe(true);
    expect(isFinalText("CD")).toBe(true);
    expect(isFinalText("PD")).toBe(false);
    expect(isFinalSlurmState("NOT_SUBMITTED")).toBe(true);
  });

  it("a job no source knows is lost only once MinJobAge has passed since its submission", () => {
    const t0 = Date.parse("2026-12-07T10:00:00Z");
    expect(unknownJobState("2026-12-07T10:00:00Z", t0 + 299_999, 300)).toEqual({ state: "UNKNOWN", reason: null, final: false });
    expect(unknownJobState("2026-12-07T10:00:00Z", t0 + 300_000, 300)).toMatchObject({ state: "LOST", final: true });
    expect(unknownJobState(null, t0 + 10_000_000, 300).final).toBe(false);
  });
});
