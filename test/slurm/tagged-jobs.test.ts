// Issue 11: the queries that find a run's jobs by its tag, and the submit script's output, parsed
// from real captured output (test/fixtures/slurm/{squeue-tagged,sacct-tagged,submit-script-output}.json:
// run 20261207-025001-aa5d31 on the test cluster, with other runs' jobs of the same user around it).
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { renderSubmitScript } from "../../src/render/index.js";
import { parseSubmitOutput, parseTaggedSacct, parseTaggedSqueue, RECONCILE_SQUEUE_FORMAT, taggedSacctArgv, taggedSqueueArgv } from "../../src/slurm/index.js";
import { fixture } from "./fixtures.js";

const RUN = "20261207-025001-aa5d31";
const PLAN = { jobs: [{ id: "j000" }, { id: "j001" }, { id: "j002" }] };

describe("finding a run's jobs by its tag (real squeue and sacct output)", () => {
  it("the command lines are the ones the fixtures were captured with", () => {
    expect(taggedSqueueArgv()).toEqual(fixture("squeue-tagged").argv);
    expect(RECONCILE_SQUEUE_FORMAT).toBe("%F|%k|%j");
    expect(taggedSacctArgv(["hp-j000-first", "hp-j001-each", "hp-j002-last"], "2026-12-07T02:50:01Z")).toEqual(fixture("sacct-tagged").argv);
  });

  it("squeue: only this run's jobs, an array once per task line, other runs left out", () => {
    const found = parseTaggedSqueue(fixture("squeue-tagged").stdout, RUN);
    expect(found).toEqual([
      { planId: "j000", slurmId: "612" },
      { planId: "j001", slurmId: "613" },
      { planId: "j001", slurmId: "613" },
      { planId: "j002", slurmId: "614" },
    ]);
    expect(parseTaggedSqueue(fixture("squeue-tagged").stdout, "20261207-025001-aa5d3")).toEqual([]);
  });

  it("sacct: only jobs whose working directory is this run's; array tasks give their array job id", () => {
    const found = parseTaggedSacct(fixture("sacct-tagged").stdout, RUN);
    expect(found).toEqual([
      { planId: "j000", slurmId: "612" },
      { planId: "j002", slurmId: "614" },
      { planId: "j001", slurmId: "613" },
      { planId: "j001", slurmId: "613" },
    ]);
  });

  it("the submit script's output gives each plan job's SLURM id", () => {
    expect(parseSubmitOutput(fixture("submit-script-output").stdout, PLAN)).toEqual({ jobs: { j000: "612", j001: "613", j002: "614" }, problems: [] });
  });
});

describe("the submit script's lookup before a retry (real bash, the captured squeue output)", () => {
  let dir = "";
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function lookup(planId: string, recorded: string[]): string {
    dir = mkdtempSync(path.join(tmpdir(), "hp-find-"));
    const squeue = path.join(dir, "squeue");
    writeFileSync(path.join(dir, "out"), fixture("squeue-tagged").stdout);
    writeFileSync(squeue, `#!/bin/bash\n[[ "$*" == "--me -h -t all -o %F|%k|%j" ]] || exit 9\ncat "${dir}/out"\n`);
    chmodSync(squeue, 0o755);
    writeFileSync(path.join(dir, "ids"), recorded.map((i) => `${i}\n`).join(""));
    const script = renderSubmitScript({ runId: RUN, pipeline: "capture", layout: { runDir: "/tmp/x" }, jobs: [{ id: "j000", scriptPath: "scripts/j000.sbatch", dependencies: [] }] } as never);
    const from = script.indexOf("hp_find_job() {");
    const fn = script.slice(from, script.indexOf("\n}\n", from) + 3);
    return execFileSync("bash", ["-c", `HPCPIPE_RUN_ID=${RUN}; HP_IDS_FILE=${dir}/ids; HP_ERR_FILE=${dir}/err\n${fn}hp_find_job "$1" && printf '%s' "$REPLY"`, "find", planId], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ""}` },
    });
  }

  it("finds the job a failed sbatch queued anyway, and not one an earlier submit script recorded", () => {
    expect(lookup("j001", ["612"])).toBe("613");
    expect(lookup("j000", ["612"])).toBe("");
    expect(lookup("j002", [])).toBe("614");
  });
});
