import { RUN_ID_PATTERN } from "../plan/run-id.js";
import { logicalTasks, remapTasks } from "../plan/task-map.js";
import { shortSignature } from "../core/signature.js";
import type { PipelineStep } from "../core/step.js";
import { mergeResources, secondsToSlurmTime, slurmTimeToSeconds as slurmSeconds } from "../plan/resources.js";
import type { Resources } from "../plan/resources.js";
import { itemsPerTaskOf, packedItemCount, packedItems, PLAN_FORMAT_VERSION } from "../plan/plan.js";
import type { ArraySpec, CompiledPlan, Dependency, Need, PlanJob, PlanLayout, PlanNode, PlanStep, TaskBody } from "../plan/plan.js";
import { CommandStep } from "../spec/command-step.js";
import { fuseOptOut, groupPackingOf, throttleOf } from "../spec/annotations.js";
import type { MapPacking } from "../spec/map-step.js";
import { contextKeyProblem } from "../spec/context-keys.js";
import { chunkArray } from "./chunk.js";
import type { Chunk } from "./chunk.js";
import { CompileError } from "./errors.js";
import { commandStepProblems } from "./command-checks.js";
import { combineResources, sameResources } from "./job-resources.js";
import { resolvePacking } from "./packing.js";
import type { CompileTarget } from "./target.js";
import { preview } from "../core/preview.js";

/** Largest single `NAME=value` string Linux passes to a process (MAX_ARG_STRLEN - 1). */
const MAX_ENV_STRING_BYTES = 131_071;

export { RUN_ID_PATTERN } from "../plan/run-id.js";

export interface RenderContext {
  runDir: string;
  runId: string;
  pipeline: string;
  cluster: { modules: string[]; setup: string[]; sbatch_options: string[]; signal_grace_s: number };
}

/** Turns plan jobs into script text; implemented by src/render over the Handlebars templates. */
export interface Renderer {
  job(job: Omit<PlanJob, "script">, context: RenderContext): string;
  submit(plan: CompiledPlan): string;
  lib(): string;
}

export interface CompileInput {
  root: PipelineStep;
  context: Record<string, string | number | boolean>;
  runId: string;
  target: CompileTarget;
  /** The pipeline's own resource defaults (over the cluster's). */
  defaults?: Resources;
  /** Fuse consecutive sequential steps with equal resources into one job (default true). */
  fuse?: boolean;
  /** False for a composite that opted out of fusion (the spec's `fuse: false`). */
  canFuse?: (step: PipelineStep) => boolean;
  renderer: Renderer;
  /**
   * Concrete keys of steps that already succeeded with their current
   * signature (a resumed run): jobs and array tasks that would only rerun
   * them are left out, and dependencies on left-out jobs are dropped.
   */
  done?: ReadonlySet<string>;
}

/** The parts of a map step the compiler reads (see src/spec/map-step.ts). */
interface MapLike extends PipelineStep {
  readonly items: readonly string[];
  readonly as: string;
  readonly continue_on_item_error: boolean;
  /** Task packing (absent or null: one array task per item). */
  readonly packing?: MapPacking | null;
  /** The SHA-256 of each item's file when the items are staged local files. */
  readonly itemHashes?: readonly string[] | null;
}

type Unit =
  | { type: "leaf"; leaf: PlanStep; resources: Resources; fusable: boolean; coe: boolean }
  | { type: "group"; key: string; step: PipelineStep }
  | { type: "map"; key: string; step: MapLike }
  | { type: "block"; units: Unit[] };

const isComposite = (s: PipelineStep): boolean => s.kind !== "step";
const isSequential = (s: PipelineStep): boolean => s.kind === "pipeline" || (s.kind === "group" && !s.parallel);
const mapOf = (s: PipelineStep): MapLike | null => (s.kind === ("map" as string) ? (s as MapLike) : null);

/**
 * Compiles a pipeline tree into a plan of SLURM jobs: sequential steps chained
 * with afterok (afterany after continue_on_error), each parallel group one
 * array job, each map an array over its items, arrays chunked to the cluster's
 * MaxArraySize, consecutive equal-resource steps fused. Deterministic.
 */
export function compile(input: CompileInput): CompiledPlan {
  const { root, target } = input;
  if (!RUN_ID_PATTERN.test(input.runId)) throw new CompileError(`invalid run id ${preview(input.runId)}`);
  const problems: string[] = [];
  const context = contextStrings(input.context, problems);
  const defaults = mergeResources(target.defaults, input.defaults);
  const canFuse = input.canFuse ?? ((s: PipelineStep) => !fuseOptOut(s));
  const fuse = input.fuse ?? true;

  refuseInProcessSteps(root, problems);
  if (problems.length > 0) throw new CompileError(problems.join("\n"), problems);

  const needs = resolveNeeds(root, new Set(Object.keys(context)), problems);
  if (problems.length > 0) throw new CompileError(problems.join("\n"), problems);

  const planStep = (step: CommandStep, key: string): PlanStep => ({
    key,
    name: step.name,
    signature: shortSignature(step),
    command: step.command,
    env: { ...step.env },
    requires: [...step.requires],
    provides: [...step.provides],
    outputs: [...step.outputs],
    needs: needs.get(key) ?? [],
    continue_on_error: step.continue_on_error,
    idempotent: step.idempotent,
    ...(step.batch ? { batch: true as const } : {}),
    ...(step.inputs.length > 0 ? { inputs: [...step.inputs] } : {}),
    ...(step.cache ? {} : { cache: false as const }),
  });
  const refuseBatch = (leaf: PlanStep, where: string): void => {
    if (leaf.batch) problems.push(`${leaf.key}: a batch step runs one command for all the items of a map's task; ${where} is not a map (put the step inside a map, or remove batch)`);
  };

  /** The leaves one array task runs in sequence; `top` is the task's own unit (its continue_on_error is the task's). */
  const leavesOf = (step: PipelineStep, key: string, where: string, top = true): Array<{ leaf: PlanStep; resources: Resources }> => {
    if (step instanceof CommandStep) return [{ leaf: planStep(step, key), resources: mergeResources(defaults, step.resources) }];
    if (mapOf(step)) {
      problems.push(`${key}: a map inside ${where} cannot run on a cluster (one array task cannot hold another array); make it a top-level step`);
      return [];
    }
    if (!top && step.continue_on_error) {
      problems.push(
        `${key}: continue_on_error on a ${step.kind} inside ${where} is not supported on a cluster yet ` +
          `(one array task runs its steps as a flat sequence); put continue_on_error on its steps instead`,
      );
      return [];
    }
    return step.children.flatMap((c) => leavesOf(c, `${key}.${c.name}`, where, false));
  };

  const unitsOf = (step: PipelineStep, key: string, fuseAllowed: boolean): Unit[] => {
    if (step instanceof CommandStep) {
      const leaf = planStep(step, key);
      refuseBatch(leaf, "its place in the pipeline");
      return [
        {
          type: "leaf",
          leaf,
          resources: mergeResources(defaults, step.resources),
          fusable: fuseAllowed && step.fuse && !step.continue_on_error,
          coe: step.continue_on_error,
        },
      ];
    }
    const map = mapOf(step);
    // An array whose own failure is allowed hands its dependents on with afterany, like a tolerated sequence.
    const tolerated = (unit: Unit): Unit[] => (step.continue_on_error ? [{ type: "block", units: [unit] }] : [unit]);
    if (map) return tolerated({ type: "map", key, step: map });
    if (!isSequential(step)) return tolerated({ type: "group", key, step });
    const inner = fuseAllowed && canFuse(step);
    const units = step.children.flatMap((c) => unitsOf(c, `${key}.${c.name}`, inner));
    return step.continue_on_error ? [{ type: "block", units }] : units;
  };

  const drafts: Array<Omit<PlanJob, "script">> = [];
  const items: Record<string, string[]> = {};
  const itemHashes: Record<string, string[]> = {};
  const newId = (): string => `j${String(drafts.length).padStart(3, "0")}`;
  const deps = (incoming: Dependency[]): Dependency[] => incoming.map((d) => ({ ...d }));

  const singleJob = (buffer: Array<Extract<Unit, { type: "leaf" }>>, incoming: Dependency[]): Dependency[] => {
    const first = buffer[0];
    if (!first) return incoming;
    const id = newId();
    const steps = buffer.map((u) => u.leaf);
    const resources = buffer.length === 1 ? first.resources : sumTime(buffer.map((u) => u.resources));
    drafts.push({
      id,
      name: jobName(id, first.leaf.name),
      shape: "single",
      bodies: [{ unitKey: null, steps }],
      array: null,
      dependencies: deps(incoming),
      resources,
      steps: steps.map((s) => s.key),
      fused: steps.length > 1 ? steps.map((s) => s.key) : null,
      scriptPath: `scripts/${id}.sbatch`,
    });
    return [{ job: id, type: buffer.length === 1 && first.coe ? "afterany" : "afterok" }];
  };

  const arrayJobs = (
    label: string,
    shape: "group" | "map",
    bodies: TaskBody[],
    total: number,
    throttle: number | null,
    resources: Resources,
    incoming: Dependency[],
    map?: PlanJob["map"],
    groupPack?: PlanJob["groupPack"],
  ): Dependency[] => {
    if (total === 0) return incoming;
    const chunks = chunkArray(total, target.maxArraySize, throttle);
    const ids: string[] = [];
    for (const chunk of chunks) {
      const id = newId();
      ids.push(id);
      const chunkDeps = deps(incoming);
      if (chunk.after !== null) chunkDeps.push({ job: ids[chunk.after] ?? "", type: "afterany" });
      const stepKeys = [...new Set(bodies.flatMap((b) => b.steps.map((s) => s.key)))];
      drafts.push({
        id,
        name: jobName(id, chunks.length > 1 ? `${label}-${chunk.chunk}` : label),
        shape,
        bodies,
        ...(map ? { map } : {}),
        ...(groupPack ? { groupPack } : {}),
        array: arraySpec(chunk, total),
        dependencies: chunkDeps,
        resources,
        steps: stepKeys,
        fused: null,
        scriptPath: `scripts/${id}.sbatch`,
      });
    }
    return ids.map((job) => ({ job, type: "afterok" }));
  };

  const build = (units: Unit[], incoming: Dependency[]): Dependency[] => {
    let current = incoming;
    let buffer: Array<Extract<Unit, { type: "leaf" }>> = [];
    const flush = (): void => {
      current = singleJob(buffer, current);
      buffer = [];
    };
    for (const unit of units) {
      if (unit.type === "leaf") {
        const last = buffer[buffer.length - 1];
        if (last && last.fusable && unit.fusable && sameResources(last.resources, unit.resources)) buffer.push(unit);
        else {
          flush();
          buffer = [unit];
        }
        continue;
      }
      flush();
      if (unit.type === "block") {
        current = build(unit.units, current).map((d) => ({ ...d, type: "afterany" as const }));
      } else if (unit.type === "group") {
        const perChild = unit.step.children.map((child) => {
          const childKey = `${unit.key}.${child.name}`;
          const leaves = leavesOf(child, childKey, `parallel group ${unit.key}`);
          for (const l of leaves) refuseBatch(l.leaf, `parallel group ${unit.key}`);
          return { child, childKey, leaves };
        });
        const bodies: TaskBody[] = perChild.map(({ child, childKey, leaves }) => ({
          unitKey: isComposite(child) ? childKey : null,
          continue_on_error: child.continue_on_error,
          steps: leaves.map((l) => l.leaf),
        }));
        const perTask = perChild.map((c) => sequenceResources(c.leaves.map((l) => l.resources), unit.key, problems));
        const resources = combineResources(perTask, unit.key, problems);
        const pack = resolvePacking(unit.key, groupPackingOf(unit.step), bodies.length, resources, throttleOf(unit.step), problems);
        if (pack === null) {
          current = arrayJobs(unit.step.name, "group", bodies, bodies.length, throttleOf(unit.step) ?? target.arrayThrottle, resources, current);
        } else {
          current = arrayJobs(unit.step.name, "group", bodies, pack.tasks, pack.throttle ?? target.arrayThrottle, pack.resources, current, undefined, {
            itemsPerTask: pack.itemsPerTask,
            itemCpus: pack.itemCpus,
          });
        }
      } else {
        const m = unit.step;
        const itemKey = `${unit.key}.{i}`;
        const leaves = m.children.flatMap((c) => leavesOf(c, `${itemKey}.${c.name}`, `map ${unit.key}`, false));
        items[unit.key] = [...m.items];
        if (m.itemHashes) itemHashes[unit.key] = [...m.itemHashes];
        const body: TaskBody = { unitKey: itemKey, continue_on_error: m.continue_on_item_error, steps: leaves.map((l) => l.leaf) };
        const resources = sequenceResources(leaves.map((l) => l.resources), unit.key, problems);
        const mapInfo = { key: unit.key, itemsFile: `items/${unit.key}.txt`, itemKey: m.as, continueOnItemError: m.continue_on_item_error };
        const throttle = throttleOf(m);
        const pack = resolvePacking(unit.key, m.packing ?? null, m.items.length, resources, throttle, problems);
        if (pack === null) {
          current = arrayJobs(m.name, "map", [body], m.items.length, throttle ?? target.arrayThrottle, resources, current, mapInfo);
        } else {
          current = arrayJobs(m.name, "map", [body], pack.tasks, pack.throttle ?? target.arrayThrottle, pack.resources, current, {
            ...mapInfo,
            itemsPerTask: pack.itemsPerTask,
            itemCpus: pack.itemCpus,
          });
        }
      }
    }
    flush();
    return current;
  };

  build(unitsOf(root, root.name, fuse), []);
  for (const d of drafts) {
    // One way to write a time limit everywhere (plan, #SBATCH, messages): HH:MM:SS, or D-HH:MM:SS past a day.
    if (d.resources.time !== undefined) d.resources = { ...d.resources, time: secondsToSlurmTime(slurmSeconds(d.resources.time)) };
    const problem = graceProblem(d, target);
    if (problem !== null) problems.push(problem);
  }
  if (problems.length > 0) throw new CompileError(problems.join("\n"), problems);
  if (input.done) pruneDone(drafts, input.done, items, target.maxArraySize);

  const runDir = `${target.workdir.replace(/\/+$/, "")}/${root.name}/${input.runId}`;
  const layout: PlanLayout = { runDir, scripts: "scripts", states: "states", logs: "logs", out: "out", ctx: "ctx", items: "items", work: "work" };
  const renderContext: RenderContext = {
    runDir,
    runId: input.runId,
    pipeline: root.name,
    cluster: { modules: target.modules, setup: target.setup, sbatch_options: target.sbatchOptions, signal_grace_s: target.signalGraceS },
  };
  const jobs: PlanJob[] = drafts.map((d) => {
    try {
      return { ...d, script: input.renderer.job(d, renderContext) };
    } catch (err) {
      throw new CompileError(`rendering job ${d.id} (${d.steps.join(", ")}): ${err instanceof Error ? err.message : String(err)}`);
    }
  });

  const plan: CompiledPlan = {
    format: PLAN_FORMAT_VERSION,
    pipeline: root.name,
    runId: input.runId,
    signature: shortSignature(root),
    cluster: target.name,
    layout,
    tree: planNode(root, root.name),
    jobs,
    context,
    items,
    ...(Object.keys(itemHashes).length > 0 ? { itemHashes } : {}),
    files: {},
  };
  const files: Record<string, string> = {};
  files["scripts/lib.sh"] = input.renderer.lib();
  for (const job of jobs) files[job.scriptPath] = job.script;
  files["context.env0"] = Object.entries(context)
    .map(([k, v]) => `${k}=${v}\0`)
    .join("");
  for (const [key, list] of Object.entries(items)) files[`items/${key}.txt`] = list.map((i) => `${i}\n`).join("");
  plan.files = files;
  files["scripts/submit.sh"] = input.renderer.submit(plan);
  return plan;
}

function contextStrings(context: Record<string, unknown>, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(context).sort()) {
    const value = context[key];
    if (key === "step_states") continue;
    const problem = contextKeyProblem(key);
    if (problem) {
      problems.push(problem);
      continue;
    }
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      problems.push(`context value '${key}' must be a string, number or boolean to reach a cluster job`);
      continue;
    }
    const text = String(value);
    if (text.includes("\0")) problems.push(`context value '${key}' contains a NUL byte, which no environment variable can hold`);
    else if (Buffer.byteLength(text) + key.length + 1 > MAX_ENV_STRING_BYTES) {
      problems.push(`context value '${key}' is ${Buffer.byteLength(text)} bytes; Linux passes at most ${MAX_ENV_STRING_BYTES} bytes per environment variable (put large data in a file)`);
    } else out[key] = text;
  }
  return out;
}

function refuseInProcessSteps(root: PipelineStep, problems: string[]): void {
  const offenders: string[] = [];
  const walk = (step: PipelineStep, key: string): void => {
    if (isComposite(step)) {
      for (const c of step.children) walk(c, `${key}.${c.name}`);
    } else if (!(step instanceof CommandStep)) {
      offenders.push(`${key} (${step.constructor.name})`);
    }
  };
  walk(root, root.name);
  if (offenders.length > 0) {
    problems.push(
      `these steps exist only as in-process functions and cannot run on a cluster: ${offenders.join(", ")}; ` +
        `make them CommandSteps (a shell command) or run the pipeline in-process`,
    );
  }
}

/**
 * Walks the tree in execution order and records, for every leaf, where each
 * required key comes from: the latest upstream step that provides it, else the
 * context (or the map item). A key from neither is a compile error.
 */
function resolveNeeds(root: PipelineStep, contextKeys: Set<string>, problems: string[]): Map<string, Need[]> {
  const needs = new Map<string, Need[]>();
  const walk = (step: PipelineStep, key: string, providers: Map<string, string>, scoped: Set<string>): void => {
    if (step instanceof CommandStep) {
      for (const p of commandStepProblems(step, key, providers)) problems.push(p);
      const list: Need[] = [];
      for (const k of step.requires) {
        const from = providers.get(k);
        if (from !== undefined) list.push({ key: k, from });
        else if (scoped.has(k) || contextKeys.has(k)) list.push({ key: k, from: "context" });
        else problems.push(`step ${key} requires '${k}', which neither the context nor an upstream step provides`);
      }
      needs.set(key, list);
      for (const k of step.provides) providers.set(k, key);
      return;
    }
    const map = mapOf(step);
    if (map) {
      const inner = new Map(providers);
      const innerScoped = new Set([...scoped, map.as]);
      inner.delete(map.as);
      for (const c of step.children) walk(c, `${key}.{i}.${c.name}`, inner, innerScoped);
      return;
    }
    if (step.parallel) {
      const before = new Map(providers);
      for (const c of step.children) {
        const mine = new Map(before);
        walk(c, `${key}.${c.name}`, mine, scoped);
        for (const [k, v] of mine) if (before.get(k) !== v) providers.set(k, v);
      }
      return;
    }
    for (const c of step.children) walk(c, `${key}.${c.name}`, providers, scoped);
  };
  walk(root, root.name, new Map(), new Set());
  return needs;
}

function planNode(step: PipelineStep, key: string): PlanNode {
  const map = mapOf(step);
  const childPrefix = map ? `${key}.{i}` : key;
  return {
    key,
    name: step.name,
    kind: map ? "map" : step.kind,
    parallel: step.parallel || map !== null,
    continue_on_error: step.continue_on_error,
    signature: shortSignature(step),
    provides: [...step.provides],
    ...(map ? { items: map.items.length, item_key: map.as, continue_on_item_error: map.continue_on_item_error } : {}),
    children: step.children.map((c) => planNode(c, `${childPrefix}.${c.name}`)),
  };
}

/** SLURM sends the warning signal `signal_grace_s` before the limit: at or past the start, it stops the job at once. */
function graceProblem(job: Omit<PlanJob, "script">, target: CompileTarget): string | null {
  const grace = target.signalGraceS;
  const time = job.resources.time;
  if (grace <= 0 || time === undefined) return null;
  const limit = slurmSeconds(time);
  if (grace < limit) return null;
  const who = job.steps.length === 1 ? `step ${job.steps[0] ?? job.id}` : `steps ${job.steps.join(", ")} (job ${job.id})`;
  return (
    `${who}: signal_grace_s (${grace} s) of cluster ${target.name} is not below the time limit ${time} (${limit} s): ` +
    `the warning signal would stop it as soon as it starts; give it a time limit above ${grace} s or lower signal_grace_s`
  );
}

function jobName(id: string, label: string): string {
  return `hp-${id}-${label}`.slice(0, 64);
}

/** Steps run one after another in one task: the largest amounts, and the time of all of them together. */
function sequenceResources(list: Resources[], key: string, problems: string[]): Resources {
  const combined = combineResources(list, key, problems);
  const summed = sumTime(list);
  return summed.time === undefined ? combined : { ...combined, time: summed.time };
}

/** A fused job needs the time of all its steps together. */
function sumTime(list: Resources[]): Resources {
  const first = list[0] ?? {};
  const times = list.map((r) => r.time);
  if (times.some((t) => t === undefined)) return { ...first };
  return { ...first, time: secondsToSlurmTime(times.reduce((s, t) => s + slurmSeconds(t as string), 0)) };
}

function arraySpec(chunk: Chunk, total: number): ArraySpec {
  return { count: chunk.count, offset: chunk.offset, throttle: chunk.throttle, chunk: chunk.chunk, chunks: chunk.chunks, total, indices: null };
}

/** Concrete step keys a task of a job runs (`{i}` replaced by its logical index, or by each item index of a packed task; a packed group's children). */
function taskKeys(job: Omit<PlanJob, "script">, logical: number, items: Record<string, string[]>): string[] {
  if (job.shape === "single") return job.bodies.flatMap((b) => b.steps.map((s) => s.key));
  const indices = packedItems(itemsPerTaskOf(job), logical, packedItemCount(items, job));
  return indices.flatMap((i) => {
    const body = job.shape === "map" ? job.bodies[0] : job.bodies[i];
    return (body?.steps ?? []).map((s) => s.key.split("{i}").join(String(i)));
  });
}

/**
 * Leaves out what a resumed run does not need: a job whose every step is
 * done, and array tasks whose every step is done (the rest become a sparse
 * `--array` list). A job that depended on a left-out job waits instead for
 * what that job waited for, so the order of the remaining work holds.
 */
function pruneDone(drafts: Array<Omit<PlanJob, "script">>, done: ReadonlySet<string>, items: Record<string, string[]>, maxArraySize: number): void {
  const removed = new Map<string, Dependency[]>();
  const kept: Array<Omit<PlanJob, "script">> = [];
  for (const job of drafts) {
    if (job.array === null) {
      if (taskKeys(job, 0, items).every((k) => done.has(k))) removed.set(job.id, job.dependencies);
      else kept.push(job);
      continue;
    }
    const array = job.array;
    const todo = logicalTasks(job).filter((task) => !taskKeys(job, task, items).every((k) => done.has(k)));
    if (todo.length === 0) removed.set(job.id, job.dependencies);
    else {
      // The tasks that must run again, remapped onto ids 0..n-1 (one mechanism: src/plan/task-map.ts).
      job.array = remapTasks(array, todo, maxArraySize);
      kept.push(job);
    }
  }
  const resolve = (deps: Dependency[]): Dependency[] =>
    deps.flatMap((d) => {
      const through = removed.get(d.job);
      return through === undefined ? [d] : resolve(through);
    });
  for (const job of kept) {
    const seen = new Set<string>();
    job.dependencies = resolve(job.dependencies).filter((d) => {
      const id = `${d.type}:${d.job}`;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }
  drafts.splice(0, drafts.length, ...kept);
}
