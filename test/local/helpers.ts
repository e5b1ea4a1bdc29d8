/**
 * Hand-built compiled plans for the local executor and merger tests, made
 * without the real compiler and templates: a small tree description is
 * turned into PlanNodes, jobs (one per leaf, one array per parallel group or
 * map, optional fusion) and job scripts that follow docs/runtime-contract.md
 * in spirit, with a small bash wrapper that writes `states/<key>.json`
 * atomically (temp file + mv), also on TERM.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CompletedState, FunctionStep, Pipeline, StepGroup } from "../../src/core/index.js";
import type { PipelineStep } from "../../src/core/index.js";
import { PLAN_FORMAT_VERSION } from "../../src/plan/plan.js";
import type { CompiledPlan, Dependency, PlanJob, PlanNode, PlanStep, TaskBody } from "../../src/plan/plan.js";
import type { Resources } from "../../src/plan/resources.js";
import type { StateFile } from "../../src/plan/state-file.js";

export interface TStep {
  kind: "step";
  name: string;
  /** A bash command; default: `exit 3` when `fail` says so, else `true`. */
  command?: string;
  /** Fails (exit 3) always, or for these map items. */
  fail?: boolean | string[];
  continue_on_error?: boolean;
  provides?: string[];
  resources?: Resources;
}
export interface TPipeline {
  kind: "pipeline";
  name: string;
  children: TNode[];
  continue_on_error?: boolean;
  /** Consecutive leaf steps share one job. */
  fuse?: boolean;
}
export interface TGroup {
  kind: "group";
  name: string;
  /** Steps, or pipelines of steps (each runs whole in its task). */
  children: Array<TStep | TPipeline>;
  continue_on_error?: boolean;
  throttle?: number;
  resources?: Resources;
}
export interface TMap {
  kind: "map";
  name: string;
  items: string[];
  children: TStep[];
  continue_on_error?: boolean;
  continue_on_item_error?: boolean;
  throttle?: number | null;
  /** Largest chunk (MaxArraySize); default: one chunk. */
  maxArraySize?: number;
  resources?: Resources;
}
export type TNode = TStep | TPipeline | TGroup | TMap;

export const step = (name: string, o: Omit<TStep, "kind" | "name"> = {}): TStep => ({ kind: "step", name, ...o });
export const pipeline = (name: string, children: TNode[], o: Omit<TPipeline, "kind" | "name" | "children"> = {}): TPipeline => ({ kind: "pipeline", name, children, ...o });
export const group = (name: string, children: Array<TStep | TPipeline>, o: Omit<TGroup, "kind" | "name" | "children"> = {}): TGroup => ({ kind: "group", name, children, ...o });
export const map = (name: string, items: string[], children: TStep[], o: Omit<TMap, "kind" | "name" | "children" | "items"> = {}): TMap => ({ kind: "map", name, items, children, ...o });

/** Single-quotes a value for bash. */
export function q(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function failsFor(s: TStep, item: string | undefined): boolean {
  if (Array.isArray(s.fail)) return item !== undefined && s.fail.includes(item);
  return s.fail === true;
}

function commandOf(s: TStep): string {
  if (s.command !== undefined) return s.command;
  if (Array.isArray(s.fail)) return `case "$HPCPIPE_ITEM" in ${s.fail.map(q).join("|") || "''"}) exit 3 ;; esac`;
  return s.fail ? "exit 3" : "true";
}

// ---------------------------------------------------------------- the tree

export function planTree(node: TNode, key: string): PlanNode {
  const base = { key, name: node.name, signature: `sig-${key}`, continue_on_error: node.continue_on_error ?? false };
  switch (node.kind) {
    case "step":
      return { ...base, kind: "step", parallel: false, provides: node.provides ?? [], children: [] };
    case "pipeline":
    case "group": {
      const children = node.children.map((c) => planTree(c, `${key}.${c.name}`));
      return { ...base, kind: node.kind, parallel: node.kind === "group", provides: children.flatMap((c) => c.provides), children };
    }
    case "map": {
      const children = node.children.map((c) => planTree(c, `${key}.{i}.${c.name}`));
      return {
        ...base,
        kind: "map",
        parallel: true,
        provides: [],
        items: node.items.length,
        item_key: "item",
        continue_on_item_error: node.continue_on_item_error ?? false,
        children,
      };
    }
  }
}

// ---------------------------------------------------------------- the jobs

function planStep(s: TStep, key: string): PlanStep {
  return {
    key,
    name: s.name,
    signature: `sig-${key}`,
    command: commandOf(s),
    env: {},
    requires: [],
    provides: s.provides ?? [],
    outputs: [],
    needs: [],
    continue_on_error: s.continue_on_error ?? false,
    idempotent: true,
  };
}

export interface CompileOptions {
  /** Grace seconds for `#SBATCH --signal=B:USR1@N` (written only when a job has a time limit). */
  signalGrace?: number;
}

class MiniCompiler {
  readonly jobs: PlanJob[] = [];
  readonly files: Record<string, string> = {};
  readonly items: Record<string, string[]> = {};
  constructor(
    private readonly runDir: string,
    private readonly opts: CompileOptions,
  ) {}

  private addJob(
    shape: PlanJob["shape"],
    name: string,
    bodies: TaskBody[],
    deps: Dependency[],
    extra: { array?: PlanJob["array"]; map?: PlanJob["map"]; resources?: Resources; taskContinues?: boolean } = {},
  ): string {
    const id = `j${String(this.jobs.length + 1).padStart(3, "0")}`;
    const steps = bodies.flatMap((b) => b.steps.map((s) => s.key));
    const job: PlanJob = {
      id,
      name,
      shape,
      bodies,
      array: extra.array ?? null,
      dependencies: deps,
      resources: extra.resources ?? {},
      steps: shape === "group" ? steps : (bodies[0]?.steps.map((s) => s.key) ?? []),
      fused: shape === "single" && steps.length > 1 ? steps : null,
      script: "",
      scriptPath: `scripts/${id}.sbatch`,
    };
    if (extra.map !== undefined) job.map = extra.map;
    job.script = this.render(job, extra.taskContinues ?? false);
    this.jobs.push(job);
    return id;
  }

  private render(job: PlanJob, taskContinues: boolean): string {
    const lines = ["#!/bin/bash", `#SBATCH --job-name=${job.name}`];
    lines.push(job.array === null ? "#SBATCH --output=logs/slurm-%j.out" : "#SBATCH --output=logs/slurm-%A_%a.out");
    if (job.resources.time !== undefined && this.opts.signalGrace !== undefined) lines.push(`#SBATCH --signal=B:USR1@${this.opts.signalGrace}`);
    lines.push(`HPCPIPE_RUN_DIR=${q(this.runDir)}`, 'source "$HPCPIPE_RUN_DIR/scripts/lib.sh"');
    lines.push(`hp_job_begin ${job.array?.offset ?? 0} ${taskContinues ? 1 : 0}`);
    const body = (b: TaskBody): string[] => [
      ...(b.unitKey === null ? [] : [`hp_unit_begin ${q(b.unitKey)}`]),
      ...b.steps.map((s) => `hp_step ${q(s.key)} ${s.continue_on_error ? 1 : 0} ${q(s.command)}`),
      ...(b.unitKey === null ? [] : ["hp_unit_end"]),
    ];
    if (job.shape === "group") {
      lines.push('case "$HPCPIPE_TASK" in');
      job.bodies.forEach((b, i) => lines.push(`  ${i})`, ...body(b).map((l) => `    ${l}`), "    ;;"));
      lines.push("esac");
    } else {
      if (job.map !== undefined) {
        lines.push(`HPCPIPE_ITEM=$(sed -n "$((HPCPIPE_TASK + 1))p" "$HPCPIPE_RUN_DIR/"${q(job.map.itemsFile)})`, "export HPCPIPE_ITEM");
      }
      for (const b of job.bodies) lines.push(...body(b));
    }
    lines.push("hp_job_end", "");
    return lines.join("\n");
  }

  /** Compiles a node whose jobs must wait for `deps`; returns the jobs that follow-up siblings wait for. */
  node(n: TNode, key: string, deps: Dependency[]): string[] {
    switch (n.kind) {
      case "step":
        return [this.addJob("single", n.name, [{ unitKey: null, steps: [planStep(n, key)] }], deps, { resources: n.resources ?? {} })];
      case "pipeline":
        return this.sequence(n.children, key, deps, n.fuse ?? false);
      case "group": {
        const bodies: TaskBody[] = n.children.map((c) =>
          c.kind === "step"
            ? { unitKey: null, steps: [planStep(c, `${key}.${c.name}`)] }
            : { unitKey: `${key}.${c.name}`, steps: c.children.map((s) => planStep(s as TStep, `${key}.${c.name}.${s.name}`)) },
        );
        const count = bodies.length;
        const array = { count, offset: 0, throttle: n.throttle ?? null, chunk: 0, chunks: 1, total: count, indices: null };
        // A child with continue_on_error exits 0 after its failure, so afterok dependents still run.
        const continues = n.children.every((c) => c.continue_on_error ?? false);
        return [this.addJob("group", n.name, bodies, deps, { array, resources: n.resources ?? {}, taskContinues: continues })];
      }
      case "map": {
        this.items[key] = n.items;
        const itemsFile = `items/${key}.txt`;
        this.files[itemsFile] = n.items.map((i) => `${i}\n`).join("");
        const body: TaskBody = { unitKey: `${key}.{i}`, steps: n.children.map((s) => planStep(s, `${key}.{i}.${s.name}`)) };
        const size = n.maxArraySize ?? Math.max(1, n.items.length);
        const chunks = Math.max(1, Math.ceil(n.items.length / size));
        const ids: string[] = [];
        for (let c = 0; c < chunks; c++) {
          const offset = c * size;
          const count = Math.min(size, n.items.length - offset);
          const array = { count, offset, throttle: n.throttle ?? null, chunk: c, chunks, total: n.items.length, indices: null };
          const mapInfo = { key, itemsFile, itemKey: "item", continueOnItemError: n.continue_on_item_error ?? false };
          ids.push(this.addJob("map", `${n.name}-${c}`, [body], deps, { array, map: mapInfo, resources: n.resources ?? {}, taskContinues: mapInfo.continueOnItemError }));
        }
        return ids;
      }
    }
  }

  sequence(children: TNode[], key: string, deps: Dependency[], fuse: boolean): string[] {
    let current = deps;
    let tails: string[] = [];
    for (let i = 0; i < children.length; i++) {
      const c = children[i] as TNode;
      let last: TNode = c;
      if (fuse && c.kind === "step") {
        const run: TStep[] = [c];
        while (i + 1 < children.length && children[i + 1]?.kind === "step") run.push(children[++i] as TStep);
        last = run[run.length - 1] as TStep;
        const steps = run.map((s) => planStep(s, `${key}.${s.name}`));
        tails = [this.addJob("single", run.map((s) => s.name).join("+"), [{ unitKey: null, steps }], current)];
      } else tails = this.node(c, `${key}.${c.name}`, current);
      current = tails.map((job) => ({ job, type: (last.continue_on_error ?? false) ? "afterany" : "afterok" }));
    }
    return tails;
  }
}

export function compilePlan(root: TPipeline, runDir: string, opts: CompileOptions = {}): CompiledPlan {
  const c = new MiniCompiler(runDir, opts);
  c.sequence(root.children, root.name, [], root.fuse ?? false);
  return {
    format: PLAN_FORMAT_VERSION,
    pipeline: root.name,
    runId: "test-run",
    signature: `sig-${root.name}`,
    cluster: "local",
    layout: { runDir, scripts: "scripts", states: "states", logs: "logs", out: "out", ctx: "ctx", items: "items", work: "work" },
    tree: planTree(root, root.name),
    jobs: c.jobs,
    context: {},
    items: c.items,
    files: { "scripts/lib.sh": LIB_SH, ...c.files },
  };
}

// ---------------------------------------------------------------- the wrapper

/** A small job wrapper (test/local/fixtures/lib.sh): bash and coreutils, atomic state files, TERM/USR1 traps. */
export const LIB_SH = readFileSync(fileURLToPath(new URL("./fixtures/lib.sh", import.meta.url)), "utf8");

// ---------------------------------------------------------------- the same tree in-process

/** The same tree as core steps: failing steps return a failed CompletedState, as a command exiting 3 would. */
export function coreTree(root: TPipeline): Pipeline {
  const leaf = (s: TStep, item?: string): FunctionStep =>
    new FunctionStep({
      name: s.name,
      continue_on_error: s.continue_on_error ?? false,
      idempotent: false,
      run: () => (failsFor(s, item) ? CompletedState.fail("command exited with status 3", { meta: { exit_code: 3 } }) : undefined),
    });
  const build = (n: TNode): PipelineStep => {
    switch (n.kind) {
      case "step":
        return leaf(n);
      case "pipeline":
        return new Pipeline({ name: n.name, continue_on_error: n.continue_on_error ?? false, steps: n.children.map(build) });
      case "group":
        return new StepGroup({ name: n.name, parallel: true, concurrency: 64, continue_on_error: n.continue_on_error ?? false, steps: n.children.map(build) });
      case "map":
        return new StepGroup({
          name: n.name,
          parallel: true,
          concurrency: 64,
          continue_on_error: n.continue_on_error ?? false,
          steps: n.items.map(
            (item, i) => new Pipeline({ name: String(i), continue_on_error: n.continue_on_item_error ?? false, steps: n.children.map((s) => leaf(s, item)) }),
          ),
        });
    }
  };
  return build(root) as Pipeline;
}

/** `key -> success` of every state, for comparing outcomes. */
export function outcomes(states: Record<string, CompletedState> | undefined, opts: { withoutNotRun?: boolean } = {}): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const [k, v] of Object.entries(states ?? {})) {
    if (opts.withoutNotRun && v.meta.not_run === true) continue;
    out[k] = v.success;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** A thumbnail-like pipeline: prep, a parallel group (one child a pipeline), a map, a fused tail. */
export function thumbs(o: { failPrep?: boolean; failC1?: boolean; failItem?: string[]; continueItems?: boolean; failMeta?: boolean; metaContinues?: boolean } = {}): TPipeline {
  return pipeline("thumbs", [
    step("prep", { fail: o.failPrep ?? false }),
    group("render", [step("front"), step("side"), pipeline("top", [step("c1", { fail: o.failC1 ?? false }), step("c2")])]),
    map("validate", ["x", "y", "z"], [step("check", { fail: o.failItem ?? [] }), step("report")], { continue_on_item_error: o.continueItems ?? false }),
    pipeline("post", [step("meta", { fail: o.failMeta ?? false, continue_on_error: o.metaContinues ?? false }), step("publish"), step("notify")], { fuse: true }),
  ]);
}

export const conformanceCases: Array<[string, TPipeline]> = [
  ["everything succeeds", thumbs()],
  ["the first step fails", thumbs({ failPrep: true })],
  ["a step inside a group child pipeline fails", thumbs({ failC1: true })],
  ["a map item fails", thumbs({ failItem: ["y"] })],
  ["a map item fails and the map continues on item errors", thumbs({ failItem: ["y"], continueItems: true })],
  ["a fused step fails", thumbs({ failMeta: true })],
  ["a fused continue_on_error step fails", thumbs({ failMeta: true, metaContinues: true })],
];

// ---------------------------------------------------------------- files

export async function makeRunDir(): Promise<{ base: string; runDir: string; cleanup: () => Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), "hpcpipe-local-test-"));
  return { base, runDir: join(base, "run"), cleanup: () => rm(base, { recursive: true, force: true }) };
}

export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

export async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, "utf8")) as unknown;
}

/** A state file as a job would write it, for the pure merge tests. */
export function stateFile(key: string, success: boolean, extra: Partial<StateFile> = {}): StateFile {
  return {
    success,
    timestamp: "2026-01-01T00:00:00.000Z",
    duration_s: 1,
    provides: [],
    outputs: {},
    error: success ? null : "command exited with status 3",
    meta: { exit_code: success ? 0 : 3, reason: null },
    signature: `sig-${key}`,
    failure: success ? null : "STEP_FAILED",
    key,
    slurm: { job_id: "7", task: 0 },
    host: "node01",
    exit_code: success ? 0 : 3,
    attempt: 1,
    ...extra,
  };
}
