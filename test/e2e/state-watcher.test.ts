// The state watcher (templates/watch-states.sh) on the test cluster, over the real sshd, watching
// state files that real SLURM jobs write: its scan alone (inotify off) and with inotifywait; a watch
// of a real run that learns its end from the events; and a killed client leaves no watcher behind.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withRun } from "../../src/app/connect.js";
import { slurmExecutor } from "../../src/app/slurm-executor.js";
import { submitRun } from "../../src/app/submit.js";
import { waitAndCollect } from "../../src/app/submit.js";
import { remotePath } from "../../src/transport/index.js";
import type { SshTransport } from "../../src/transport/index.js";
import type { WatchEvent } from "../../src/watch/events.js";
import { startRemoteWatcher, WATCHER_NAME } from "../../src/watch/remote-watcher.js";
import type { RemoteWatcherOptions } from "../../src/watch/remote-watcher.js";
import { buildCli } from "../support/build-cli.js";
import { e2eSkipped, REPO } from "../fixtures/workflow/support.js";
import { workflowEnv } from "../fixtures/workflow/support.js";
import type { WorkflowEnv } from "../fixtures/workflow/support.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` holds, polling every 100 ms; fails with `what` after `timeoutMs`. */
// A job may wait behind other sessions' jobs on the shared test cluster: waits are generous.
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(e2eSkipped)("the state watcher on the test cluster", { timeout: 300_000 }, () => {
  let env: WorkflowEnv;
  let remote: SshTransport;
  let buildDir: string;
  let main: string | undefined;

  beforeAll(async () => {
    env = workflowEnv("watcher");
    remote = await env.remote();
    const made = await remote.exec(["mkdir", "-p", "--", remotePath(env.workdir)]);
    expect(made.code, made.stderr).toBe(0);
  });
  afterAll(async () => {
    await env?.cleanup();
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  });

  /** A watcher on `<dir>/states` whose events are kept in order. */
  function watch(dir: string, options: RemoteWatcherOptions) {
    const events: WatchEvent[] = [];
    const bad: string[] = [];
    const watcher = startRemoteWatcher(remote, dir, { onEvent: (e) => events.push(e), onBad: (b) => bad.push(b) }, options);
    const states = (): string[] => events.flatMap((e) => (e.kind === "state" ? [e.name] : []));
    return { events, bad, watcher, states };
  }

  /** Submits a job that writes state files the way the job wrapper does (temp file, then mv) into `<dir>/states`. */
  async function writerJob(dir: string, names: string[], extra = ""): Promise<string> {
    const body = names.map((n) => `printf '{"key":"%s","n":%d}\\n' ${n} $RANDOM > states/.${n}.json.tmp.$$ && mv states/.${n}.json.tmp.$$ states/${n}.json && sleep 0.3`).join("; ");
    const result = await remote.exec(["sbatch", "--parsable", "--chdir", remotePath(dir), "--output", "/dev/null", "--time", "1:00", "--mem", "50M", "--wrap", `mkdir -p states; ${body}; ${extra}`]);
    expect(result.code, result.stderr).toBe(0);
    return result.stdout.trim();
  }

  it("with inotify off, its scan alone streams every state file a SLURM job writes, once each with its content, from a directory that did not exist yet", async () => {
    const dir = `${env.workdir}/scan`;
    expect((await remote.exec(["mkdir", "-p", "--", remotePath(dir)])).code).toBe(0);
    const w = watch(dir, { inotify: false, tickS: 0.2 });
    await until("the watcher's first scan", () => w.events.some((e) => e.kind === "ready"));
    await writerJob(dir, ["p.a", "p.b", "p.c"], "printf x > 'states/bad name.json'; printf 'a\\0b' > states/p.nul.json");
    await until("three state files", () => ["p.a.json", "p.b.json", "p.c.json", "p.nul.json"].every((n) => w.states().includes(n)));
    await sleep(800); // a few more scans: nothing is sent twice
    expect(w.events[0]).toMatchObject({ kind: "hello", protocol: 2 });
    // Every scan ends with its marker: the client applies a scan's files together.
    expect(w.events.filter((e) => e.kind === "scanned").length).toBeGreaterThanOrEqual(1);
    expect(w.events.filter((e) => e.kind === "mode")).toEqual([]); // never inotify
    expect(w.events.find((e) => e.kind === "ready")).toEqual({ kind: "ready", mode: "scan" });
    expect(w.states().sort()).toEqual(["p.a.json", "p.b.json", "p.c.json", "p.nul.json"]);
    const a = w.events.find((e) => e.kind === "state" && e.name === "p.a.json");
    expect(a?.kind === "state" ? JSON.parse(a.text ?? "null") : null).toMatchObject({ key: "p.a" });
    // A file that is not text (a NUL) is announced without content; the fetch at the end reads it.
    expect(w.events.find((e) => e.kind === "state" && e.name === "p.nul.json")).toMatchObject({ text: null });
    expect(w.bad).toEqual([]);
    await w.watcher.close();
    expect(await w.watcher.ended).toEqual({ reason: "closed" });
  });

  it("with inotifywait on the cluster, inotify wakes its scan, and a rewritten file is sent again", async (ctx) => {
    const has = await remote.exec(["bash", "-c", "command -v inotifywait"]);
    if (has.code !== 0) {
      process.stderr.write("[hpcpipe] state watcher: inotifywait is not installed on the test cluster (scripts/install-test-tools.sh installs it): the inotify test is skipped\n");
      ctx.skip();
    }
    const dir = `${env.workdir}/inotify`;
    expect((await remote.exec(["mkdir", "-p", "--", remotePath(`${dir}/states`)])).code).toBe(0);
    const w = watch(dir, { tickS: 0.5 });
    await until("the watcher's first scan", () => w.events.some((e) => e.kind === "ready"));
    expect(w.events.filter((e) => e.kind === "mode" || e.kind === "ready").map((e) => e.kind === "mode" || e.kind === "ready" ? e.mode : "")).toEqual(["inotify", "inotify"]);
    await writerJob(dir, ["q.a", "q.a"]);
    await until("q.a twice", () => w.states().filter((n) => n === "q.a.json").length === 2);
    await w.watcher.close();
    expect(await w.watcher.ended).toEqual({ reason: "closed" });
  });

  it("a watch of a real run learns its end from the events: the scheduler asked once, the state files never fetched", async () => {
    const cluster = env.config("testcluster");
    const outcome = await submitRun({ spec: path.join(REPO, "bench/submit/w1.yaml"), cluster, store: env.store() }, async (ctx) => {
      const gets: string[] = [];
      const transport = ctx.transport;
      const getFiles = transport.getFiles.bind(transport);
      transport.getFiles = (dir, pattern, opts) => {
        gets.push(pattern);
        return getFiles(dir, pattern, opts);
      };
      const waited = await waitAndCollect(slurmExecutor(ctx), { events: true });
      return { waited, gets };
    });
    const { waited, gets } = outcome.then ?? { waited: null, gets: [] };
    expect(waited?.watch.mode).toBe("events");
    expect(waited?.collect?.state.success).toBe(true);
    expect(waited?.watch.queries).toBe(1);
    expect(gets).toEqual([]);
    expect(Object.keys(waited?.collect?.state.step_states ?? {})).toHaveLength(7);
  });

  it("a killed client leaves no watcher behind: `status --watch` is SIGKILLed and its watcher (and inotifywait) exit", async () => {
    buildDir = mkdtempSync(path.join(tmpdir(), "hpcpipe-watcher-cli-"));
    main = await buildCli(buildDir);
    const cluster = env.config("testcluster");
    const spec = env.spec("long", 'name: long\nsteps:\n  - step: wait\n    run: sleep 120\n    resources: { time: "5:00", mem: 50M }\n');
    const runId = await submitRun({ spec, cluster, store: env.store() }).then((o) => o.record.run_id);
    try {
      const child = spawn(process.execPath, [main, "status", runId, "--watch"], { cwd: env.dir, env: { ...process.env, HPCPIPE_HOME: env.home, HPCPIPE_DEBUG: "1" }, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      await until("the watcher's first scan", () => /first scan done/.test(stderr), 60_000);
      const pid = /state watcher started \(protocol 2, pid (\d+)\)/.exec(stderr)?.[1];
      expect(pid).toMatch(/^\d+$/);
      const alive = async (): Promise<string> => (await remote.exec(["bash", "-c", 'ps -o pid=,args= -p "$1" --ppid "$1" || true', "ps", pid ?? ""])).stdout;
      expect(await alive()).toContain(WATCHER_NAME);
      child.kill("SIGKILL");
      await until("the watcher to exit after its client was killed", async () => (await alive()).trim() === "", 15_000);
      // Nothing of this run's left on the cluster: no process mentions its directory (this shell and its children aside).
      const left = await remote.exec(["bash", "-c", 'ps -u "$(id -u)" -o pid=,ppid=,args= | awk -v me="$$" -v id="$1" \'index($0, id) && $1 != me && $2 != me\'', "ps", runId]);
      expect(left.stdout).toBe("");
    } finally {
      await withRun(runId, { store: env.store() }, (ctx) => slurmExecutor(ctx).cancel()).catch(() => undefined);
    }
  }, 400_000);
});
