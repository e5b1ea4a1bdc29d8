// `hpcpipe report` of runs on the project's own SLURM cluster over SSH (scripts/cluster/up.sh),
// through the in-process CLI with a private HPCPIPE_HOME: host names and SLURM job ids from the
// state files, queue waits from ONE sacct, a PNG written on the cluster and fetched back, and a
// failed step's log tail — read in ONE round trip; a run never collected is collected first.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildReport } from "../../src/app/report.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";
import { demoSpec, solidPng } from "../report/helpers.js";

const PNG = solidPng(24, 24, [0, 200, 120]);
const HOSTILE = `<script>alert(1)</script>"><img src=x onerror=alert(1)>`;

const SPEC = demoSpec("report_e2e", PNG, HOSTILE);

interface ResultJson {
  step_states: Record<string, { meta: { host?: string; slurm?: { job_id: string; array_job_id?: string; array_task_id?: string } } }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The test cluster is shared with other test files: a job may wait behind theirs (up to 10 minutes). */
const QUEUE_MS = 600_000;

describe.skipIf(e2eSkipped)("hpcpipe report on the test cluster", { timeout: QUEUE_MS + 60_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;
  let spec: string;
  let runId: string;
  let page: string;

  beforeAll(async () => {
    env = workflowEnv("report");
    cluster = env.config("testcluster");
    spec = env.spec("report-e2e", SPEC);
    const submitted = await cli("submit", spec, "--cluster", cluster, "--wait");
    expect(submitted.code, submitted.stderr).toBe(4);
    runId = runIdFrom(submitted.stdout + submitted.stderr);
    const out = path.join(env.dir, "report.html");
    const made = await cli("report", runId, "--out", out);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toBe(`${out}\n`);
    page = readFileSync(out, "utf8");
  }, QUEUE_MS + 60_000);
  afterAll(async () => {
    // A run this file left waiting (a timeout) must not hold the shared cluster: cancel it first.
    const { records } = (await env?.store().list()) ?? { records: [] };
    for (const r of records) if (r.phase === "submitted" || r.phase === "submitting") await cli("cancel", r.run_id);
    await env?.cleanup();
  });

  it("names the hosts and the SLURM job ids every step ran under", async () => {
    const result = JSON.parse(readFileSync(path.join(env.home, "runs", runId, "result.json"), "utf8")) as ResultJson;
    const ran = ["draw", "checks.good", "checks.bad"].map((s) => result.step_states[`report_e2e.${s}`]);
    for (const s of ran) {
      expect(s?.meta.host).toBeTruthy();
      expect(page).toContain(`<span class="host">${s?.meta.host ?? ""}</span>`);
      const slurm = s?.meta.slurm;
      const id = slurm?.array_job_id !== undefined ? `${slurm.array_job_id}_${slurm.array_task_id ?? ""}` : slurm?.job_id;
      expect(page).toContain(`job ${id ?? "?"}`);
    }
    const record = await env.record(runId);
    for (const id of Object.values(record.jobs)) expect(page).toContain(id);
    expect(page).toContain(`<code>${runId}</code>`);
  });

  it("has queue waits from the scheduler (not approximate) on the timeline", () => {
    expect(page).not.toContain("Queue waits are approximate");
    expect(page).toContain("Queue waits come from the scheduler (sacct)");
    expect((page.match(/<div class="tl-row">/g) ?? []).length).toBe(3);
    // "0.52 s", "12.3 s", "2 min 03 s", "1 h 02 min": a busy shared cluster can make them long.
    const seconds = (text: string): number => {
      const m = /^(?:(\d+) h ?)?(?:(\d+) min ?)?(?:([\d.]+) s)?$/.exec(text.trim());
      if (m === null || text.trim() === "") throw new Error(`not a duration: ${JSON.stringify(text)}`);
      return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
    };
    const waits = [...page.matchAll(/<span class="tl-wait-s">([^<]*)(?:<small>|<\/span>)/g)].map((m) => m[1] ?? "").filter((t) => t !== "queue wait");
    expect(waits).toHaveLength(3);
    expect(waits.every((w) => w !== "–")).toBe(true);
    const waitSeconds = waits.map(seconds);
    // The group's tasks were submitted with the run and waited at least for `draw` to end.
    expect(Math.max(...waitSeconds)).toBeGreaterThan(0);
  });

  it("embeds the image the step wrote on the cluster, byte for byte", () => {
    expect(page).toContain(`<img src="data:image/png;base64,${PNG.toString("base64")}" alt="out/dot.png">`);
  });

  it("shows the failed step's error and the tail of its log, hostile text as text", () => {
    expect(page).toContain('<article class="error" data-key="report_e2e.checks.bad">');
    expect(page).toContain("command exited with status 3");
    expect(page).toContain("progress line 50");
    expect(page).toContain("progress line 11\n");
    expect(page).not.toContain("progress line 10\n");
    expect(page).toContain("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
    expect(page).not.toContain(HOSTILE);
    // The step that never ran is listed with the scheduler's reason.
    expect(page).toMatch(/data-key="report_e2e\.after">[\s\S]*?DependencyNeverSatisfied/);
  });

  it("a collected run costs two round trips: one sacct, one read of logs and images", async () => {
    const report = await buildReport({ run: runId });
    expect(report.collected).toBe(false);
    expect(report.roundTrips).toBe(2);
  });

  it("--offline contacts nothing and says what it could not show", async () => {
    const out = path.join(env.dir, "offline.html");
    const made = await cli("report", runId, "--offline", "--out", out);
    expect(made.code, made.stderr).toBe(0);
    const offline = readFileSync(out, "utf8");
    expect(offline).toContain("Queue waits are approximate");
    expect(offline).toContain("not fetched (--offline)");
    expect(offline).not.toContain("data:image/png");
  });

  it("a run submitted without --wait is collected first, then reported", async () => {
    const small = env.spec("report-small", "name: report_small\nsteps:\n  - step: one\n    run: echo one\n");
    const submitted = await cli("submit", small, "--cluster", cluster);
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = runIdFrom(submitted.stdout);
    const deadline = Date.now() + QUEUE_MS;
    for (;;) {
      const status = await cli("status", id, "--json");
      if ((JSON.parse(status.stdout) as { final: boolean }).final) break;
      if (Date.now() > deadline) throw new Error(`run ${id} did not finish: ${status.stdout}`);
      await sleep(500);
    }
    const made = await cli("report", id);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stderr).toContain("collected first");
    expect(made.stdout).toBe(`${path.join(env.home, "runs", id, "report.html")}\n`);
    expect(readFileSync(path.join(env.home, "runs", id, "report.html"), "utf8")).toContain("report_small");
    expect((await env.record(id)).phase).toBe("collected");
  });
});
