import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BundleError, parseSubmitOutput, readLocalBundle, submissionFiles, SubmitFailedError, SubmitOutputError, submitRun } from "../../src/app/submit.js";
import type { CompiledPlan } from "../../src/plan/plan.js";
import { RunStore } from "../../src/runs/index.js";
import { submitterFile } from "../../src/app/reconcile.js";
import { concreteSteps } from "../../src/app/resume.js";
import { ConnectionLostError, HostKeyError } from "../../src/transport/index.js";
import { FakeTransport, LOCALCLUSTER, ok, REPO, stateJson } from "./fakes.js";
import { filteredCommand } from "../support/sacct-filter.js";

let dir: string;
let store: RunStore;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-submit-test-"));
  store = new RunStore(path.join(dir, "home"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const plan3 = { jobs: [{ id: "j000" }, { id: "j001" }, { id: "j002" }] } as unknown as CompiledPlan;

describe("parsing the submit script's output", () => {
  it("reads every hpcpipe-job line and ignores anything else (login banners, module messages)", () => {
    const out = "Welcome to the cluster\nhpcpipe-job j000 101\r\nhpcpipe-job j001 102\nhpcpipe-job j002 103\n";
    expect(parseSubmitOutput(out, plan3)).toEqual({ jobs: { j000: "101", j001: "102", j002: "103" }, problems: [] });
  });

  it("refuses lines naming unknown plan jobs, ids that are not numbers, and jobs or ids reported twice", () => {
    const out = [
      "hpcpipe-job j009 101",
      "hpcpipe-job j000 12;rm",
      "hpcpipe-job j000 $(id)",
      "hpcpipe-job j000 104",
      "hpcpipe-job j000 105",
      "hpcpipe-job j001 104",
      "hpcpipe-job j002",
    ].join("\n");
    const { jobs, problems } = parseSubmitOutput(out, plan3);
    expect(jobs).toEqual({ j000: "104" });
    expect(problems).toHaveLength(6);
    expect(problems.join("\n")).toMatch(/line 1 .*the plan has no job j009/);
    expect(problems.join("\n")).toMatch(/line 2 .*numeric SLURM job id/);
    expect(problems.join("\n")).toMatch(/line 5 .*already reported as SLURM job 104/);
    expect(problems.join("\n")).toMatch(/line 6 .*SLURM job 104 was already reported for job j000/);
  });
});

describe("the bundle", () => {
  it("reads the spec's bundle files and directories under work/, refusing paths outside the spec's directory", async () => {
    mkdirSync(path.join(dir, "models", "sub"), { recursive: true });
    writeFileSync(path.join(dir, "models", "a.glb"), "A");
    writeFileSync(path.join(dir, "models", "sub", "b.glb"), "B");
    writeFileSync(path.join(dir, "render.py"), "print(1)");
    const files = await readLocalBundle(dir, ["models", "render.py"]);
    expect([...files.keys()].sort()).toEqual(["work/models/a.glb", "work/models/sub/b.glb", "work/render.py"]);
    expect(files.get("work/models/sub/b.glb")?.toString()).toBe("B");
    await expect(readLocalBundle(dir, ["../etc"])).rejects.toThrow(BundleError);
    await expect(readLocalBundle(dir, ["missing.txt"])).rejects.toThrow(/does not exist/);
    symlinkSync(path.join(dir, "models"), path.join(dir, "linked"));
    await expect(readLocalBundle(dir, ["linked"])).rejects.toThrow(/symlink to a directory/);
  });

  it("uploads the plan's files and marks scripts executable", () => {
    const plan = { files: { "scripts/j000.sbatch": "x", "scripts/submit.sh": "y", "scripts/lib.sh": "z", "context.env0": "" }, jobs: [{ scriptPath: "scripts/j000.sbatch", script: "x" }] } as unknown as CompiledPlan;
    const { files, executable } = submissionFiles(plan, new Map([["work/m.glb", Buffer.from("m")]]));
    expect([...files.keys()].sort()).toEqual(["context.env0", "scripts/j000.sbatch", "scripts/lib.sh", "scripts/submit.sh", "work/m.glb"]);
    expect([...executable].sort()).toEqual(["scripts/j000.sbatch", "scripts/lib.sh", "scripts/submit.sh"]);
    expect(() => submissionFiles(plan, new Map([["context.env0", Buffer.from("")]]))).toThrow(/collides/);
  });
});

/** A fake cluster whose submit script reports every job of the plan. */
function submittingFake(jobCount: () => number, runIdSeen: (id: string) => void = () => undefined): FakeTransport {
  const fake = new FakeTransport();
  fake.handler = (argv) => {
    runIdSeen(argv[1] ?? "");
    return ok(Array.from({ length: jobCount() }, (_, i) => `hpcpipe-job j${String(i).padStart(3, "0")} ${500 + i}\n`).join(""));
  };
  return fake;
}

function chainSpec(n: number): string {
  const file = path.join(dir, `chain${n}.yaml`);
  const steps = Array.from({ length: n }, (_, i) => `  - step: s${i}\n    run: "true"\n    fuse: false\n`).join("");
  writeFileSync(file, `name: chain${n}\nsteps:\n${steps}`);
  return file;
}

describe("submitRun with a fake cluster", () => {
  it("writes the record and plan BEFORE connecting, uploads once, runs the submit script once (never retried), and records the job ids", async () => {
    let seenAtConnect: unknown = null;
    const fake = submittingFake(() => 3);
    const outcome = await submitRun({
      spec: path.join(REPO, "examples/specs/thumbnail-shape.yaml"),
      cluster: LOCALCLUSTER,
      store,
      runId: "r-submit",
      connect: async () => {
        seenAtConnect = { record: await store.readRecord("r-submit"), plan: (await store.readPlan("r-submit")).jobs.length };
        return fake;
      },
    });
    expect(seenAtConnect).toMatchObject({ record: { phase: "submitting", jobs: {} }, plan: 3 });
    expect(fake.puts).toHaveLength(1);
    expect(fake.puts[0]?.dir).toBe(outcome.plan.layout.runDir);
    expect([...(fake.puts[0]?.files.keys() ?? [])]).toEqual(expect.arrayContaining(["scripts/submit.sh", "scripts/j000.sbatch", "scripts/lib.sh", "context.env0"]));
    // The submit script (the step cache's query is a bash script too, retry-safe: it only reads).
    const submitCalls = fake.execs.filter((e) => e.argv[0] === "bash" && e.argv[3] !== "hpcpipe-cache-query");
    expect(submitCalls).toHaveLength(1);
    expect(submitCalls[0]?.argv).toEqual(["bash", `${outcome.plan.layout.runDir}/scripts/submit.sh`]);
    expect(submitCalls[0]?.opts.retrySafe).toBe(false);
    expect(outcome.roundTrips).toBe(2);
    expect(outcome.record).toMatchObject({ phase: "submitted", jobs: { j000: "500", j001: "501", j002: "502" }, error: null, cluster: "localcluster" });
    expect(await store.readRecord("r-submit")).toEqual(outcome.record);
    expect(fake.closed).toBe(true);
  });

  it("runs `then` over the still open connection once the submission is recorded, and closes it after `then`, also when `then` throws", async () => {
    for (const fails of [false, true]) {
      const fake = submittingFake(() => 3);
      const runId = `r-then-${String(fails)}`;
      const seen: unknown[] = [];
      const submitted = submitRun({ spec: path.join(REPO, "examples/specs/thumbnail-shape.yaml"), cluster: LOCALCLUSTER, store, runId, connect: async () => fake }, async (run) => {
        seen.push({ phase: run.record.phase, jobs: Object.keys(run.record.jobs).length, closed: fake.closed, same: run.transport === fake, submitter: existsSync(submitterFile(store, runId)) });
        if (fails) throw new Error("the watch failed");
        return "watched";
      });
      if (fails) await expect(submitted).rejects.toThrow("the watch failed");
      else expect((await submitted).then).toBe("watched");
      expect(seen).toEqual([{ phase: "submitted", jobs: 3, closed: false, same: true, submitter: false }]);
      expect(fake.closed).toBe(true);
      expect(existsSync(submitterFile(store, runId))).toBe(false);
    }
  });

  it("shows what the submit script says on stderr once: as it comes from a transport that streams it, else at the end", async () => {
    const said = "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying\nhpcpipe: sbatch: transient error (x); retry 1 of 5 in 2 s\n";
    for (const streams of [true, false]) {
      const fake = submittingFake(() => 3);
      const answer = fake.handler;
      fake.handler = (argv, opts) => {
        const r = answer(argv, opts);
        if (streams) for (const line of said.split("\n").filter((l) => l !== "")) opts.onStderrLine?.(line);
        return { ...r, stderr: said };
      };
      const lines: string[] = [];
      await submitRun({ spec: chainSpec(3), cluster: LOCALCLUSTER, store, connect: async () => fake, onProgress: (m) => lines.push(m) });
      expect(lines.filter((l) => l.startsWith("submit script: "))).toEqual([
        "submit script: sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
        "submit script: hpcpipe: sbatch: transient error (x); retry 1 of 5 in 2 s",
      ]);
    }
  });

  it("says when a submission has about as many tasks as the cluster's MaxJobCount, or more (sbatch would wait, then fail)", async () => {
    const small = path.join(dir, "small-maxjobcount.yaml");
    writeFileSync(small, `${readFileSync(LOCALCLUSTER, "utf8")}max_job_count: 3\n`);
    const four = path.join(dir, "four-maxjobcount.yaml");
    writeFileSync(four, `${readFileSync(LOCALCLUSTER, "utf8")}max_job_count: 4\n`);
    for (const [cluster, noted] of [[small, true], [LOCALCLUSTER, false], [four, false]] as const) {
      const lines: string[] = [];
      await submitRun({ spec: chainSpec(3), cluster, store, connect: async () => submittingFake(() => 3), onProgress: (m) => lines.push(m) });
      expect(lines.some((l) => /^note: 3 jobs and array tasks are close to or over the cluster's MaxJobCount \(max_job_count: 3 in the cluster config\)/.test(l))).toBe(noted);
    }
  });

  it("costs the same round trips for 3 jobs and for 30", async () => {
    const trips: number[] = [];
    for (const n of [3, 30]) {
      const outcome = await submitRun({ spec: chainSpec(n), cluster: LOCALCLUSTER, store, connect: async () => submittingFake(() => n) });
      expect(outcome.plan.jobs).toHaveLength(n);
      trips.push(outcome.roundTrips);
    }
    expect(trips[0]).toBe(trips[1]);
  });

  it("records a failed submission with the sbatch error and the jobs the script cancelled", async () => {
    const fake = new FakeTransport();
    fake.handler = () => ({
      code: 1,
      signal: null,
      stdout: "hpcpipe-job j000 700\n",
      stderr: "sbatch: error: Batch job submission failed: Invalid partition name specified\nhpcpipe: sbatch failed: ...\nhpcpipe: cancelling the 1 job(s) already submitted\n",
    });
    const attempt = submitRun({ spec: path.join(REPO, "examples/specs/thumbnail-shape.yaml"), cluster: LOCALCLUSTER, store, runId: "r-fail", connect: async () => fake });
    await expect(attempt).rejects.toThrow(SubmitFailedError);
    await expect(attempt).rejects.toThrow(/run r-fail: the submit script failed \(exit 1\): sbatch: error: .*Invalid partition.*cancelled the 1 job\(s\) it had submitted \(SLURM 700\)/s);
    const record = await store.readRecord("r-fail");
    expect(record).toMatchObject({ phase: "submit_failed", jobs: { j000: "700" } });
    expect(record.error).toContain("Invalid partition name specified");
  });

  it("refuses output it cannot trust, keeping the ids it did get so the run can be cancelled", async () => {
    const fake = new FakeTransport();
    fake.handler = () => ok("hpcpipe-job j000 800\nhpcpipe-job j001 oops\n");
    await expect(submitRun({ spec: path.join(REPO, "examples/specs/thumbnail-shape.yaml"), cluster: LOCALCLUSTER, store, runId: "r-bad", connect: async () => fake })).rejects.toThrow(SubmitOutputError);
    expect(await store.readRecord("r-bad")).toMatchObject({ phase: "submit_failed", jobs: { j000: "800" } });
  });

  it("a refused host key leaves a submit_failed record and touches nothing on the cluster", async () => {
    const error = new HostKeyError("unknown host key SHA256:abc", "127.0.0.1", 2222, "unknown", "SHA256:abc");
    await expect(
      submitRun({ spec: path.join(REPO, "examples/specs/thumbnail-shape.yaml"), cluster: LOCALCLUSTER, store, runId: "r-key", connect: async () => Promise.reject(error) }),
    ).rejects.toBe(error);
    const record = await store.readRecord("r-key");
    expect(record.phase).toBe("submit_failed");
    expect(record.error).toContain("SHA256:abc");
    expect(existsSync(path.join(store.runDir("r-key"), "plan.json"))).toBe(true);
  });

  it("a bundle file that clashes with a map's staged item file is refused before anything is written, and closes the connection started early", async () => {
    mkdirSync(path.join(dir, "models"), { recursive: true });
    mkdirSync(path.join(dir, "inputs", "m", "models"), { recursive: true });
    writeFileSync(path.join(dir, "models", "a.glb"), "item bytes");
    writeFileSync(path.join(dir, "inputs", "m", "models", "a.glb"), "other bytes");
    const spec = path.join(dir, "clash.yaml");
    writeFileSync(spec, `name: clash\nbundle: [inputs/]\nsteps:\n  - map: m\n    items_glob: "models/*.glb"\n    steps:\n      - step: s\n        run: "true"\n`);
    const fake = new FakeTransport();
    await expect(submitRun({ spec, cluster: LOCALCLUSTER, store, runId: "r-clash", connectEarly: true, connect: async () => fake })).rejects.toThrow(/would both be work\/inputs\/m\/models\/a\.glb/);
    await new Promise((resolve) => setImmediate(resolve));
    expect(fake.closed).toBe(true);
    expect(fake.execs).toEqual([]);
    expect((await store.list()).records).toEqual([]);
  });

  it("refuses a cluster config of the local executor before writing anything", async () => {
    await expect(submitRun({ spec: path.join(REPO, "examples/specs/thumbnail-shape.yaml"), cluster: "local", store, connect: async () => new FakeTransport() })).rejects.toThrow(/expected slurm to submit/);
    expect((await store.list()).records).toEqual([]);
  });
});

const THUMBNAIL = path.join(REPO, "examples/specs/thumbnail-shape.yaml");

/** A fake cluster whose submit script reports the jobs of the plan.json the run has now (ids from `first`). */
function planReportingFake(runId: string, first: number): FakeTransport {
  const fake = new FakeTransport();
  fake.handler = async (argv) => {
    if (argv[0] !== "bash") return { code: 127, signal: null, stdout: "", stderr: `fake: no handler for ${argv[0] ?? ""}` };
    const plan = await store.readPlan(runId);
    return ok(plan.jobs.map((j, i) => `hpcpipe-job ${j.id} ${first + i}\n`).join(""));
  };
  return fake;
}

describe("submitRun's other paths with a fake cluster", () => {
  it("a dropped connection under the submit script, with no job on the cluster, runs the script again once and records its jobs", async () => {
    const fake = planReportingFake("r-drop", 500);
    const reporting = fake.handler;
    let scriptRuns = 0;
    fake.handler = async (argv, opts) => {
      if (argv[0] === "ps") return ok("");
      if (argv[0] === "bash" && (scriptRuns += 1) === 1) throw new ConnectionLostError("connection dropped", "127.0.0.1", 2222, "exec");
      return reporting(argv, opts);
    };
    const messages: string[] = [];
    const outcome = await submitRun({ spec: THUMBNAIL, cluster: LOCALCLUSTER, store, runId: "r-drop", cache: false, connect: async () => fake, onProgress: (m) => messages.push(m) });
    expect(scriptRuns).toBe(2);
    expect(messages).toContain("nothing was submitted before the drop; running the submit script again");
    expect(outcome.record).toMatchObject({ phase: "submitted", jobs: { j000: "500", j001: "501", j002: "502" }, error: null });
    expect(fake.closed).toBe(true);
  });

  it("--resume submits again only what did not succeed, as attempt 2 with the first attempt in the record's history", async () => {
    const first = await submitRun({ spec: THUMBNAIL, cluster: LOCALCLUSTER, store, runId: "r-resume", cache: false, connect: async () => planReportingFake("r-resume", 500) });
    expect(first.record.jobs).toEqual({ j000: "500", j001: "501", j002: "502" });
    // Every job has ended: prep succeeded, the renders failed, gather never ran.
    const fake = planReportingFake("r-resume", 600);
    fake.sacct.set("500", ["500|500|COMPLETED|0:0|None"]);
    fake.sacct.set("501", [0, 1, 2, 3].map((t) => `501_${t}|51${t}|FAILED|1:0|None`));
    fake.sacct.set("502", ["502|502|CANCELLED|0:0|DependencyNeverSatisfied"]);
    const prep = "thumbnail_shape.prep";
    fake.files.set(`states/${prep}.json`, Buffer.from(stateJson(prep, { signature: concreteSteps(first.plan).get(prep) })));
    const messages: string[] = [];
    const outcome = await submitRun({ spec: THUMBNAIL, cluster: LOCALCLUSTER, store, resume: "r-resume", connect: async () => fake, onProgress: (m) => messages.push(m) });
    expect(messages).toContain(`run r-resume: 1 step(s) already succeeded; resubmitting ${outcome.plan.jobs.length} job(s)`);
    expect(outcome.plan.jobs.flatMap((j) => j.steps)).not.toContain(prep);
    expect(outcome.plan.jobs.length).toBeLessThan(first.plan.jobs.length);
    expect(outcome.record).toMatchObject({ phase: "submitted", attempt: 2, error: null, history: [{ attempt: 1, jobs: first.record.jobs, phase: "submitted" }] });
    expect(Object.values(outcome.record.jobs)).toEqual(outcome.plan.jobs.map((_, i) => String(600 + i)));
    // One submit script (sacct's cluster-side filter runs under bash too: not counted here).
    expect(fake.execs.filter((e) => e.argv[0] === "bash" && filteredCommand(e.argv) === null)).toHaveLength(1);
    expect(outcome.roundTrips).toBe(2);
    expect(await store.readRecord("r-resume")).toEqual(outcome.record);
    expect(fake.closed).toBe(true);
  });
});
