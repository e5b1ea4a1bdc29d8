// Fault injection on the project's own SLURM test cluster (scripts/cluster/up.sh), a few tries of
// each fault, printed as one table: fault, tries, outcome, states lost, executions outside the run
// dir (and plan jobs submitted twice / steps run twice). The faults come from the helpers the tests
// use (test/faults/): a TCP proxy in front of the real sshd that cuts the connection, and a shim
// sbatch first in the submit script's PATH (cluster config path_prepend). Then the hostile inputs of
// the security suite (test/security/hostile-values.ts), in the same table: every value of the table
// as a context value, a map item, an #SBATCH value, a name, a run id and a cluster config field, and
// hostile state files planted on the cluster; "tries" counts the values tried, "outcome" those that
// were refused before any connection or arrived byte for byte, "executions outside the run dir" the
// canaries a value created (here and on the cluster). Prints; never asserts.
// Run after a build: `node dist/bench/faults.js [--tries N] [--only TEXT]` (about 3.5 minutes with the default).
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { collectRun, queryJobStatuses } from "../src/app/collect.js";
import { connectCluster, withRun } from "../src/app/connect.js";
import type { TransportFactory } from "../src/app/connect.js";
import { concreteSteps } from "../src/app/resume.js";
import { watchRun } from "../src/app/status.js";
import { cancelRun } from "../src/app/cancel.js";
import { submitRun, waitAndCollect } from "../src/app/submit.js";
import { loadClusterConfig } from "../src/cluster/index.js";
import type { CompletedState } from "../src/core/completed-state.js";
import type { CompiledPlan } from "../src/plan/plan.js";
import { RunStore } from "../src/runs/index.js";
import { remotePath } from "../src/transport/index.js";
import type { SshTransport } from "../src/transport/index.js";
import { COUNTED_STEPS, countingSpec, executions, filesOutsideRunDirs, sleep, taggedJobs, until, writeFaultConfig } from "../test/faults/env.js";
import type { FaultFacts } from "../test/faults/env.js";
import { FaultProxy } from "../test/faults/proxy.js";
import { SbatchShim } from "../test/faults/sbatch-shim.js";
import { hostileValues, newCanary } from "../test/security/hostile-values.js";
import type { Canary, HostileValue } from "../test/security/hostile-values.js";

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench when built
const CLI = resolve(HERE, "..", "cli", "main.js");
const UP = resolve(HERE, "..", "..", "scripts", "cluster", "up.sh");
const FAST = { initialMs: 300, factor: 1.5, maxMs: 2_000, jitter: 0.1 };

interface TryResult {
  ok: boolean;
  /** Steps that ran but whose successful state did not come back. */
  lost: number;
  /** Plan jobs on the cluster more than once, plus step runs beyond one. */
  twice: number;
  runIds: string[];
  note?: string;
}

interface Row {
  fault: string;
  tries: number;
  ok: number;
  lost: number;
  outside: number;
  twice: number;
  seconds: number;
  notes: string[];
}

const { values } = parseArgs({ options: { tries: { type: "string", default: "2" }, only: { type: "string" }, "with-restart": { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
if (values.help) {
  process.stdout.write(
    "usage: node dist/bench/faults.js [--tries N] [--only TEXT] [--with-restart]\n" +
      "  --tries N    tries of each fault (default 2; the two cheapest drops get N+1)\n" +
      "  --only TEXT  only the faults whose description contains TEXT\n" +
      "  --with-restart  also stop slurmctld during a watched run and start it again with scripts/cluster/up.sh\n" +
      "                  (root; disturbs everyone using the test cluster for about 25 s)\n",
  );
  process.exit(0);
}
const TRIES = Math.max(1, Math.min(10, Number(values.tries) || 2));

/** The facts scripts/cluster/up.sh wrote (test/support/cluster.ts reads the same file for the tests). */
type Facts = FaultFacts & { slurmVersion: string; accounting: boolean; cpus: number };

function clusterFacts(): Facts {
  const file = join(process.env.HPCPIPE_TESTCLUSTER_DIR ?? "/var/lib/hpcpipe-testcluster", "connection.json");
  let facts: Facts;
  try {
    facts = JSON.parse(readFileSync(file, "utf8")) as Facts;
  } catch {
    process.stderr.write(`no test cluster facts in ${file}: run \`bash scripts/cluster/up.sh\` first (root on Debian)\n`);
    process.exit(2);
  }
  for (const key of ["host", "user", "identityFile", "knownHostsFile", "partition", "slurmVersion"] as const) {
    if (typeof facts[key] !== "string") throw new Error(`${file}: ${key} is not a string`);
  }
  if (!Number.isInteger(facts.port) || !Number.isInteger(facts.maxArraySize)) throw new Error(`${file}: port or maxArraySize is not an integer`);
  return facts;
}
const facts = clusterFacts();
const dir = mkdtempSync(join(tmpdir(), "hpcpipe-bench-faults-"));
const home = join(dir, "home");
process.env.HPCPIPE_HOME = home;
const store = new RunStore(home);
const workdir = `$HOME/hpcpipe-bench-faults-${randomBytes(4).toString("hex")}`;
const direct = writeFaultConfig(dir, "direct", facts, workdir);
const remote: SshTransport = await connectCluster(loadClusterConfig(direct));
const proxy = await FaultProxy.start({ host: facts.host, port: facts.port });
const shim = await SbatchShim.install(remote);
const viaProxy = writeFaultConfig(dir, "viaproxy", facts, workdir, { proxyPort: proxy.port, pathPrepend: [shim.bin] });
const withShim = writeFaultConfig(dir, "withshim", facts, workdir, { pathPrepend: [shim.bin] });
const allRunDirs: string[] = [];
let specCount = 0;

function spec(yaml: (name: string) => string, extra?: (file: string) => void): string {
  specCount += 1;
  const name = `bf${specCount}`;
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml(name));
  extra?.(file);
  return file;
}

/** What a finished run left: states lost (ran, but no successful state back) and plan jobs / step runs twice. */
async function audit(runId: string, expectSuccess: boolean): Promise<Omit<TryResult, "ok" | "runIds" | "note">> {
  const record = await store.readRecord(runId);
  allRunDirs.push(record.remote_dir);
  const tagged = await taggedJobs(remote, runId);
  let twice = [...tagged.values()].filter((ids) => ids.length > 1).length;
  const ran = await executions(remote, record.remote_dir, COUNTED_STEPS);
  twice += Object.values(ran).filter((n) => n > 1).length;
  let lost = 0;
  if (expectSuccess || Object.values(ran).some((n) => n > 0)) {
    const state = await withRun(runId, { store }, (run) => collectRun(run).then((c) => c.state));
    for (const [step, n] of Object.entries(ran)) {
      if (n === 0) continue;
      const key = Object.keys(state.step_states ?? {}).find((k) => k.endsWith(`.${step}`));
      if (key === undefined || state.step_states?.[key]?.success !== true) lost += 1;
    }
  }
  return { lost, twice };
}

/** Successful steps of a merged result against the plan's steps. */
function allStates(plan: CompiledPlan, state: CompletedState | null | undefined): boolean {
  if (!state) return false;
  return [...concreteSteps(plan).keys()].every((key) => state.step_states?.[key]?.success === true);
}

async function waitFinal(runId: string): Promise<void> {
  await withRun(runId, { store }, (run) => watchRun(run, { policy: FAST }));
}

/** Runs the built CLI as a child process; resolves with its exit. */
function hpcpipe(args: string[], onSpawn?: (kill: () => void) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, HPCPIPE_HOME: home }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (code, signal) => resolvePromise({ code, signal, stderr }));
    onSpawn?.(() => child.kill("SIGKILL"));
  });
}

async function resumeUntilDone(file: string, cluster: string, runId: string): Promise<number | null> {
  for (let i = 0; i < 60; i++) {
    const resumed = await hpcpipe(["submit", file, "--cluster", cluster, "--resume", runId, "--wait"]);
    if (resumed.code !== 64 || !/still has jobs waiting or running/.test(resumed.stderr)) return resumed.code;
    await sleep(1_000);
  }
  return null;
}

const scenarios: Array<{ fault: string; tries: number; run: () => Promise<TryResult> }> = [
  {
    fault: "SSH drop during the upload (after 700 kB of 2 MiB)",
    tries: TRIES + 1,
    run: async () => {
      const file = spec(
        (name) => countingSpec(name, { bundle: "blob/" }),
        (f) => {
          mkdirSync(join(dirname(f), "blob"), { recursive: true });
          writeFileSync(join(dirname(f), "blob", "data.bin"), randomBytes(2 * 1024 * 1024));
        },
      );
      await shim.configure({});
      const cut = proxy.cutAfter("up", 700_000);
      const out = await submitRun({ spec: file, cluster: viaProxy, store }, (run) => waitAndCollect(run, { policy: FAST }));
      await cut;
      return { ok: allStates(out.plan, out.then?.collect?.state), runIds: [out.record.run_id], ...(await audit(out.record.run_id, true)) };
    },
  },
  {
    fault: "SSH drop between the upload and the submit script",
    tries: TRIES + 1,
    run: async () => {
      const file = spec((name) => countingSpec(name));
      await shim.configure({});
      const out = await submitRun({ spec: file, cluster: viaProxy, store, onProgress: (m) => void (m.startsWith("submitting ") && proxy.cut()) }, (run) =>
        waitAndCollect(run, { policy: FAST }),
      );
      return { ok: allStates(out.plan, out.then?.collect?.state), runIds: [out.record.run_id], ...(await audit(out.record.run_id, true)) };
    },
  },
  {
    fault: "SSH drop inside the submit script (2nd sbatch); reconcile, resume",
    tries: TRIES,
    run: async () => {
      const file = spec((name) => countingSpec(name));
      await shim.configure({ delayAt: 2, delayS: 2 });
      const attempt = submitRun({ spec: file, cluster: viaProxy, store }).catch((e: unknown) => e as Error);
      await until("the slow sbatch", async () => ((await shim.delaying()) ? true : undefined), 60_000, 100);
      proxy.cut();
      const error = await attempt;
      const runId = error instanceof Error ? (/run (\S+):/.exec(error.message)?.[1] ?? "") : error.record.run_id;
      await shim.configure({});
      await waitFinal(runId);
      const resumed = await submitRun({ spec: file, cluster: viaProxy, store, resume: runId }, (run) => waitAndCollect(run, { policy: FAST }));
      const ok = allStates(resumed.plan, resumed.then?.collect?.state) && Object.keys(resumed.record.jobs).length === 1;
      return { ok, runIds: [runId], ...(await audit(runId, true)), note: `resume submitted ${Object.keys(resumed.record.jobs).join(",")}` };
    },
  },
  {
    fault: "SSH drop during status polling (twice)",
    tries: TRIES,
    run: async () => {
      const file = spec((name) => countingSpec(name, { sleepA: 3 }));
      await shim.configure({});
      let polls = 0;
      const out = await submitRun({ spec: file, cluster: viaProxy, store }, (run) =>
        watchRun(run, { policy: FAST, onUpdate: () => void (++polls === 2 || polls === 4 ? proxy.cut() : 0) }),
      );
      return { ok: out.then?.merged?.success === true && polls > 4, runIds: [out.record.run_id], ...(await audit(out.record.run_id, true)) };
    },
  },
  {
    fault: "SSH drop in the middle of collecting 24 state files",
    tries: TRIES,
    run: async () => {
      const items = Array.from({ length: 24 }, (_, i) => `i${i}`);
      const file = spec((name) =>
        [`name: ${name}`, "steps:", "  - map: each", `    items: ${JSON.stringify(items)}`, "    as: item", "    steps:", "      - step: work", '        run: echo "$item"', "        requires: [item]", ""].join("\n"),
      );
      await shim.configure({});
      const out = await submitRun({ spec: file, cluster: viaProxy, store }, (run) => watchRun(run, { policy: FAST }));
      const collected = await withRun(out.record.run_id, { store }, async (run) => {
        const jobs = await queryJobStatuses(run.scheduler, run.plan, run.record.jobs);
        const cut = proxy.cutAfter("down", 6_000);
        const c = await collectRun(run, { jobs });
        await cut;
        return c;
      });
      const record = await store.readRecord(out.record.run_id);
      allRunDirs.push(record.remote_dir);
      const lost = items.filter((_, i) => collected.state.step_states?.[`${out.plan.pipeline}.each.${i}.work`]?.success !== true).length;
      return { ok: lost === 0 && collected.problems.length === 0, lost, twice: 0, runIds: [out.record.run_id] };
    },
  },
  {
    fault: "CLI SIGKILLed inside the submit script; resume",
    tries: TRIES,
    run: async () => {
      const file = spec((name) => countingSpec(name));
      await shim.configure({ delayAt: 2, delayS: 2 });
      const before = new Set((await store.list()).records.map((r) => r.run_id));
      const killed = hpcpipe(["submit", file, "--cluster", withShim], (kill) => {
        void until("the slow sbatch", async () => ((await shim.delaying()) ? true : undefined), 60_000, 50).then(kill);
      });
      const ended = await killed;
      const runId = (await store.list()).records.find((r) => !before.has(r.run_id))?.run_id ?? "";
      await shim.configure({});
      const code = await resumeUntilDone(file, withShim, runId);
      const record = await store.readRecord(runId);
      return { ok: ended.signal === "SIGKILL" && code === 0 && record.phase === "collected", runIds: [runId], ...(await audit(runId, true)), note: `killed: ${ended.signal ?? ended.code}` };
    },
  },
  {
    fault: "sbatch: 2 transient errors, then accepted",
    tries: TRIES,
    run: async () => {
      const file = spec((name) => countingSpec(name));
      await shim.configure({ transientFirst: 2 });
      const out = await submitRun({ spec: file, cluster: withShim, store }, (run) => waitAndCollect(run, { policy: FAST }));
      const calls = (await shim.calls()).length;
      return { ok: allStates(out.plan, out.then?.collect?.state) && calls === 5, runIds: [out.record.run_id], ...(await audit(out.record.run_id, true)), note: `${calls} sbatch calls` };
    },
  },
  {
    fault: "sbatch refuses the 2nd job for good (Invalid partition)",
    tries: TRIES,
    run: async () => {
      const file = spec((name) => countingSpec(name, { sleepA: 60 }));
      await shim.configure({ failAt: 2 });
      const error = await submitRun({ spec: file, cluster: withShim, store }).then(
        () => null,
        (e: unknown) => e as Error & { runId?: string },
      );
      const runId = error?.runId ?? "";
      await waitFinal(runId);
      const status = await withRun(runId, { store }, (run) => queryJobStatuses(run.scheduler, run.plan, run.record.jobs));
      const ok = error !== null && /stopped at job j001/.test(error.message) && status.map((j) => j.state).join(",") === "CANCELLED,NOT_SUBMITTED,NOT_SUBMITTED";
      return { ok, runIds: [runId], ...(await audit(runId, false)) };
    },
  },
  {
    fault: "scancel of one running array task (outside hpcpipe)",
    tries: 1,
    run: async () => {
      const file = spec((name) =>
        [`name: ${name}`, "steps:", "  - group: g", "    parallel: true", "    steps:", "      - step: quick", "        run: echo ok", "      - step: slow", "        run: sleep 60", ""].join("\n"),
      );
      await shim.configure({});
      const out = await submitRun({ spec: file, cluster: withShim, store });
      const runId = out.record.run_id;
      await until(
        "the slow task's log",
        async () => ((await remote.exec(["test", "-e", remotePath(`${out.record.remote_dir}/logs/${out.plan.pipeline}.g.slow.out`)])).code === 0 ? true : undefined),
        60_000,
        200,
      ).catch(() => sleep(2_000));
      await sleep(500);
      await remote.exec(["scancel", `${out.record.jobs.j000}_1`]);
      await waitFinal(runId);
      const state = await withRun(runId, { store }, (run) => collectRun(run).then((c) => c.state));
      const slow = state.step_states?.[`${out.plan.pipeline}.g.slow`];
      allRunDirs.push(out.record.remote_dir);
      const ok = slow?.success === false && slow.meta.slurm_state === "CANCELLED" && state.step_states?.[`${out.plan.pipeline}.g.quick`]?.success === true;
      return { ok, lost: 0, twice: 0, runIds: [runId], note: slow?.error ?? "no state" };
    },
  },
];

/** Stops slurmctld by the pid up.sh recorded (SIGTERM, an admin's restart), waits until it is gone. */
async function stopSlurmctld(): Promise<void> {
  const [pidText = "", exe = ""] = readFileSync(join(process.env.HPCPIPE_TESTCLUSTER_DIR ?? "/var/lib/hpcpipe-testcluster", "pids", "slurmctld"), "utf8").trim().split(/\s+/);
  const pid = Number(pidText);
  if (realpathSync(`/proc/${pid}/exe`) !== exe) throw new Error(`pid ${pid} is not slurmctld`);
  process.kill(pid, "SIGTERM");
  await until("slurmctld to exit", async () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
}

if (values["with-restart"]) {
  scenarios.push({
    fault: "slurmctld stopped and started again during a watched run",
    tries: 1,
    run: async () => {
      const file = spec((name) => countingSpec(name, { sleepA: 8 }));
      await shim.configure({});
      const retries: string[] = [];
      let restart: Promise<unknown> | null = null;
      const out = await submitRun({ spec: file, cluster: withShim, store }, (run) =>
        watchRun(run, {
          policy: FAST,
          onUpdate: (status) => {
            if (restart !== null || status.jobs[0]?.state !== "RUNNING") return;
            restart = (async () => {
              await stopSlurmctld();
              await until("a poll to fail", async () => (retries.length > 0 ? true : undefined), 90_000, 200);
              const args = ["--quiet", "--port", String(facts.port), "--user", facts.user, "--max-array-size", String(facts.maxArraySize), "--accounting", facts.accounting ? "on" : "off", "--cpus", String(facts.cpus)];
              await promisify(execFile)("bash", [UP, ...args]);
            })();
          },
          onRetry: (error) => retries.push(error.message.split("\n")[0] ?? ""),
        }),
      );
      await restart;
      return { ok: out.then?.merged?.success === true && retries.length > 0, runIds: [out.record.run_id], ...(await audit(out.record.run_id, true)), note: `${retries.length} poll(s) failed and were retried` };
    },
  });
}

// ---- Hostile inputs (test/security/hostile-values.ts) ----------------------------------------------

interface InputResult {
  tries: number;
  /** Values refused before any connection, or accepted and arrived exactly (or, for state files, reported on their own step). */
  ok: number;
  lost: number;
  /** Canaries found: a value that was executed, here or on the cluster. */
  outside: number;
  note: string;
}

/** Never connects: counts the attempts. A value hpcpipe refuses must be refused before this is called. */
let connectAttempts = 0;
const noConnect: TransportFactory = async () => {
  connectAttempts += 1;
  throw new Error("bench: not connecting");
};

/** Whether `submit` refuses the spec (with these --set values) before it would connect, and the refusal's message length. */
async function refusedBeforeConnecting(file: string, cluster = direct, set?: Record<string, string>): Promise<{ refused: boolean; message: number }> {
  const before = connectAttempts;
  try {
    await submitRun({ spec: file, cluster, store, connect: noConnect, ...(set ? { set } : {}) });
  } catch (error) {
    return { refused: connectAttempts === before, message: (error as Error).message.length };
  }
  return { refused: false, message: 0 };
}

/** Canaries a hostile value left: here (the temp directory) and on the cluster (its /tmp and the user's home). */
async function canaryHits(c: Canary): Promise<number> {
  const there = await remote.exec(["sh", "-c", 'ls -d /tmp/"$1"* 2>/dev/null; find "$HOME" -name "$1*" 2>/dev/null; true', "sh", basename(c.path)]);
  return c.traces().length + there.stdout.split("\n").filter(Boolean).length;
}

/** A JSON spec file (JSON is YAML). */
function jsonSpec(doc: unknown, files: Record<string, string> = {}): string {
  return spec(() => JSON.stringify(doc, null, 1), (f) => {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dirname(f), name), text);
  });
}

/** Text files under `pattern` of a run directory on the cluster, in one transfer. */
async function remoteTexts(remoteDir: string, pattern: string): Promise<Map<string, string>> {
  const got = await remote.getFiles(remoteDir, pattern, { maxFileBytes: 2 * 1024 * 1024 });
  return new Map([...got].map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString("utf8") : `<${v.error}>`]));
}

/** Splits the values into refused-before-connecting and accepted, by what submit does with a spec of each. */
async function classify(values: HostileValue[], specOf: (h: HostileValue) => { file: string; set?: Record<string, string> }): Promise<{ refused: HostileValue[]; accepted: HostileValue[]; longest: number }> {
  const refused: HostileValue[] = [];
  const accepted: HostileValue[] = [];
  let longest = 0;
  for (const h of values) {
    const { file, set } = specOf(h);
    const r = await refusedBeforeConnecting(file, direct, set);
    (r.refused ? refused : accepted).push(h);
    longest = Math.max(longest, r.message);
  }
  return { refused, accepted, longest };
}

const oneStepSpec = (extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}): string => jsonSpec({ name: "hv", ...top, steps: [{ step: "s", run: "true", ...extra }] });

const inputScenarios: Array<{ input: string; run: () => Promise<InputResult> }> = [
  {
    input: "hostile context values (--set), run on the cluster",
    run: async () => {
      const canary = newCanary("hpcpipe-bench-canary");
      const values = hostileValues(canary.path);
      const { refused, accepted, longest } = await classify(values, (h) => ({ file: oneStepSpec({ requires: [`s_${h.id}`] }), set: { [`s_${h.id}`]: h.value } }));
      const keys = accepted.map((h) => `s_${h.id}`);
      const file = jsonSpec({ name: "hvctx", steps: [{ step: "dump", requires: keys, run: ['mkdir -p "$HPCPIPE_OUT_DIR/v"', ...keys.map((k) => `printf '%s' "$${k}" > "$HPCPIPE_OUT_DIR/v/${k}"`)].join("\n") }] });
      const out = await submitRun({ spec: file, cluster: direct, store, set: Object.fromEntries(accepted.map((h) => [`s_${h.id}`, h.value])) }, (run) => waitAndCollect(run, { policy: FAST }));
      allRunDirs.push(out.record.remote_dir);
      const got = await remoteTexts(out.record.remote_dir, "out/v/*");
      const exact = accepted.filter((h) => got.get(`out/v/s_${h.id}`) === h.value).length;
      const lost = out.then?.collect?.state.success === true ? 0 : 1;
      return { tries: values.length, ok: refused.length + exact, lost, outside: await canaryHits(canary), note: `${exact} byte-exact, refused: ${refused.map((h) => h.id).join(", ")} (longest error ${longest} chars)` };
    },
  },
  {
    input: "hostile map items (one task each, and packed), run on the cluster",
    run: async () => {
      const canary = newCanary("hpcpipe-bench-canary");
      const values = hostileValues(canary.path);
      const itemStep = { step: "s", run: "true" };
      const { refused, accepted, longest } = await classify(values, (h) => ({ file: jsonSpec({ name: "hv", steps: [{ map: "m", items: [h.value], steps: [itemStep] }] }) }));
      const items = accepted.map((h) => h.value);
      const dump = (d: string) => ({ step: "dump", requires: ["item"], run: `mkdir -p "$HPCPIPE_OUT_DIR/${d}" && printf '%s' "$item" > "$HPCPIPE_OUT_DIR/${d}/$HPCPIPE_TASK"` });
      const file = jsonSpec({ name: "hvitems", steps: [{ map: "each", items, as: "item", steps: [dump("i")] }, { map: "packed", items, as: "item", items_per_task: 4, steps: [dump("p")] }] });
      const out = await submitRun({ spec: file, cluster: direct, store }, (run) => waitAndCollect(run, { policy: FAST }));
      allRunDirs.push(out.record.remote_dir);
      const got = new Map([...(await remoteTexts(out.record.remote_dir, "out/i/*")), ...(await remoteTexts(out.record.remote_dir, "out/p/*"))]);
      const exact = accepted.filter((h, i) => got.get(`out/i/${i}`) === h.value && got.get(`out/p/${i}`) === h.value).length;
      const states = out.then?.collect?.state.step_states ?? {};
      const lost = items.flatMap((_, i) => [`hvitems.each.${i}.dump`, `hvitems.packed.${i}.dump`]).filter((k) => states[k]?.success !== true).length;
      return { tries: values.length, ok: refused.length + exact, lost, outside: await canaryHits(canary), note: `${exact} byte-exact in both maps, refused: ${refused.map((h) => h.id).join(", ")} (longest error ${longest} chars)` };
    },
  },
  {
    input: "hostile #SBATCH values (--mail-user), read back from the real sbatch",
    run: async () => {
      const canary = newCanary("hpcpipe-bench-canary");
      const values = hostileValues(canary.path);
      const mail = (v: string): string[] => ["--mail-type=FAIL", `--mail-user=${v}`];
      const { refused, accepted } = await classify(values, (h) => ({ file: oneStepSpec({ resources: { sbatch: mail(h.value) } }) }));
      // SLURM keeps its own default for an empty --mail-user: those are compared with the user name.
      const file = jsonSpec({ name: "hvmail", steps: accepted.map((h) => ({ step: `m_${h.id}`, run: "true", resources: { sbatch: mail(h.value) } })) });
      const out = await submitRun({ spec: file, cluster: direct, store });
      allRunDirs.push(out.record.remote_dir);
      let exact = 0;
      for (const job of out.plan.jobs) {
        const h = accepted.find((v) => job.steps[0] === `hvmail.m_${v.id}`);
        const shown = await remote.exec(["scontrol", "show", "job", out.record.jobs[job.id] ?? ""]);
        const stored = /^ {3}MailUser=(.*) MailType=FAIL$/m.exec(shown.stdout)?.[1];
        if (h && stored === (h.value === "" ? facts.user : h.value)) exact += 1;
      }
      await withRun(out.record.run_id, { store }, (run) => cancelRun(run));
      return { tries: values.length, ok: refused.length + exact, lost: 0, outside: await canaryHits(canary), note: `${exact} stored exactly by sbatch, refused: ${refused.map((h) => h.id).join(", ")}` };
    },
  },
  {
    input: "hostile step/pipeline names, run ids, cluster config fields",
    run: async () => {
      const canary = newCanary("hpcpipe-bench-canary");
      const values = hostileValues(canary.path);
      let tries = 0;
      let refusedCount = 0;
      const accepted: string[] = [];
      const count = (what: string, refused: boolean): void => {
        tries += 1;
        if (refused) refusedCount += 1;
        else accepted.push(what);
      };
      for (const h of values) {
        count(`step ${h.id}`, (await refusedBeforeConnecting(jsonSpec({ name: "hv", steps: [{ step: h.value, run: "true" }] }))).refused);
        count(`pipeline ${h.id}`, (await refusedBeforeConnecting(jsonSpec({ name: h.value, steps: [{ step: "s", run: "true" }] }))).refused);
        const before = connectAttempts;
        const byId = await withRun(h.value, { store, connect: noConnect }, async () => "opened").catch(() => "refused");
        count(`run id ${h.id}`, byId === "refused" && connectAttempts === before);
        for (const field of ["host", "user", "workdir", "name"]) {
          const text = readFileSync(direct, "utf8");
          const line = field === "host" || field === "user" ? new RegExp(`^  ${field}: .*$`, "m") : new RegExp(`^${field}: .*$`, "m");
          const config = join(dir, `hv-${field}-${h.id}.yaml`);
          writeFileSync(config, text.replace(line, `${field === "host" || field === "user" ? "  " : ""}${field}: ${JSON.stringify(h.value)}`));
          count(`${field} ${h.id}`, (await refusedBeforeConnecting(oneStepSpec(), config)).refused);
        }
      }
      return { tries, ok: refusedCount, lost: 0, outside: await canaryHits(canary), note: accepted.length > 0 ? `accepted: ${accepted.join(", ")}` : "" };
    },
  },
  {
    input: "hostile state files planted in states/ (9 kinds, 2 stray names)",
    run: async () => {
      const canary = newCanary("hpcpipe-bench-canary");
      const planted = ["corrupt", "truncated", "huge", "schema", "mismatch", "keylink", "passwd", "dangling", "fifo"];
      const file = jsonSpec({ name: "hvstates", steps: [...planted, "good", "other"].map((s) => ({ step: s, run: `echo ${s}` })) });
      const out = await submitRun({ spec: file, cluster: direct, store }, (run) => waitAndCollect(run, { policy: FAST }));
      allRunDirs.push(out.record.remote_dir);
      const stray = `$(touch ${basename(canary.path)}).json`;
      const plant = await remote.exec([
        "sh",
        "-c",
        [
          'cd -- "$1" || exit 1',
          "printf '{\"success\": tr' > hvstates.corrupt.json",
          "head -c 200 hvstates.good.json > hvstates.truncated.json",
          `{ printf '{"x":"'; head -c ${1024 * 1024 + 10} /dev/zero | tr '\\0' a; printf '"}'; } > hvstates.huge.json`,
          "printf '{\"key\":\"hvstates.schema\",\"success\":\"yes\"}' > hvstates.schema.json",
          "cp hvstates.other.json hvstates.mismatch.json",
          "rm -f hvstates.keylink.json hvstates.passwd.json hvstates.dangling.json hvstates.fifo.json",
          'ln -s "$HOME/.ssh/authorized_keys" hvstates.keylink.json',
          "ln -s /etc/passwd hvstates.passwd.json",
          'ln -s "$HOME/.ssh/id_ed25519" hvstates.dangling.json',
          "mkfifo hvstates.fifo.json",
          "cp hvstates.good.json 'hvstates..escape.json'",
          'cp hvstates.good.json "$2"',
        ].join("\n"),
        "sh",
        remotePath(`${out.record.remote_dir}/states`),
        stray,
      ]);
      if (plant.code !== 0) throw new Error(`planting failed: ${plant.stderr}`);
      const collected = await withRun(out.record.run_id, { store }, (run) => collectRun(run));
      const states = collected.state.step_states ?? {};
      const failedOwn = planted.filter((s) => states[`hvstates.${s}`]?.success === false && /is unusable: /.test(states[`hvstates.${s}`]?.error ?? "")).length;
      const strays = ((collected.state.meta.state_problems ?? []) as Array<{ file: string }>).map((p) => p.file);
      const strayOk = [stray, "hvstates..escape.json"].filter((f) => strays.includes(f)).length;
      const lost = ["good", "other"].filter((s) => states[`hvstates.${s}`]?.success !== true).length;
      return { tries: planted.length + 2, ok: failedOwn + strayOk, lost, outside: await canaryHits(canary), note: `${failedOwn}/${planted.length} failed their own step, ${strayOk}/2 stray names reported` };
    },
  },
];

/** Removes what the bench put on the cluster (also on Ctrl-C). */
async function cleanup(): Promise<void> {
  await proxy.close();
  await shim.remove().catch(() => undefined);
  await remote.exec(["rm", "-rf", "--", remotePath(workdir)]).catch(() => undefined);
  await remote.close();
  rmSync(dir, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench/faults: ${signal}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

const rows: Row[] = [];
/** Canaries each hostile-input row found (added to its "executions outside the run dir"). */
const inputCanaries = new Map<Row, number>();
const started = Date.now();
try {
  for (const scenario of scenarios.filter((s) => values.only === undefined || s.fault.includes(values.only))) {
    const row: Row = { fault: scenario.fault, tries: 0, ok: 0, lost: 0, outside: 0, twice: 0, seconds: 0, notes: [] };
    const t0 = Date.now();
    for (let i = 0; i < scenario.tries; i++) {
      row.tries += 1;
      try {
        const result = await scenario.run();
        if (result.ok) row.ok += 1;
        row.lost += result.lost;
        row.twice += result.twice;
        if (result.note && !row.notes.includes(result.note)) row.notes.push(result.note);
      } catch (error) {
        row.notes.push(`error: ${(error as Error).message.split("\n")[0]?.slice(0, 160) ?? ""}`);
      }
    }
    row.seconds = (Date.now() - t0) / 1000;
    rows.push(row);
    process.stderr.write(`bench/faults: ${row.fault}: ${row.ok}/${row.tries} ok (${row.seconds.toFixed(1)} s)\n`);
  }
  for (const scenario of inputScenarios.filter((s) => values.only === undefined || s.input.includes(values.only))) {
    const row: Row = { fault: scenario.input, tries: 0, ok: 0, lost: 0, outside: 0, twice: 0, seconds: 0, notes: [] };
    const t0 = Date.now();
    try {
      const result = await scenario.run();
      Object.assign(row, { tries: result.tries, ok: result.ok, lost: result.lost });
      inputCanaries.set(row, result.outside);
      if (result.note) row.notes.push(result.note);
    } catch (error) {
      row.notes.push(`error: ${(error as Error).message.split("\n")[0]?.slice(0, 160) ?? ""}`);
    }
    row.seconds = (Date.now() - t0) / 1000;
    rows.push(row);
    process.stderr.write(`bench/faults: ${row.fault}: ${row.ok}/${row.tries} as expected (${row.seconds.toFixed(1)} s)\n`);
  }
  // Anything a step, the submit script or hpcpipe wrote under the workdir outside the runs' own directories.
  const outside = await filesOutsideRunDirs(remote, workdir, allRunDirs);
  const perRow = outside.length;
  for (const row of rows) row.outside = perRow + (inputCanaries.get(row) ?? 0);
  if (outside.length > 0) process.stderr.write(`bench/faults: files outside the run directories: ${outside.slice(0, 10).join(", ")}\n`);
} finally {
  await cleanup();
}

const header = ["fault or input", "tries", "outcome", "states lost", "executions outside the run dir", "jobs/steps twice", "time"];
const table = rows.map((r) => [r.fault, String(r.tries), `${r.ok}/${r.tries} ${inputCanaries.has(r) ? "as expected" : "ok"}`, String(r.lost), String(r.outside), String(r.twice), `${r.seconds.toFixed(1)} s`]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] ?? "").length)));
const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
process.stdout.write(`${line(header)}\n| ${widths.map((w) => "-".repeat(w)).join(" | ")} |\n${table.map(line).join("\n")}\n`);
const notes = rows.filter((r) => r.notes.length > 0).map((r) => `- ${r.fault}: ${r.notes.join("; ")}`);
if (notes.length > 0) process.stdout.write(`\n${notes.join("\n")}\n`);
process.stdout.write(`\ntotal ${((Date.now() - started) / 1000).toFixed(0)} s on the test cluster (${facts.slurmVersion}), ${TRIES} tries per fault (+1 for the cheap ones)\n`);
