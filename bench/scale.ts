// bench:scale — what the CLI costs on this machine as a map grows from 1,000 to 1,000,000
// items (issue 16): `plan`, `submit --dry-run`, `collect` (merge), `report` and one
// `status` poll, each timed as a child process (wall time, user + system CPU, and peak
// resident memory from /usr/bin/time -v).
//
// The map is packed (100 items per task) with 2 trivial steps per item. One real local
// run of a small map (`hpcpipe run`) gives the states exactly as the wrapper
// (templates/lib.sh) writes them; every size's run is then made from those states, with
// the item, key, task and SLURM ids of each item. Items whose index ends in 00 (hex) fail
// step b (exit 3), as the real run's command makes them, about 0.4 % of the items.
// Layouts (issue 16): `pack` (the default) writes one pack file per task,
// `states/scale.each.items-<first>-<last>.jsonl`, its lines in the wrapper's order (per
// item its step lines, then its unit line; the step lines name their slot log in
// meta.log), and with --slot-logs the task's slot log pairs with a marker per step;
// `files` writes one item's three files (the item and its two steps) per item.
//
// `--per-task 1 --no-merge 1000000 --sizes 1000000` is the unpacked map of issue 16: a
// million array tasks (1,000 array jobs under the local config's MaxArraySize), whose
// running poll reads the job table (`local-jobs.json`, written here with the executor's
// own writer, src/local/job-table.ts) of a million tasks.
//
//   npm run bench:scale -- [--sizes 1000,10000,100000] [--no-merge 1000000] [--per-task 100] [--layout pack|files] [--slot-logs] [--keep]
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { preparePlan } from "../src/app/prepare.js";
import { itemsOfTask } from "../src/collect/job-index.js";
import { readStateDir } from "../src/collect/read-states.js";
import { newJobTable, readJobTable, tableJobIds, writeJobTable } from "../src/local/job-table.js";
import type { JobRow } from "../src/local/job-table.js";
import { identityOf } from "../src/local/process-identity.js";
import { arrayTaskIds, logicalTask } from "../src/plan/task-map.js";
import type { CompiledPlan } from "../src/plan/plan.js";
import { RunStore } from "../src/runs/index.js";
import type { RunRecord } from "../src/runs/index.js";
import { REPO } from "./lib/cluster.js";
import { int, mib, table } from "./lib/format.js";
import { checkInterrupt, runBench, syncCleanups } from "./lib/interrupt.js";
import { fails, itemOf, writeScaleSpec } from "./lib/scale-spec.js";

const USAGE =
  "usage: npm run bench:scale -- [--sizes 1000,10000,100000,1000000] [--no-merge SIZES] [--per-task 100] [--layout pack|files] [--slot-logs] [--keep]\n" +
  "  --layout: pack (one state file per packed task, the default) or files (one state file per item and step)\n" +
  "  --no-merge SIZES: at these sizes, only plan, dry-run and one poll of the running run (no state files, no collect, report or final status)";
const CLI = join(REPO, "dist", "cli", "main.js");
const SLURM_CONFIG = join(REPO, "cluster-configs", "localcluster.yaml");
const LOCAL_CONFIG = join(REPO, "cluster-configs", "local.yaml");
const TEMPLATE_ITEMS = 260;
/** Each path may take this long before it is stopped (and shown as killed). */
const PATH_TIMEOUT_MS = 15 * 60_000;

interface Measure {
  code: number | null;
  signal: string | null;
  wallS: number;
  cpuS: number;
  rssKb: number;
  stderr: string;
}

/** Runs `node dist/cli/main.js ARGS` under /usr/bin/time -v; wall, CPU (user + system) and peak RSS. */
function cli(args: string[], env: { home: string; cwd: string }): Promise<Measure> {
  const timeFile = join(env.cwd, `time-${process.hrtime.bigint()}.txt`);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-v", "-o", timeFile, process.execPath, CLI, ...args], {
      cwd: env.cwd,
      env: { ...process.env, HPCPIPE_HOME: env.home },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const stop = (): void => void child.kill("SIGTERM");
    syncCleanups.add(stop);
    const timer = setTimeout(stop, PATH_TIMEOUT_MS);
    const err: Buffer[] = [];
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      syncCleanups.delete(stop);
      const text = readFileSync(timeFile, "utf8");
      rmSync(timeFile, { force: true });
      const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
      const exit = /Command exited with non-zero status (\d+)/.exec(text);
      const killed = /Command terminated by signal (\d+)/.exec(text);
      resolve({
        code: exit ? Number(exit[1]) : killed ? null : code,
        signal: killed ? `signal ${killed[1]}` : signal,
        wallS: (performance.now() - t0) / 1000,
        cpuS: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
        rssKb: num(/Maximum resident set size \(kbytes\): (\d+)/),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}


/** The three state files of one item as the wrapper wrote them in a real run, parsed. */
interface Templates {
  ok: Record<string, Record<string, unknown>>;
  failed: Record<string, Record<string, unknown>>;
}

/** One real local run of a small map: the state files of an item that succeeded and of one that failed. */
async function captureTemplates(work: string, perTask: number): Promise<Templates> {
  const dir = join(work, "template");
  mkdirSync(dir, { recursive: true });
  const spec = writeScaleSpec(dir, TEMPLATE_ITEMS, perTask);
  const m = await cli(["run", spec, "--runs-dir", join(dir, "runs"), "-q"], { home: join(dir, "home"), cwd: dir });
  // continue_on_item_error: the map succeeds with its failed items listed (exit 0).
  if (m.code !== 0) throw new Error(`the template run should end with exit 0, got ${m.code ?? m.signal}: ${m.stderr.slice(-2000)}`);
  const runDir = join(dir, "runs", "scale", readdirSync(join(dir, "runs", "scale"))[0] as string);
  // Whichever layout the wrapper wrote (pack files or per-key files), read as the client reads it.
  const { states, problems } = await readStateDir(join(runDir, "states"));
  if (problems.length > 0) throw new Error(`the template run left unusable states: ${JSON.stringify(problems.slice(0, 3))}`);
  const read = (i: number): Record<string, Record<string, unknown>> => {
    const out: Record<string, Record<string, unknown>> = {};
    for (const suffix of ["", ".a", ".b"]) {
      const state = states.get(`scale.each.${i}${suffix}`);
      if (state === undefined) throw new Error(`the template run wrote no state of scale.each.${i}${suffix}`);
      out[suffix] = JSON.parse(JSON.stringify(state)) as Record<string, unknown>;
    }
    return out;
  };
  const t: Templates = { ok: read(1), failed: read(0) };
  if (t.failed[".b"]?.success !== false || t.ok[".b"]?.success !== true) throw new Error("the template run's item 0 should fail step b and item 1 succeed");
  return t;
}

/** The state file text of one item's step, from the template, as the wrapper writes it (one JSON line); `log`: its slot log (packed). */
function stateText(template: Record<string, unknown>, key: string, item: string, slurm: Record<string, unknown>, at: number, log: string | null = null): string {
  const { log: _templateLog, ...rest } = template.meta as Record<string, unknown>;
  const meta = { ...rest, item, ...(log !== null ? { log } : {}) };
  const timestamp = new Date(Date.parse("2026-12-07T00:00:00.000Z") + at).toISOString();
  return `${JSON.stringify({ ...template, timestamp, duration_s: 0.02 + (at % 97) / 1000, meta, key, slurm })}\n`;
}

interface SyntheticRun {
  runId: string;
  runDir: string;
}

/** How the synthetic run's states are laid out (see the head of this file). */
interface Layout {
  pack: boolean;
  slotLogs: boolean;
}

/** Slots of a packed task in the synthetic run (the wrapper's max(1, cpus / item cpus) on a 2-CPU task). */
const SLOTS = 2;

/** A finished local run of `n` items, written as `hpcpipe run` leaves it: record, plan, job table, state files. */
async function synthesizeRun(dir: string, home: string, spec: string, t: Templates, label: string, withStates: boolean, layout: Layout): Promise<{ run: SyntheticRun; plan: CompiledPlan; record: RunRecord }> {
  const runId = `20261207-000000-${label}`;
  const { plan, config } = preparePlan({ spec, cluster: LOCAL_CONFIG, runId, localRunsDir: join(dir, "runs") });
  const runDir = plan.layout.runDir;
  const statesDir = join(runDir, plan.layout.states);
  mkdirSync(statesDir, { recursive: true });
  const logsDir = join(runDir, plan.layout.logs);
  mkdirSync(logsDir, { recursive: true });
  let nextId = plan.jobs.length + 1;
  const table = newJobTable(plan, 1);
  table.finished = true;
  let at = 0;
  plan.jobs.forEach((job, j) => {
    const arrayId = String(j + 1);
    const tasks = (table.jobs[job.id] as JobRow).tasks;
    const completed = tasks.codeOf({ state: "COMPLETED", reason: null, exitCode: 0 });
    for (const taskId of arrayTaskIds(job)) {
      const task = logicalTask(job.array, taskId);
      const own = String(nextId++);
      tasks.codes[taskId] = completed;
      tasks.own[taskId] = Number(own);
      const slurm = { job_id: own, array_job_id: arrayId, array_task_id: String(taskId), task };
      const items = withStates ? itemsOfTask(plan, job, task) : [];
      if (layout.pack && items.length > 0) {
        // One pack file per task: per item its step lines, then its unit line (the wrapper's order).
        const base = `scale.each.items-${items[0] as number}-${items[items.length - 1] as number}`;
        let text = "";
        const logs = Array.from({ length: SLOTS }, () => ({ out: "", err: "" }));
        items.forEach((i, position) => {
          const item = itemOf(i);
          const tpl = fails(i) ? t.failed : t.ok;
          const slot = position % SLOTS;
          for (const suffix of [".a", ".b"]) {
            const key = `scale.each.${i}${suffix}`;
            text += stateText(tpl[suffix] as Record<string, unknown>, key, item, slurm, at++, `logs/${base}.s${slot}`);
            const log = logs[slot] as { out: string; err: string };
            log.out += `\n\x1ehpcpipe ${key}\n`;
            log.err += `\n\x1ehpcpipe ${key}\n${suffix === ".b" && fails(i) ? "failed with exit 3\n" : ""}`;
          }
          text += stateText(tpl[""] as Record<string, unknown>, `scale.each.${i}`, item, slurm, at++);
        });
        writeFileSync(join(statesDir, `${base}.jsonl`), text);
        if (layout.slotLogs) {
          logs.forEach((log, slot) => {
            writeFileSync(join(logsDir, `${base}.s${slot}.out`), log.out);
            writeFileSync(join(logsDir, `${base}.s${slot}.err`), log.err);
          });
        }
      }
      for (const i of layout.pack ? [] : items) {
        const item = itemOf(i);
        const tpl = fails(i) ? t.failed : t.ok;
        for (const suffix of ["", ".a", ".b"]) {
          const key = `scale.each.${i}${suffix}`;
          writeFileSync(join(statesDir, `${key}.json`), stateText(tpl[suffix] as Record<string, unknown>, key, item, slurm, at++));
        }
      }
    }
  });
  await writeJobTable(runDir, table);
  const store = new RunStore(home);
  const record: RunRecord = {
    format: 1,
    run_id: runId,
    pipeline: plan.pipeline,
    spec,
    cluster: config.name,
    cluster_config: LOCAL_CONFIG,
    remote_dir: runDir,
    plan_signature: plan.signature,
    created: "2026-12-07T00:00:00.000Z",
    updated: "2026-12-07T00:00:00.000Z",
    phase: "submitted",
    jobs: tableJobIds(table),
    error: null,
    resumes: null,
    attempt: 1,
    executor: "local",
    supervisor: null,
    local: { cpus: null },
  };
  await store.writePlan(plan);
  await store.writeRecord(record);
  return { run: { runId, runDir }, plan, record };
}

/** The same run while it is still running (half its tasks done, a few running), watched by a live supervisor stand-in. */
async function markRunning(home: string, run: SyntheticRun, record: RunRecord, supervisor: ChildProcess): Promise<void> {
  const table = await readJobTable(run.runDir);
  if (table === null) throw new Error(`${run.runDir} has no job table`);
  table.finished = false;
  for (const job of Object.values(table.jobs)) {
    const t = job.tasks;
    const running = t.codeOf({ state: "RUNNING", reason: null, exitCode: null });
    const pending = t.codeOf({ state: "PENDING", reason: null, exitCode: null });
    for (let i = 0; i < t.size; i++) {
      const where = i / t.size;
      if (where >= 0.5) t.codes[i] = where < 0.52 ? running : pending;
    }
  }
  await writeJobTable(run.runDir, table);
  const identity = identityOf(supervisor.pid ?? -1);
  if (identity === null) throw new Error("the supervisor stand-in is not running");
  await new RunStore(home).writeRecord({ ...record, supervisor: identity });
}

function cell(m: Measure | undefined): string {
  if (m === undefined) return "-";
  const how = m.code === 0 || m.code === 4 ? "" : m.signal !== null ? ` (${m.signal})` : ` (exit ${m.code})`;
  return `${m.wallS.toFixed(m.wallS < 10 ? 2 : 1)} s, ${m.cpuS.toFixed(m.cpuS < 10 ? 2 : 1)} s CPU, ${mib(m.rssKb)}${how}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string" },
      "no-merge": { type: "string" },
      "per-task": { type: "string" },
      layout: { type: "string", default: "pack" },
      "slot-logs": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return console.log(USAGE);
  if (values.layout !== "pack" && values.layout !== "files") throw new Error(`--layout is pack or files (got ${values.layout})\n${USAGE}`);
  const layout: Layout = { pack: values.layout === "pack", slotLogs: values["slot-logs"] };
  const sizes = (values.sizes ?? "1000,10000,100000,1000000").split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`--sizes wants whole numbers >= 1 (got ${s})\n${USAGE}`);
    return n;
  });
  const noMerge = new Set((values["no-merge"] ?? "").split(",").filter((s) => s.trim() !== "").map((s) => Number(s.trim())));
  const perTask = Number(values["per-task"] ?? 100);
  if (!Number.isInteger(perTask) || perTask < 1) throw new Error(`--per-task wants a whole number >= 1\n${USAGE}`);
  const work = mkdtempSync(join(tmpdir(), "hpcpipe-bench-scale-"));
  const cleanup = (): void => {
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  };
  syncCleanups.add(cleanup);
  const supervisor = spawn("sleep", ["86400"], { stdio: "ignore" });
  syncCleanups.add(() => supervisor.kill());
  try {
    console.log(
      `bench:scale in ${work}: ${perTask} items per task, 2 steps per item, ${layout.pack ? `one pack file per task${layout.slotLogs ? " and its slot logs" : ""}` : "one state file per item and step"}; ` +
        `capturing the wrapper's states from a real local run of ${TEMPLATE_ITEMS} items`,
    );
    const templates = await captureTemplates(work, perTask);
    const rows = new Map<string, Array<Measure | undefined>>();
    const put = (path: string, k: number, m: Measure | undefined): void => {
      if (m !== undefined && m.code !== 0 && m.code !== 4) console.log(`  ${path} at ${int(sizes[k] ?? 0)} items failed: ${m.stderr.trim().split("\n").slice(-3).join(" / ").slice(0, 600)}`);
      const row = rows.get(path) ?? sizes.map(() => undefined);
      row[k] = m;
      rows.set(path, row);
    };
    for (const [k, n] of sizes.entries()) {
      checkInterrupt();
      const dir = join(work, `n${n}`);
      mkdirSync(dir, { recursive: true });
      const home = join(dir, "home");
      const env = { home, cwd: dir };
      const spec = writeScaleSpec(dir, n, perTask);
      put("plan", k, await cli(["plan", spec, "--cluster", SLURM_CONFIG], env));
      put("submit --dry-run", k, await cli(["submit", spec, "--cluster", SLURM_CONFIG, "--dry-run", "--out", join(dir, "dry")], env));
      const t0 = performance.now();
      const merging = !noMerge.has(n);
      const { run, record } = await synthesizeRun(dir, home, spec, templates, `n${n}`.padEnd(6, "0").slice(0, 6), merging, layout);
      if (merging) {
        const written = layout.pack ? `${int(Math.ceil(n / perTask))} pack files (${int(3 * n)} states)` : `${int(3 * n)} state files`;
        console.log(`  ${int(n)} items: ${written} written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        put("collect (merge)", k, await cli(["collect", run.runId], env));
        // A local run's supervisor leaves the merged result in the run directory, where `report` reads it.
        const merged = join(home, "runs", run.runId, "result.json");
        if (existsSync(merged)) copyFileSync(merged, join(run.runDir, "result.json"));
        put("report --offline", k, await cli(["report", run.runId, "--offline", "--out", join(dir, "report.html")], env));
        put("status (finished: poll + merge)", k, await cli(["status", run.runId], env));
      }
      await markRunning(home, run, record, supervisor);
      put("status (running: one poll)", k, await cli(["status", run.runId], env));
      const done = [...rows].map(([p, ms]) => `${p}: ${cell(ms[k])}`).join("; ");
      console.log(`  ${int(n)} items: ${done}`);
      if (!values.keep) rmSync(dir, { recursive: true, force: true });
    }
    console.log("");
    table(["path", ...sizes.map((n) => `${int(n)} items`)], [...rows].map(([p, ms]) => [p, ...ms.map(cell)]));
    console.log("\n(wall time, user + system CPU, peak RSS of the CLI child process; /usr/bin/time -v)");
  } finally {
    supervisor.kill();
    cleanup();
  }
}

await runBench(main);
