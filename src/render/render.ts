import { RUN_ID_PATTERN } from "../plan/run-id.js";
import { taskMapArgument } from "../plan/task-map.js";
import { TRANSIENT_SLURM_ERRORS } from "../slurm/transient.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CompiledPlan, Dependency, PlanJob, PlanStep, TaskBody } from "../plan/plan.js";
import { contextKeyProblem } from "../spec/context-keys.js";
import { STEP_KEY_PATTERN } from "../plan/state-file.js";
import { defaultTemplatesDir, loadTemplates } from "./environment.js";
import type { Templates } from "./environment.js";
import { preview } from "../core/preview.js";
import { RenderValueError, startsWithVariable } from "./quote.js";

/** What the cluster config contributes to every job script. */
export interface ClusterRenderSettings {
  /** `module load` arguments, in order. */
  modules: string[];
  /** Shell lines run before the steps (trusted: they come from the cluster config). */
  setup: string[];
  /** Extra `#SBATCH` options, each `--name` or `--name=value`. */
  sbatch_options: string[];
  /** Seconds before the time limit at which the batch shell gets USR1 (`--signal=B:USR1@N`); 0 or null for none. */
  signal_grace_s: number | null;
  /** Defaults for jobs whose resources do not name them. */
  partition?: string | null;
  account?: string | null;
  qos?: string | null;
}

/** Plan-level facts a job script needs. */
export interface JobRenderContext {
  /** The run directory as the job sees it: absolute, or starting with `$VAR`/`${VAR}` expanded by the job's shell. */
  runDir: string;
  runId: string;
  pipeline: string;
  cluster: ClusterRenderSettings;
}

/** A body may also carry its unit's signature (not yet in TaskBody; the unit state's `signature` is "" without it). */
export interface RenderTaskBody extends TaskBody {
  unitSignature?: string;
}

export type RenderableJob = Omit<PlanJob, "script" | "bodies"> & { bodies: RenderTaskBody[] };

/** The submit script needs the run and, per job, its id, script and dependencies. */
export interface RenderablePlan {
  runId: string;
  pipeline: string;
  layout: Pick<CompiledPlan["layout"], "runDir">;
  jobs: (Pick<PlanJob, "id" | "scriptPath" | "dependencies"> & Partial<Pick<PlanJob, "retry">>)[];
}

export { RUN_ID_PATTERN } from "../plan/run-id.js";
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A path relative to the run directory: safe segments, no `..`. */
const RELATIVE_PATH = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;
/** Largest single environment string Linux passes to a process (MAX_ARG_STRLEN). */
const MAX_ENV_BYTES = 131_072 - 1;
/** Options the scripts set themselves; a config that sets them would break the contract. */
const RESERVED_SBATCH_OPTIONS = new Set([
  "--array", "--output", "--job-name", "--signal", "--dependency", "--kill-on-invalid-dep", "--comment", "--chdir", "--parsable", "--wrap",
]);

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function fail(message: string): never {
  throw new RenderValueError(message);
}

function checkStepKey(key: string, what: string, allowIndex: boolean): void {
  if (typeof key !== "string") fail(`${what} must be a string`);
  if (!allowIndex && key.includes("{i}")) fail(`${what} ${preview(key)} contains {i} outside a map job`);
  const concrete = key.replaceAll("{i}", "0");
  if (!STEP_KEY_PATTERN.test(concrete) || key.length > 1000) {
    fail(`${what} ${preview(key)} is not a safe step key (dot-joined names of letters, digits, '_' and '-')`);
  }
}

function checkContextKey(key: string, what: string): void {
  const problem = contextKeyProblem(key);
  if (problem !== null) fail(`${what}: ${problem}`);
}

function checkText(value: unknown, what: string): string {
  if (typeof value !== "string") fail(`${what} must be a string, got ${typeof value}`);
  if (value.includes("\0")) fail(`${what} contains a NUL byte`);
  return value;
}

function checkRunDir(runDir: string): void {
  checkText(runDir, "run directory");
  if (!runDir.startsWith("/") && !startsWithVariable(runDir)) {
    fail(`run directory ${preview(runDir)} must be absolute or start with $HOME/ or $SCRATCH/`);
  }
}

function checkRunId(runId: string): void {
  if (typeof runId !== "string" || !RUN_ID_PATTERN.test(runId)) fail(`run id ${preview(String(runId))} must match ${RUN_ID_PATTERN}`);
}

function checkInt(value: unknown, what: string, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) fail(`${what} must be an integer >= ${min}, got ${String(value)}`);
  return value;
}

/** `0-9`, `0-3,7,9-11`: SLURM's array index list. */
export function formatIndexList(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    const start = sorted[i] as number;
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1] === end + 1) {
      i++;
      end++;
    }
    parts.push(start === end ? String(start) : `${start}-${end}`);
    i++;
  }
  return parts.join(",");
}

function arraySpec(job: RenderableJob): string | null {
  const a = job.array;
  if (a === null) return null;
  const count = checkInt(a.count, "array.count", 1);
  checkInt(a.offset, "array.offset", 0);
  if (a.throttle !== null) checkInt(a.throttle, "array.throttle", 1);
  let n = count;
  if (a.indices !== null) {
    // A remapped rerun (src/plan/task-map.ts): ids 0..n-1, each running the logical task the prologue is given.
    if (!Array.isArray(a.indices) || a.indices.length === 0) fail("array.indices must be a non-empty list or null");
    if (new Set(a.indices).size !== a.indices.length) fail("array.indices must not repeat a task");
    for (const i of a.indices) {
      if (!Number.isInteger(i) || i < a.offset || i >= a.offset + count) fail(`array.indices: ${String(i)} is not a logical task of this array (${a.offset}..${a.offset + count - 1})`);
    }
    n = a.indices.length;
  }
  const list = n === 1 ? "0" : `0-${n - 1}`;
  return a.throttle === null ? list : `${list}%${a.throttle}`;
}

function sbatchOptions(job: RenderableJob, cluster: ClusterRenderSettings): string[] {
  const options = [...(cluster.sbatch_options ?? []), ...(job.resources.sbatch ?? [])];
  for (const o of options) {
    if (typeof o !== "string" || !/^--[a-z][a-z-]*(=.*)?$/.test(o)) fail(`extra sbatch option ${preview(String(o))} must look like --name or --name=value`);
    const name = o.split("=", 1)[0] ?? o;
    if (RESERVED_SBATCH_OPTIONS.has(name)) fail(`extra sbatch option ${name} is set by hpcpipe itself and cannot be overridden`);
  }
  return options;
}

function outputPath(runDir: string, isArray: boolean): string {
  const file = isArray ? "slurm-%A_%a.out" : "slurm-%j.out";
  // #SBATCH lines are read by sbatch, not a shell: a leading $VAR cannot be expanded there, so such
  // run directories use a path relative to the submit directory (the submit script cds into the run directory).
  if (startsWithVariable(runDir)) return `logs/${file}`;
  if (/[%\\]/.test(runDir) || CONTROL.test(runDir)) {
    fail(`#SBATCH output: the run directory ${preview(runDir)} must not contain '%', '\\', a newline or a control character`);
  }
  return `${runDir.replace(/\/+$/, "")}/logs/${file}`;
}

function stepView(step: PlanStep, allowIndex: boolean, inBatchMap: boolean) {
  const what = `step ${preview(step.key)}`;
  checkStepKey(step.key, "step key", allowIndex);
  checkText(step.command, `${what}: command`);
  if (step.command.trim() === "") fail(`${what}: command is empty`);
  if (typeof step.signature !== "string" || step.signature.length > 64) fail(`${what}: signature must be a string of at most 64 characters`);
  for (const k of step.requires) checkContextKey(k, `${what}: requires`);
  for (const k of step.provides) checkContextKey(k, `${what}: provides`);
  for (const o of step.outputs) {
    checkText(o, `${what}: output`);
    if (o === "") fail(`${what}: an output path is empty`);
  }
  for (const n of step.needs) {
    checkContextKey(n.key, `${what}: needs`);
    if (n.from !== "context") checkStepKey(n.from, `${what}: source of '${n.key}'`, allowIndex);
  }
  const env = Object.entries(step.env).map(([name, value]) => {
    checkContextKey(name, `${what}: env`);
    checkText(value, `${what}: env ${name}`);
    if (Buffer.byteLength(name) + 1 + Buffer.byteLength(value) > MAX_ENV_BYTES) {
      fail(`${what}: env ${name} is longer than the ${MAX_ENV_BYTES + 1} bytes one environment variable may hold`);
    }
    return { name, value };
  });
  return {
    key: step.key,
    signature: step.signature,
    command: step.command,
    requires: [...step.requires],
    provides: [...step.provides],
    outputs: [...step.outputs],
    needs: step.needs.map((n) => ({ key: n.key, from: n.from })),
    env,
    continueOnError: step.continue_on_error ? 1 : 0,
    idempotent: step.idempotent ? 1 : 0,
    batch: step.batch === true ? 1 : 0,
    inBatchMap: inBatchMap ? 1 : 0,
  };
}

/** The data the sbatch template sees (documented in templates/README.md). */
export function jobView(job: RenderableJob, ctx: JobRenderContext) {
  if (typeof job.id !== "string" || !JOB_ID_PATTERN.test(job.id)) fail(`job id ${preview(String(job.id))} must match ${JOB_ID_PATTERN}`);
  checkRunDir(ctx.runDir);
  checkRunId(ctx.runId);
  const isMap = job.shape === "map";
  const isGroup = job.shape === "group";
  if (job.shape !== "single" && !isMap && !isGroup) fail(`unknown job shape ${preview(String(job.shape))}`);
  if (!Array.isArray(job.bodies) || job.bodies.length === 0) fail("a job needs at least one body");
  if (job.shape === "single" && job.array !== null) fail("a single job has no array");
  if (job.shape !== "single" && job.array === null) fail(`a ${job.shape} job needs an array`);
  // A group job carries either every body of the logical array (body i runs logical task i; the script
  // gets the arms of its chunk) or only its chunk's bodies (body i runs logical task offset + i).
  const count = job.array?.count ?? 1;
  const total = job.array?.total ?? count;
  // A packed group carries every child's body; task t runs children [t*n, (t+1)*n).
  let groupPack: { count: number; itemsPerTask: number; itemCpus: number } | null = null;
  if (isGroup && job.groupPack !== undefined && checkInt(job.groupPack.itemsPerTask, "groupPack.itemsPerTask", 1) > 1) {
    const n = job.groupPack.itemsPerTask;
    if (Math.ceil(job.bodies.length / n) !== total) {
      fail(`a packed group job of ${total} task(s) with ${n} children per task needs ${(total - 1) * n + 1}-${total * n} bodies, got ${job.bodies.length}`);
    }
    groupPack = { count: job.bodies.length, itemsPerTask: n, itemCpus: checkInt(job.groupPack.itemCpus, "groupPack.itemCpus", 1) };
  }
  const allBodies = isGroup && (groupPack !== null || job.bodies.length === total);
  if (isGroup && !allBodies && job.bodies.length !== count) {
    fail(`a group job has one body per logical task (${total}) or per task of its chunk (${count}), got ${job.bodies.length}`);
  }
  if (isMap && job.bodies.length !== 1) fail(`a map job has one body (run for every item), got ${job.bodies.length}`);
  if (isMap && job.map === undefined) fail("a map job needs its map (items file and item key)");
  if (typeof job.scriptPath !== "string" || !RELATIVE_PATH.test(job.scriptPath)) {
    fail(`script path ${preview(String(job.scriptPath))} must be a relative path inside the run directory`);
  }

  const offset = job.array?.offset ?? 0;
  const map = isMap && job.map !== undefined ? job.map : null;
  let pack: { itemsPerTask: number; itemCpus: number } | null = null;
  if (map !== null) {
    if (!RELATIVE_PATH.test(map.itemsFile)) fail(`items file ${preview(map.itemsFile)} must be a relative path inside the run directory`);
    checkContextKey(map.itemKey, "map item key");
    checkStepKey(map.key, "map key", false);
    if (map.itemsPerTask !== undefined && checkInt(map.itemsPerTask, "map.itemsPerTask", 1) > 1) {
      pack = { itemsPerTask: map.itemsPerTask, itemCpus: checkInt(map.itemCpus ?? 1, "map.itemCpus", 1) };
    }
  }
  // A map with a batch step runs each step across all the items of its task (hp_batch_map).
  const isBatch = isMap && job.bodies.some((b) => b.steps.some((s) => s.batch === true));
  if (!isMap && job.bodies.some((b) => b.steps.some((s) => s.batch === true))) fail("a batch step can only run inside a map job");
  const tasks = job.bodies.map((body, i) => ({ body, task: allBodies ? i : offset + i }));
  // The arms this chunk's tasks run: logical tasks [offset, offset + count), or their children when packed.
  const per = groupPack?.itemsPerTask ?? 1;
  const runs = new Set(job.array?.indices ?? []);
  const inArray = (logical: number): boolean => (job.array?.indices ? runs.has(logical) : logical >= offset && logical < offset + count);
  // A map's one body runs every task; a group's bodies are arms by logical task: only the tasks this array runs.
  const inChunk = isGroup ? tasks.filter((t) => inArray(allBodies ? Math.floor(t.task / per) : t.task)) : tasks;
  const bodies = inChunk.map(({ body, task }) => {
    let unit = null;
    if (body.unitKey !== null) {
      checkStepKey(body.unitKey, "unit key", isMap);
      const signature = body.unitSignature ?? "";
      if (typeof signature !== "string" || signature.length > 64) fail(`unit ${preview(body.unitKey)}: signature must be at most 64 characters`);
      const allow = (map?.continueOnItemError ?? false) || body.continue_on_error === true;
      unit = { key: body.unitKey, signature, allowFailure: allow ? 1 : 0 };
    }
    return { task, unit, steps: body.steps.map((s) => stepView(s, isMap, isBatch)) };
  });

  const cluster = ctx.cluster;
  for (const m of cluster.modules ?? []) checkText(m, "module");
  for (const s of cluster.setup ?? []) checkText(s, "setup line");
  const grace = cluster.signal_grace_s ?? 0;
  checkInt(grace, "signal_grace_s", 0);
  const r = job.resources;
  return {
    job: {
      id: job.id,
      name: job.name,
      shape: job.shape,
      isSingle: job.shape === "single",
      isGroup,
      isMap,
      isPacked: pack !== null || groupPack !== null,
      isBatch,
      /** Items per task of a map with batch steps (1 when not packed). */
      batchItemsPerTask: pack?.itemsPerTask ?? 1,
      isArray: job.array === null ? 0 : 1,
      offset,
      taskMap: taskMapArgument(job.array),
    },
    runDir: ctx.runDir,
    runId: ctx.runId,
    pipeline: ctx.pipeline,
    header: {
      output: outputPath(ctx.runDir, job.array !== null),
      partition: r.partition ?? cluster.partition ?? null,
      account: r.account ?? cluster.account ?? null,
      qos: r.qos ?? cluster.qos ?? null,
      cpus: r.cpus ?? null,
      mem: r.mem ?? null,
      time: r.time ?? null,
      gpus: r.gpus ?? null,
      gres: r.gres ?? null,
      constraint: r.constraint ?? null,
      array: arraySpec(job),
      signal: grace > 0 ? `B:USR1@${grace}` : null,
      options: sbatchOptions(job, cluster),
    },
    modules: [...(cluster.modules ?? [])],
    setup: [...(cluster.setup ?? [])],
    map: map === null ? null : { key: map.key, itemsFile: map.itemsFile, itemKey: map.itemKey, ...(pack ?? {}) },
    group: groupPack,
    bodies,
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const RETRY_ON = /^(ALL|[A-Z_0-9]{1,16}(,[A-Z_0-9]{1,16}){0,300})$/;
const TASK_LIST = /^(\d{1,9}(,\d{1,9})*)?$/;

/** The data the retry controller template sees (templates/retry.hbs; documented in templates/README.md). */
export function retryView(job: RenderableJob, ctx: JobRenderContext) {
  const r = job.retry;
  if (r === undefined) fail("not a retry controller");
  if (typeof job.id !== "string" || !JOB_ID_PATTERN.test(job.id)) fail(`job id ${preview(String(job.id))} must match ${JOB_ID_PATTERN}`);
  if (!JOB_ID_PATTERN.test(r.of)) fail(`retry.of ${preview(r.of)} must match ${JOB_ID_PATTERN}`);
  checkRunDir(ctx.runDir);
  checkRunId(ctx.runId);
  if (job.array !== null || job.bodies.length > 0) fail("a retry controller is a plain job without steps");
  for (const path of [job.scriptPath, r.script]) if (typeof path !== "string" || !RELATIVE_PATH.test(path)) fail(`script path ${preview(String(path))} must be a relative path inside the run directory`);
  if (!RETRY_ON.test(r.on)) fail(`retry_on ${preview(r.on)} must be ALL or exit codes and reason names`);
  if (!TASK_LIST.test(r.taskMap)) fail(`task map ${preview(r.taskMap)} must be a list of task numbers`);
  checkText(r.name, "retried job name");
  checkText(r.partition, "partition");
  for (const k of ["retries", "timeFactorPermille", "memFactorPermille", "timeS", "memMb", "maxTimeS", "maxMemMb", "itemsPerTask", "isArray", "throttle", "offset"] as const) checkInt(r[k], `retry.${k}`, 0);
  const res = job.resources;
  return {
    job: { id: job.id, name: job.name, scriptPath: job.scriptPath },
    runDir: ctx.runDir,
    runId: ctx.runId,
    pipeline: ctx.pipeline,
    header: {
      output: outputPath(ctx.runDir, false),
      partition: res.partition ?? ctx.cluster.partition ?? null,
      account: res.account ?? ctx.cluster.account ?? null,
      qos: res.qos ?? ctx.cluster.qos ?? null,
      time: res.time ?? "00:05:00",
    },
    retry: { ...r },
  };
}

/** Renders one job's sbatch script. Deterministic: the same job and context give the same bytes. */
export function renderJobScript(job: RenderableJob, ctx: JobRenderContext, templates: Templates = loadTemplates()): string {
  try {
    if (job.retry !== undefined) return templates.retry(retryView(job, ctx));
    const view = jobView(job, ctx);
    const text = templates.sbatch(view);
    // Templates written before task packing would run one item per task and silently skip the rest.
    if (view.job.isMap && view.job.isPacked && !view.job.isBatch && !/^\s*hp_map_pack /m.test(text)) {
      fail("the job packs several map items into each task, but the sbatch template does not call hp_map_pack (see templates/sbatch.hbs)");
    }
    if (view.job.isBatch && !/^\s*hp_batch_map /m.test(text)) {
      fail("the map has batch steps, but the sbatch template does not call hp_batch_map (see templates/sbatch.hbs)");
    }
    if (view.job.isGroup && view.job.isPacked && !/^\s*hp_group_pack /m.test(text)) {
      fail("the job packs several group children into each task, but the sbatch template does not call hp_group_pack (see templates/sbatch.hbs)");
    }
    return text;
  } catch (err) {
    throw new RenderValueError(`job ${String(job.id)}: ${describe(err)}`, { cause: err });
  }
}

function dependencyArg(dep: Dependency, jobId: string, earlier: Set<string>): string {
  if (dep.type !== "afterok" && dep.type !== "afterany") fail(`job ${jobId}: unknown dependency type ${preview(String(dep.type))}`);
  if (!earlier.has(dep.job)) fail(`job ${jobId} depends on ${preview(dep.job)}, which is not submitted before it`);
  return `${dep.type}:${dep.job}`;
}

/** Renders the script that submits every job of the plan in order (see templates/submit.hbs). */
export function renderSubmitScript(plan: RenderablePlan, templates: Templates = loadTemplates()): string {
  try {
    checkRunDir(plan.layout.runDir);
    checkRunId(plan.runId);
    const earlier = new Set<string>();
    const jobs = plan.jobs.map((job) => {
      if (typeof job.id !== "string" || !JOB_ID_PATTERN.test(job.id)) fail(`job id ${preview(String(job.id))} must match ${JOB_ID_PATTERN}`);
      if (earlier.has(job.id)) fail(`job id ${job.id} appears twice`);
      if (typeof job.scriptPath !== "string" || !RELATIVE_PATH.test(job.scriptPath)) {
        fail(`job ${job.id}: script path ${preview(String(job.scriptPath))} must be a relative path inside the run directory`);
      }
      const dependencies = job.dependencies.map((d) => dependencyArg(d, job.id, earlier));
      const watch = job.retry?.of ?? null;
      if (watch !== null && !earlier.has(watch)) fail(`retry controller ${job.id} retries ${preview(watch)}, which is not submitted before it`);
      earlier.add(job.id);
      return { id: job.id, scriptPath: job.scriptPath, dependencies, watch };
    });
    const hasRetries = jobs.some((j) => j.watch !== null);
    return templates.submit({ runDir: plan.layout.runDir, runId: plan.runId, pipeline: plan.pipeline, jobs, hasRetries, transientErrors: TRANSIENT_SLURM_ERRORS });
  } catch (err) {
    throw new RenderValueError(`submit script: ${describe(err)}`, { cause: err });
  }
}

let lib: string | undefined;
let retryLib: string | undefined;

/** The retry controller library, copied verbatim to `scripts/retry.sh` in a run with retries. */
export function retryLibScript(): string {
  retryLib ??= readFileSync(join(defaultTemplatesDir(), "retry.sh"), "utf8");
  return retryLib;
}

/** The job wrapper library, copied verbatim to `scripts/lib.sh`. */
export function libScript(): string {
  lib ??= readFileSync(join(defaultTemplatesDir(), "lib.sh"), "utf8");
  return lib;
}
