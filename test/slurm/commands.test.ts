import { describe, expect, it } from "vitest";
import { SACCT_RUNS_ANY_OWN, SACCT_RUNS_NAME, SACCT_RUNS_SCRIPT, sacctArgv, sacctRunsArgv, sacctRunsArgvOf, sbatchArgv, scancelArgv, scontrolArgv, squeueArgv } from "../../src/slurm/index.js";
import { fixture, idsOf } from "./fixtures.js";

describe("SLURM argv builders", () => {
  it("builds exactly the squeue argv whose real output the fixtures hold: without -r, pending tasks as one range line", () => {
    const captured = fixture("squeue-throttled-array-unexpanded");
    expect(squeueArgv(idsOf(captured))).toEqual(captured.argv);
    // The other squeue fixtures were captured with -r (one line per task); the parser reads both.
    const expanded = fixture("squeue-all");
    expect(squeueArgv(idsOf(expanded))).toEqual(expanded.argv.filter((a) => a !== "-r"));
    expect(squeueArgv(idsOf(expanded))).not.toContain("-r");
  });

  it("builds exactly the sacct argv whose real output the fixtures hold", () => {
    const captured = fixture("sacct-all");
    expect(sacctArgv(idsOf(captured))).toEqual(captured.argv);
  });

  it("runs that sacct argv, word for word, through the cluster-side filter script (each word quoted by the transport)", () => {
    const captured = fixture("sacct-all");
    expect(sacctRunsArgv(idsOf(captured))).toEqual(["bash", "-c", SACCT_RUNS_SCRIPT, SACCT_RUNS_NAME, ...captured.argv]);
    expect(sacctRunsArgvOf(["awk", "BEGIN {}"])).toEqual(["bash", "-c", SACCT_RUNS_SCRIPT, SACCT_RUNS_NAME, "awk", "BEGIN {}"]);
    expect(() => sacctRunsArgv(["1;rm"])).toThrow(/not a SLURM job id/);
    expect(() => sacctRunsArgvOf([])).toThrow(/no command/);
    // The status poll reads no task's own job id: the filter may fold tasks whatever their own ids.
    expect(sacctRunsArgv(["5"], { taskJobIds: false })).toEqual(["bash", "-c", SACCT_RUNS_SCRIPT, SACCT_RUNS_NAME, SACCT_RUNS_ANY_OWN, ...sacctArgv(["5"])]);
  });

  it("asks scontrol about one id directly and about several with one call that lists every job", () => {
    expect(scontrolArgv(["5"])).toEqual(["scontrol", "show", "job", "-o", "5"]);
    expect(scontrolArgv(["5", "6"])).toEqual(fixture("scontrol-all").argv);
  });

  it("puts many ids in one squeue, sacct and scancel, each id once", () => {
    expect(squeueArgv(["1", "2", "1"]).at(-1)).toBe("1,2");
    expect(sacctArgv(["1", "2", "2"]).at(-1)).toBe("1,2");
    expect(scancelArgv(["7", "8", "7"])).toEqual(["scancel", "7", "8"]);
  });

  it("leaves out --me when asked to see other users' jobs", () => {
    expect(squeueArgv(["1"], { onlyMine: false })).not.toContain("--me");
  });

  it("refuses ids that could change the meaning of an id list", () => {
    expect(() => squeueArgv(["1,2"])).toThrow(/not a SLURM job id/);
    expect(() => sacctArgv(["1 --all"])).toThrow(/not a SLURM job id/);
    expect(() => scancelArgv(["-u"])).toThrow(/not a SLURM job id/);
    expect(() => scancelArgv([])).toThrow(/no job ids/);
    expect(squeueArgv(["46_3"]).at(-1)).toBe("46_3");
  });

  it("builds sbatch with one --name=value word per option and kill-on-invalid-dep for dependencies", () => {
    expect(
      sbatchArgv({
        script: "/runs/p/r1/scripts/step a.sh",
        jobName: "p.step",
        comment: "hpcpipe:r1",
        dependencies: [
          { type: "afterok", jobIds: ["11", "12"] },
          { type: "afterany", jobIds: ["13"] },
        ],
        array: "0-9%2",
        partition: "debug",
        time: "0:10:00",
        output: "/runs/p/r1/logs/%x-%A_%a.out",
        extra: ["--mem=4G"],
      }),
    ).toEqual([
      "sbatch",
      "--parsable",
      "--job-name=p.step",
      "--comment=hpcpipe:r1",
      "--array=0-9%2",
      "--dependency=afterok:11:12,afterany:13",
      "--kill-on-invalid-dep=yes",
      "--partition=debug",
      "--time=0:10:00",
      "--output=/runs/p/r1/logs/%x-%A_%a.out",
      "--mem=4G",
      "/runs/p/r1/scripts/step a.sh",
    ]);
  });

  it("adds no dependency options to a job without dependencies, unless asked", () => {
    expect(sbatchArgv({ script: "a.sh" })).toEqual(["sbatch", "--parsable", "a.sh"]);
    expect(sbatchArgv({ script: "a.sh", dependencies: [{ type: "afterok", jobIds: ["1"] }], killOnInvalidDep: false })).toEqual([
      "sbatch",
      "--parsable",
      "--dependency=afterok:1",
      "a.sh",
    ]);
  });

  it("refuses a script path that sbatch would read as an option, and values with line breaks", () => {
    expect(() => sbatchArgv({ script: "--wrap=rm" })).toThrow(/must not/);
    expect(() => sbatchArgv({ script: "a.sh", jobName: "x\n#SBATCH --mem=1" })).toThrow(/line break/);
    expect(() => sbatchArgv({ script: "a.sh", array: "0-3 --x" })).toThrow(/--array/);
    expect(() => sbatchArgv({ script: "a.sh", dependencies: [{ type: "afterok", jobIds: ["1:2"] }] })).toThrow(/job id/);
  });
});
