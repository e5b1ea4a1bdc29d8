// `buildReport` for cluster runs over a fake transport (the fake answers squeue and getFiles from
// tables; the report's read script is run by real bash on a local copy of the run directory) —
// round trips, collecting first, offline, no accounting — and how RUN is resolved.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildReport, runJobIds, writeReport } from "../../src/app/report.js";
import { RunStateError, UnknownRunError } from "../../src/runs/index.js";
import { FakeTransport, ok, squeueJob, squeueTask, stateJson, tempRun } from "../app/fakes.js";
import type { TempRun } from "../app/fakes.js";
import { solidPng } from "./helpers.js";

const THUMB = "thumbnail_shape";
const VIEWS = ["front", "side", "top", "iso"];
const SUBMIT = 1_767_225_600; // 2026-01-01T00:00:00Z in epoch seconds
let run: TempRun | undefined;
const dirs: string[] = [];
afterEach(() => {
  run?.cleanup();
  run = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake cluster on which every job of the thumbnail-shape run ended; `side` failed. */
function cluster(localRunDir: string, options: { accounting?: boolean } = {}): FakeTransport {
  const fake = new FakeTransport();
  fake.squeue.set("100", [squeueJob("100", "COMPLETED")]);
  fake.squeue.set("200", VIEWS.map((_, t) => squeueTask("200", t, t === 1 ? "FAILED" : "COMPLETED", t === 1 ? "NonZeroExitCode" : "None")));
  fake.squeue.set("300", [squeueJob("300", "CANCELLED", "DependencyNeverSatisfied")]);
  const at = (s: number): string => new Date((SUBMIT + s) * 1000).toISOString();
  fake.files.set(`states/${THUMB}.prep.json`, Buffer.from(stateJson(`${THUMB}.prep`, { timestamp: at(2), duration_s: 1, host: "node7", slurm: { job_id: "100", task: 0 }, outputs: { files: ["out/pic.png"] } })));
  VIEWS.forEach((v, t) => {
    const failedView = t === 1;
    fake.files.set(
      `states/${THUMB}.renders.${v}.json`,
      Buffer.from(
        stateJson(`${THUMB}.renders.${v}`, {
          timestamp: at(10 + t),
          duration_s: 2,
          host: "node8",
          slurm: { job_id: `20${t}${t}`, array_job_id: "200", array_task_id: String(t), task: t },
          ...(failedView ? { success: false, failure: "STEP_FAILED", error: "command exited with status 3", exit_code: 3 } : {}),
        }),
      ),
    );
  });
  fake.handler = (argv) => {
    if (argv[0] === "env" && argv.includes("sacct")) {
      if (options.accounting === false) return { code: 1, signal: null, stdout: "", stderr: "sacct: error: Slurm accounting storage is disabled\n" };
      const rows = [
        `100|100|COMPLETED|${SUBMIT}|${SUBMIT}|${SUBMIT + 2}|${SUBMIT + 3}|node7`,
        ...VIEWS.map((_, t) => `200_${t}|20${t}${t}|${t === 1 ? "FAILED" : "COMPLETED"}|${SUBMIT}|${SUBMIT + 3}|${SUBMIT + 10 + t}|${SUBMIT + 12 + t}|node8`),
        `300|300|CANCELLED|${SUBMIT}|Unknown|None|${SUBMIT + 14}|None assigned`,
      ];
      return ok(`${rows.join("\n")}\n`);
    }
    if (argv[0] === "bash") {
      // The report's read script, for real, on a local copy of the run directory.
      const args = argv.slice(1).map((a, i) => (i === 4 ? localRunDir : a));
      const r = spawnSync("bash", args, { encoding: "utf8" });
      return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    }
    return { code: 127, signal: null, stdout: "", stderr: `fake: no handler for ${argv[0] ?? ""}` };
  };
  return fake;
}

function localCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-report-app-"));
  dirs.push(dir);
  mkdirSync(path.join(dir, "logs"));
  mkdirSync(path.join(dir, "work", "out"), { recursive: true });
  writeFileSync(path.join(dir, "logs", `${THUMB}.renders.side.out`), "rendering side\n");
  writeFileSync(path.join(dir, "logs", `${THUMB}.renders.side.err`), "side: <b>no camera</b>\n");
  writeFileSync(path.join(dir, "work", "out", "pic.png"), solidPng(3, 3, [10, 200, 30]));
  return dir;
}

describe("a cluster run's report", () => {
  it("a run never collected is collected first, then costs ONE sacct and ONE read: hosts, job ids, waits, log tails, the image", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const fake = cluster(localCopy());
    const report = await buildReport({ run: run.record.run_id, store: run.store, connect: async () => fake, now: () => new Date("2026-01-02T00:00:00Z") });
    expect(report.collected).toBe(true);
    expect(fake.execs.map((e) => e.argv[0])).toEqual(["squeue", "env", "bash"]);
    expect(fake.gets.map((g) => g.pattern)).toEqual(["states/*.json*"]);
    expect(report.roundTrips).toBe(4);
    expect((await run.store.readRecord(run.record.run_id)).phase).toBe("collected");

    const m = report.model;
    expect(m).toMatchObject({ success: false, exitCode: 4, kind: "cluster", cluster: "localcluster" });
    const front = m.timeline.rows.find((r) => r.key === `${THUMB}.renders.front`);
    expect(front).toMatchObject({ host: "node8", slurmId: "200_0", wait_s: 10, dependency_s: 3 });
    expect(m.timeline.approximate).toBe(false);
    const side = m.errors.find((e) => e.key === `${THUMB}.renders.side`);
    expect(side?.logs.map((l) => l.lines)).toEqual([["rendering side"], ["side: <b>no camera</b>"]]);
    expect(m.errors.find((e) => e.key === `${THUMB}.metadata`)).toMatchObject({ notRun: true, logs: [] });
    expect(m.images).toMatchObject([{ path: "out/pic.png", mime: "image/png" }]);
    expect(report.html).toContain("side: &lt;b&gt;no camera&lt;/b&gt;");
    expect(report.html).toContain("job 200_1");
    // The read asked for the failed step's logs and the image, nothing else.
    const read = fake.execs.find((e) => e.argv[0] === "bash")?.argv ?? [];
    expect(read.slice(-6)).toEqual(["tail", `logs/${THUMB}.renders.side.out`, "tail", `logs/${THUMB}.renders.side.err`, "file", "work/out/pic.png"]);
    expect(report.defaultPath).toBe(path.join(run.store.runDir(run.record.run_id), "report.html"));
  });

  it("a collected run costs exactly two round trips (sacct and the read)", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const copy = localCopy();
    await buildReport({ run: run.record.run_id, store: run.store, connect: async () => cluster(copy) });
    const fake = cluster(copy);
    const report = await buildReport({ run: run.record.run_id, store: run.store, connect: async () => fake });
    expect(report.collected).toBe(false);
    expect(fake.execs.map((e) => e.argv[0])).toEqual(["env", "bash"]);
    expect(fake.gets).toHaveLength(0);
    expect(report.roundTrips).toBe(2);
  });

  it("without accounting the report is still made, with approximate waits and the reason", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const report = await buildReport({ run: run.record.run_id, store: run.store, connect: async () => cluster(localCopy(), { accounting: false }) });
    expect(report.model.timeline.approximate).toBe(true);
    expect(report.html).toContain("Queue waits are approximate");
    expect(report.html).toContain("accounting storage is disabled");
    // From the record's creation (2026-01-01T00:00:00Z) to the task's first step.
    expect(report.model.timeline.rows.find((r) => r.key === `${THUMB}.renders.top`)?.wait_s).toBe(12);
  });

  it("offline: a run never collected is refused with what to do; a collected one is reported without contacting anything", async () => {
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const never = async (): Promise<FakeTransport> => {
      throw new Error("offline must not connect");
    };
    const refused = buildReport({ run: run.record.run_id, store: run.store, connect: never, offline: true });
    await expect(refused).rejects.toBeInstanceOf(RunStateError);
    await expect(refused).rejects.toThrow(`run \`hpcpipe collect ${run.record.run_id}\` first`);

    await buildReport({ run: run.record.run_id, store: run.store, connect: async () => cluster(localCopy()) });
    const offline = await buildReport({ run: run.record.run_id, store: run.store, connect: never, offline: true });
    expect(offline.roundTrips).toBeNull();
    expect(offline.model.timeline.approximate).toBe(true);
    expect(offline.html).toContain("not fetched (--offline)");
    expect(offline.model.errors.every((e) => e.logs.length === 0)).toBe(true);
  });

  it("every job id of every attempt is asked about", () => {
    expect(
      runJobIds({
        format: 1, run_id: "r", pipeline: "p", spec: "s", cluster: "c", cluster_config: "c", remote_dir: "d", plan_signature: "x",
        created: "", updated: "", phase: "collected", jobs: { j000: "20", j001: "21" }, error: null, attempt: 2,
        history: [{ attempt: 1, jobs: { j000: "10", j001: "11" }, phase: "collected", updated: "" }],
      }),
    ).toEqual(["20", "21", "10", "11"]);
  });
});

describe("resolving RUN", () => {
  it("refuses what is neither a run directory nor a run id, and a directory without a result", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-report-resolve-"));
    dirs.push(dir);
    run = await tempRun("examples/specs/thumbnail-shape.yaml");
    const store = run.store;
    await expect(buildReport({ run: "no/such/dir", store })).rejects.toBeInstanceOf(UnknownRunError);
    await expect(buildReport({ run: "20990101-000000-ffffff", store, localRunsDir: dir })).rejects.toThrow(/no run "20990101-000000-ffffff"/);
    await expect(buildReport({ run: dir, store })).rejects.toThrow(/has no result\.json/);
  });

  it("writeReport writes atomically with mode 600", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-report-write-"));
    dirs.push(dir);
    const file = path.join(dir, "r.html");
    await writeReport(file, "<p>1</p>");
    await writeReport(file, "<p>2</p>");
    expect(readFileSync(file, "utf8")).toBe("<p>2</p>");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["r.html"]);
    await expect(writeReport(path.join(dir, "missing", "r.html"), "x")).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(["r.html"]);
  });
});
