// The cluster workflow end to end on the project's own SLURM cluster over SSH (scripts/cluster/up.sh):
// submit (--wait), status, collect, cancel, logs and runs, through the in-process CLI with a private
// HPCPIPE_HOME and cluster configs written from the cluster's facts.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchEventSchema } from "../../src/app/progress-events.js";
import { cancelRun } from "../../src/app/cancel.js";
import { withRun } from "../../src/app/connect.js";
import { submitRun } from "../../src/app/submit.js";
import { remotePath } from "../../src/transport/index.js";
import { cli } from "../cli/helpers.js";
import { e2eSkipped, readRemote, REPO, runIdFrom, workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const THUMBNAIL = path.join(REPO, "examples/specs/thumbnail-shape.yaml");

interface StateJson {
  success: boolean;
  failure: string | null;
  error: string | null;
  meta: Record<string, unknown>;
  step_states: Record<string, { success: boolean; failure: string | null; error: string | null; meta: Record<string, unknown> }>;
}

interface StatusJson {
  final: boolean;
  jobs: Array<{ job: string; state: string; reason: string | null; final: boolean }>;
  steps: Record<string, { success: boolean }> | null;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(e2eSkipped)("the cluster workflow on the test cluster", { timeout: 120_000 }, () => {
  let env: WorkflowEnv;
  let cluster: string;

  beforeAll(() => {
    env = workflowEnv("workflow");
    cluster = env.config("testcluster");
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  /** Polls `status --json` (a fresh store each time) until the predicate holds. */
  async function statusUntil(runId: string, done: (s: StatusJson) => boolean, timeoutMs = 60_000): Promise<StatusJson> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = await cli("status", runId, "--json");
      expect(result.code, result.stderr).toBe(0);
      const status = JSON.parse(result.stdout) as StatusJson;
      if (done(status)) return status;
      if (Date.now() > deadline) throw new Error(`status of ${runId} never matched: ${result.stdout}`);
      await sleep(300);
    }
  }

  describe("a pipeline shaped like the thumbnail exercise", () => {
    let runId: string;

    it("submits with --wait, succeeds, and merges with the same step_states keys as `hpcpipe run`", async () => {
      const submitted = await cli("submit", THUMBNAIL, "--cluster", cluster, "--wait", "--json");
      expect(submitted.code, submitted.stderr).toBe(0);
      runId = runIdFrom(submitted.stderr);
      const state = JSON.parse(submitted.stdout) as StateJson;
      expect(state.success).toBe(true);
      const local = await cli("run", THUMBNAIL, "--runs-dir", path.join(env.dir, "local"), "--json", "-q");
      expect(local.code).toBe(0);
      const localState = JSON.parse(local.stdout) as StateJson;
      expect(Object.keys(state.step_states).sort()).toEqual(Object.keys(localState.step_states).sort());
      expect(Object.values(state.step_states).every((s) => s.success)).toBe(true);
      // The wrapper's facts arrived: SLURM ids and the host.
      expect(state.step_states["thumbnail_shape.renders.iso"]?.meta.slurm).toMatchObject({ task: 3 });
      const record = await env.record(runId);
      expect(record).toMatchObject({ phase: "collected", cluster: "testcluster" });
      expect(Object.keys(record.jobs)).toEqual(["j000", "j001", "j002"]);
      const result = JSON.parse(readFileSync(path.join(env.home, "runs", runId, "result.json"), "utf8")) as StateJson;
      expect(result.step_states).toEqual(state.step_states);
      // stdout is the result alone; stderr carries the watch's events (one JSON object per line, by the schema).
      const events = submitted.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => watchEventSchema.parse(JSON.parse(l)));
      expect(events[0]?.type).toBe("start");
      expect(events.at(-1)).toMatchObject({ type: "end", aborted: false, final: true, result: { success: true, exit_code: 0 }, failed_steps: [] });
      // One state event per state file the jobs wrote (prep, the four renders, metadata), each of this run's jobs.
      const states = events.filter((e) => e.type === "state");
      const files = ["metadata", "prep", "renders.front", "renders.iso", "renders.side", "renders.top"].map((k) => `thumbnail_shape.${k}`);
      expect(states.map((e) => (e.type === "state" ? e.step : "")).sort()).toEqual(files);
      expect(states.find((e) => e.type === "state" && e.step === "thumbnail_shape.renders.iso")).toMatchObject({ job: "j001", task: 3, status: "ok", outputs: ["out/views/iso.txt"] });
      const progress = events.filter((e) => e.type === "progress").at(-1);
      expect(progress?.type === "progress" ? progress.rows.map((r) => [r.label, r.final, r.counts.done]) : null).toEqual([
        ["thumbnail_shape.prep", true, 1],
        ["thumbnail_shape.renders [4 tasks]", true, 4],
        ["thumbnail_shape.metadata", true, 1],
      ]);
    });

    it("runs, status --json and collect work later from a fresh process (a new RunStore on the same HPCPIPE_HOME)", async () => {
      const runs = await cli("runs", "--json");
      expect(runs.code).toBe(0);
      const listed = (JSON.parse(runs.stdout) as Array<{ run_id: string; phase: string; jobs: number; pipeline: string }>).find((r) => r.run_id === runId);
      expect(listed).toMatchObject({ phase: "collected", jobs: 3, pipeline: "thumbnail_shape" });
      expect((await cli("runs")).stdout).toMatch(new RegExp(`${runId} +thumbnail_shape +testcluster +collected`));

      const status = await cli("status", runId, "--json");
      expect(status.code).toBe(0);
      const parsed = JSON.parse(status.stdout) as StatusJson;
      expect(parsed.final).toBe(true);
      expect(parsed.jobs.map((j) => j.state)).toEqual(["COMPLETED", "COMPLETED", "COMPLETED"]);
      expect(Object.values(parsed.steps ?? {}).every((s) => s.success)).toBe(true);
      const text = await cli("status", runId);
      expect(text.stdout).toMatch(/j001 +\d+ +thumbnail_shape\.renders \[4 tasks\] +0 +0 +4 +0 +COMPLETED/);

      const collected = await cli("collect", runId);
      expect(collected.code).toBe(0);
      expect(collected.stdout).toMatch(/result: ok, exit 0/);
    });
  });

  it("shows a step's log, and follows a running step's log until its job ends", async () => {
    const spec = env.spec(
      "ticker",
      ["name: ticker", "steps:", "  - step: tick", "    run: for i in 1 2 3 4; do echo \"tick $i\"; echo \"err $i\" >&2; sleep 1; done", ""].join("\n"),
    );
    const submitted = await cli("submit", spec, "--cluster", cluster);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stdout);
    const followed = await cli("logs", runId, "tick", "--follow");
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toBe("tick 1\ntick 2\ntick 3\ntick 4\n");
    expect(followed.stderr).toContain("ticker.tick: its job ended COMPLETED");
    const errors = await cli("logs", runId, "ticker.tick", "--stderr");
    expect(errors.stdout).toBe("err 1\nerr 2\nerr 3\nerr 4\n");
    expect((await cli("logs", runId, "tock")).code).toBe(65);
  });

  it("a failing step cancels its dependents (DependencyNeverSatisfied), and the merged state and exit code say so", async () => {
    const spec = env.spec(
      "failing",
      ["name: failing", "steps:", "  - step: a", "    run: exit 3", "    fuse: false", "  - step: b", "    run: echo never", "    fuse: false", "  - step: c", "    run: echo never", ""].join("\n"),
    );
    const submitted = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(submitted.code).toBe(4);
    const state = JSON.parse(submitted.stdout) as StateJson;
    expect(state.success).toBe(false);
    expect(state.step_states["failing.a"]).toMatchObject({ success: false, failure: "STEP_FAILED", error: "command exited with status 3" });
    for (const key of ["failing.b", "failing.c"]) {
      expect(state.step_states[key]?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied" });
    }
    const runId = runIdFrom(submitted.stderr);
    const status = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
    expect(status.jobs.map((j) => `${j.state}/${j.reason ?? ""}`)).toEqual(["FAILED/NonZeroExitCode", "CANCELLED/DependencyNeverSatisfied", "CANCELLED/DependencyNeverSatisfied"]);
    const text = await cli("status", runId);
    expect(text.stdout).toContain("CANCELLED (DependencyNeverSatisfied)");
  });

  it("continue_on_error lets the dependents run", async () => {
    const spec = env.spec(
      "tolerant",
      ["name: tolerant", "steps:", "  - step: a", "    run: exit 3", "    continue_on_error: true", "    fuse: false", "  - step: b", "    run: echo ran", ""].join("\n"),
    );
    const submitted = await cli("submit", spec, "--cluster", cluster, "--wait", "--json");
    expect(submitted.code, submitted.stderr).toBe(0);
    const state = JSON.parse(submitted.stdout) as StateJson;
    expect(state.success).toBe(true);
    expect(state.meta.failed_allowed).toEqual(["tolerant.a"]);
    expect(state.step_states["tolerant.a"]?.success).toBe(false);
    expect(state.step_states["tolerant.b"]?.success).toBe(true);
  });

  it("cancel mid-run leaves CANCELLED states for the running step and the ones after it", async () => {
    const spec = env.spec("slow", ["name: slow", "steps:", "  - step: sleeper", "    run: sleep 120", "    fuse: false", "  - step: after", "    run: echo never", ""].join("\n"));
    const submitted = await cli("submit", spec, "--cluster", cluster);
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stdout);
    await statusUntil(runId, (s) => s.jobs[0]?.state === "RUNNING");
    // The step's log exists once the wrapper (and its signal trap) is running the command.
    for (let i = 0; (await cli("logs", runId, "sleeper")).code !== 0; i++) {
      expect(i).toBeLessThan(100);
      await sleep(200);
    }
    const cancelled = await cli("cancel", runId);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`cancelled run ${runId}: scancel of 2 job\\(s\\)`));
    expect((await env.record(runId)).phase).toBe("cancelled");
    const watched = await cli("status", runId, "--watch");
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/j000 .*CANCELLED/);
    const collected = await cli("collect", runId, "--json");
    expect(collected.code).toBe(4);
    const state = JSON.parse(collected.stdout) as StateJson;
    const sleeper = state.step_states["slow.sleeper"];
    expect(sleeper?.success).toBe(false);
    // The wrapper's TERM trap wrote the state; the scheduler says it was a cancel.
    expect(sleeper?.meta).toMatchObject({ reason: "CANCELLED", slurm_state: "CANCELLED" });
    expect(sleeper?.error).toBe("killed by SIGTERM: the job ended CANCELLED");
    expect(state.step_states["slow.after"]?.meta).toMatchObject({ not_run: true, slurm_state: "CANCELLED" });
  });

  /** Sends Ctrl-C (to this process's own SIGINT listeners: the CLI's) once the run's record exists. */
  async function interruptWhenRecorded(before: Set<string>): Promise<void> {
    for (;;) {
      const { records } = await env.store().list();
      if (records.some((r) => !before.has(r.run_id))) break;
      await sleep(20);
    }
    process.emit("SIGINT");
  }

  it("Ctrl-C during submit --wait: the submission completes, then --on-interrupt cancel cancels every job; exit 130 and a consistent record", async () => {
    const spec = env.spec("interrupted", ["name: interrupted", "steps:", "  - step: sleeper", "    run: sleep 120", "    fuse: false", "  - step: after", "    run: echo never", ""].join("\n"));
    const before = new Set((await env.store().list()).records.map((r) => r.run_id));
    const [result] = await Promise.all([cli("submit", spec, "--cluster", cluster, "--wait", "--on-interrupt", "cancel"), interruptWhenRecorded(before)]);
    expect(result.code).toBe(130);
    expect(result.stderr).toContain("interrupted; cancelled run");
    const runId = runIdFrom(result.stderr);
    const record = await env.record(runId);
    expect(record.phase).toBe("cancelled");
    expect(Object.keys(record.jobs)).toEqual(["j000", "j001"]);
    const final = await statusUntil(runId, (s) => s.final);
    expect(final.jobs.every((j) => j.state === "CANCELLED")).toBe(true);
  });

  it("Ctrl-C during submit --wait off a terminal leaves the jobs running by default (exit 130)", async () => {
    const spec = env.spec("left", ["name: left", "steps:", "  - step: sleeper", "    run: sleep 120", ""].join("\n"));
    const before = new Set((await env.store().list()).records.map((r) => r.run_id));
    const [result] = await Promise.all([cli("submit", spec, "--cluster", cluster, "--wait"), interruptWhenRecorded(before)]);
    expect(result.code).toBe(130);
    const runId = runIdFrom(result.stderr);
    expect(result.stderr).toContain(`hpcpipe cancel ${runId}`);
    expect((await env.record(runId)).phase).toBe("submitted");
    const status = JSON.parse((await cli("status", runId, "--json")).stdout) as StatusJson;
    expect(status.final).toBe(false);
    expect((await cli("cancel", runId)).code).toBe(0);
  });

  it("hostile context values do nothing on the cluster and arrive as the exact bytes", async () => {
    const marker = `/tmp/hpcpipe-pwned-${randomBytes(6).toString("hex")}`;
    const hostile: Record<string, string> = {
      subst: `$(touch ${marker})`,
      backticks: `\`touch ${marker}\``,
      quotes: `it's "quoted" '$(touch ${marker})'`,
      newline: `first line\ntouch ${marker}\n`,
      semicolon: `x; touch ${marker}; echo`,
      unicode: "naïve → 模型 🧊",
      dollar: "$HOME ${PATH} $1 $$",
      glob: "* ?[a-z] ~",
      dashes: "--rm -rf /",
    };
    const keys = Object.keys(hostile);
    const spec = env.spec(
      "hostile",
      [
        "name: hostile",
        `context: ${JSON.stringify(hostile)}`,
        "steps:",
        "  - step: dump",
        `    run: ${JSON.stringify(["mkdir -p out/vals", ...keys.map((k) => `printf '%s' "$${k}" > out/vals/${k}.txt`), `printf '%s' "$via_set" > out/vals/via_set.txt`].join("\n"))}`,
        `    requires: ${JSON.stringify([...keys, "via_set"])}`,
        "",
      ].join("\n"),
    );
    const viaSet = `'; touch ${marker}; '$(touch ${marker})`;
    const submitted = await cli("submit", spec, "--cluster", cluster, "--set", `via_set=${viaSet}`, "--wait");
    expect(submitted.code, submitted.stdout + submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const remote = await env.remote();
    const record = await env.record(runId);
    for (const [key, value] of [...Object.entries(hostile), ["via_set", viaSet] as const]) {
      expect(await readRemote(remote, record.remote_dir, `work/out/vals/${key}.txt`)).toBe(value);
    }
    expect((await remote.exec(["test", "-e", marker])).code).toBe(1);
  });

  it("an unknown host key is refused with exit 69, its fingerprint and how to accept it; --accept-new-host-key records it", async () => {
    const knownHosts = path.join(env.dir, "empty_known_hosts");
    writeFileSync(knownHosts, "", { mode: 0o600 });
    const strict = env.config("newhost", { known_hosts: knownHosts });
    const spec = env.spec("tiny", ["name: tiny", "steps:", "  - step: only", "    run: echo hi", ""].join("\n"));
    const refused = await cli("submit", spec, "--cluster", strict);
    expect(refused.code).toBe(69);
    expect(refused.stderr).toContain(env.facts.hostKeyFingerprint);
    expect(refused.stderr).toContain("--accept-new-host-key");
    expect(readFileSync(knownHosts, "utf8")).toBe("");
    const accepted = await cli("submit", spec, "--cluster", strict, "--accept-new-host-key", "--wait");
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(readFileSync(knownHosts, "utf8")).toContain("ssh-ed25519");
  });

  it("a corrupt state file on the cluster yields a clear failure for that step and no crash", async () => {
    const spec = env.spec("twostep", ["name: twostep", "steps:", "  - step: a", "    run: echo a", "  - step: b", "    run: echo b", ""].join("\n"));
    const submitted = await cli("submit", spec, "--cluster", cluster, "--wait");
    expect(submitted.code, submitted.stderr).toBe(0);
    const runId = runIdFrom(submitted.stderr);
    const record = await env.record(runId);
    const remote = await env.remote();
    await remote.putFiles(record.remote_dir, new Map([["states/twostep.a.json", '{"success": true, "timest']]));
    const collected = await cli("collect", runId);
    expect(collected.code).toBe(4);
    expect(collected.stdout).toMatch(/twostep\.a +STEP_FAILED .*states\/twostep\.a\.json is unusable: not valid JSON/);
    expect(collected.stdout).toMatch(/twostep\.b +ok/);
    expect(collected.stderr).toContain("unusable state file twostep.a.json");
  });

  it("submitting a 3-job plan costs as many round trips as a 30-job plan", async () => {
    const chain = env.spec("chain30", ["name: chain30", "steps:", ...Array.from({ length: 30 }, (_, i) => `  - step: s${i}\n    run: "true"\n    fuse: false`), ""].join("\n"));
    const store = env.store();
    // Without the step cache: the thumbnail pipeline ran earlier in this file and would be restored, not submitted.
    const small = await submitRun({ spec: THUMBNAIL, cluster, store, cache: false });
    const large = await submitRun({ spec: chain, cluster, store, cache: false });
    expect(small.plan.jobs).toHaveLength(3);
    expect(large.plan.jobs).toHaveLength(30);
    expect(Object.keys(large.record.jobs)).toHaveLength(30);
    console.log(`round trips: 3-job plan ${small.roundTrips}, 30-job plan ${large.roundTrips}`);
    expect(small.roundTrips).toBe(2);
    expect(large.roundTrips).toBe(small.roundTrips);
    await withRun(large.record.run_id, { store }, (run) => cancelRun(run));
    const remote = await env.remote();
    // The remote run directory is private.
    const mode = await remote.exec(["stat", "-c", "%a", remotePath(large.record.remote_dir)]);
    expect(mode.stdout.trim()).toBe("700");
  });
});
