import { describe, expect, test } from "vitest";
import type { JobDraft } from "../../src/compiler/drafts.js";
import { LOCAL_TARGET_DEFAULTS } from "../../src/compiler/target.js";
import { timeLimitProblems, withSlurmTimes } from "../../src/compiler/time-limits.js";
import type { Resources } from "../../src/plan/resources.js";
import { cmd, compileTree, pipe, target } from "./helpers.js";

const job = (id: string, steps: string[], resources: Resources): JobDraft => ({
  id,
  name: `hp-${id}`,
  shape: "single",
  bodies: [],
  array: null,
  dependencies: [],
  resources,
  steps,
  fused: null,
  scriptPath: `scripts/${id}.sbatch`,
});

describe("time limits", () => {
  test("are written one way: HH:MM:SS, or D-HH:MM:SS past a day; jobs without one are left alone", () => {
    const jobs = [job("j000", ["p.a"], { time: "5:00" }), job("j001", ["p.b"], { time: "1-0" }), job("j002", ["p.c"], { cpus: 2 })];
    expect(withSlurmTimes(jobs).map((j) => j.resources)).toEqual([{ time: "00:05:00" }, { time: "1-00:00:00" }, { cpus: 2 }]);
    expect(jobs[0]?.resources.time).toBe("5:00");
  });

  test("a limit not above the cluster's signal_grace_s is a problem naming the step, or the steps and job of a fusion", () => {
    const cluster = { ...LOCAL_TARGET_DEFAULTS, workdir: "/w", name: "hpc", signalGraceS: 300 };
    const jobs = [job("j000", ["p.a"], { time: "00:05:00" }), job("j001", ["p.b", "p.c"], { time: "00:04:00" }), job("j002", ["p.d"], { time: "00:05:01" }), job("j003", ["p.e"], {})];
    expect(timeLimitProblems(jobs, cluster)).toEqual([
      "step p.a: signal_grace_s (300 s) of cluster hpc is not below the time limit 00:05:00 (300 s): the warning signal would stop it as soon as it starts; give it a time limit above 300 s or lower signal_grace_s",
      "steps p.b, p.c (job j001): signal_grace_s (300 s) of cluster hpc is not below the time limit 00:04:00 (240 s): the warning signal would stop it as soon as it starts; give it a time limit above 300 s or lower signal_grace_s",
    ]);
    expect(timeLimitProblems(jobs, { ...cluster, signalGraceS: 0 })).toEqual([]);
  });

  test("compile refuses such a job, with the summed limit of a fusion", () => {
    const tree = pipe("p", [cmd("a", { resources: { time: "2:00" } }), cmd("b", { resources: { time: "2:00" } })]);
    expect(() => compileTree(tree, { target: target({ signalGraceS: 240 }) })).toThrow(/^steps p\.a, p\.b \(job j000\): signal_grace_s \(240 s\) of cluster local is not below the time limit 00:04:00/);
    expect(compileTree(tree, { target: target({ signalGraceS: 239 }) }).jobs[0]?.resources.time).toBe("00:04:00");
  });
});
