/**
 * The compiled plan: a plain, serialisable description of the SLURM jobs
 * that run a pipeline tree. It is produced without any network, printed by
 * `plan`, rendered to sbatch scripts, executed by the local executor and
 * submitted by the SLURM backend. See docs/runtime-contract.md.
 */
import type { Resources } from "./resources.js";
import type { RetryControl } from "./retry.js";

export const PLAN_FORMAT_VERSION = 1;

/** The tree of the pipeline, kept so results can be merged back with the same keys the in-process core uses. */
export interface PlanNode {
  /** Full dot-namespaced key; for nodes inside a map the item index is the segment `{i}`. */
  key: string;
  name: string;
  kind: "step" | "pipeline" | "group" | "map";
  parallel: boolean;
  continue_on_error: boolean;
  signature: string;
  provides: string[];
  /** Map only: number of items and the context key each item is bound to. */
  items?: number;
  item_key?: string;
  /** Map only: the map succeeds even when items fail. */
  continue_on_item_error?: boolean;
  children: PlanNode[];
}

/** Where a required context value comes from when a step runs. */
export interface Need {
  key: string;
  /** "context" for the initial context (or a map item), else the namespaced key of the upstream step that publishes it (may contain `{i}`). */
  from: string;
}

/** One leaf step as a job runs it. */
export interface PlanStep {
  /** Namespaced key; inside a map it contains `{i}`, replaced by the item index at run time. */
  key: string;
  name: string;
  signature: string;
  command: string;
  env: Record<string, string>;
  requires: string[];
  provides: string[];
  outputs: string[];
  needs: Need[];
  continue_on_error: boolean;
  idempotent: boolean;
  /** A batch step (maps only): one command for every item of the task; absent for a plain step. */
  batch?: true;
  /** Input files it reads (patterns under work/, see src/cache/keys.ts): part of its cache key; absent when none. */
  inputs?: string[];
  /** `cache: false`: never restored from the step cache, nor stored in it; absent when cached. */
  cache?: false;
}

/**
 * What one array task (or a plain job) runs: a list of steps in sequence,
 * optionally inside a map item or a group child pipeline whose own state
 * file is written after its steps (`unitKey`).
 */
export interface TaskBody {
  /** Key of the composite this task runs whole (a group child pipeline or a map item), or null for bare steps. */
  unitKey: string | null;
  /** The unit may fail without failing the job (a group child or map with continue_on_error): the task exits 0. */
  continue_on_error?: boolean;
  steps: PlanStep[];
}

/** What a map job knows about its map. */
export interface PlanMap {
  key: string;
  itemsFile: string;
  itemKey: string;
  continueOnItemError: boolean;
  /**
   * Task packing: how many items each array task runs (task t runs items
   * `[t*n, min((t+1)*n, items))`, see `packedItems`). Absent for an unpacked
   * map, whose task i runs item i.
   */
  itemsPerTask?: number;
  /**
   * Packed maps: the CPUs one item uses. A packed task runs at most
   * `max(1, floor(SLURM_CPUS_PER_TASK / itemCpus))` of its items at once.
   */
  itemCpus?: number;
}

/**
 * A packed parallel group: each array task runs several of the group's
 * children (task t runs children `[t*n, min((t+1)*n, children))`, each with
 * its own keys, logs and state files). Absent for an unpacked group, whose
 * task i runs child i.
 */
export interface PlanGroupPack {
  itemsPerTask: number;
  /** The CPUs one child uses; a task runs at most `max(1, floor(SLURM_CPUS_PER_TASK / itemCpus))` children at once. */
  itemCpus: number;
}

/** Items (map items, or a packed group's children) per array task: 1 unless the job is packed. */
export function itemsPerTaskOf(job: Pick<PlanJob, "shape" | "map" | "groupPack">): number {
  if (job.shape === "map") return job.map?.itemsPerTask ?? 1;
  if (job.shape === "group") return job.groupPack?.itemsPerTask ?? 1;
  return 1;
}

/** How many items a packed job's tasks share out: a map's items, a group's children. */
export function packedItemCount(items: Readonly<Record<string, readonly string[]>>, job: Pick<PlanJob, "shape" | "map" | "bodies">): number {
  return job.shape === "map" ? (items[job.map?.key ?? ""]?.length ?? 0) : job.bodies.length;
}

/**
 * The item indices logical task `task` of a map job runs: `[task]` for an
 * unpacked map, else `[task*n, min((task+1)*n, itemCount))`.
 */
export function packedItems(itemsPerTask: number, task: number, itemCount: number): number[] {
  if (itemsPerTask <= 1) return [task];
  const first = task * itemsPerTask;
  const end = Math.min(first + itemsPerTask, itemCount);
  return Array.from({ length: Math.max(0, end - first) }, (_, k) => first + k);
}

export interface ArraySpec {
  /** Number of tasks in this job (this chunk). Task ids run 0..count-1. */
  count: number;
  /** Added to SLURM_ARRAY_TASK_ID to get the logical task index (chunking). */
  offset: number;
  /** Most tasks of this chunk running at once (`%N`), or null. */
  throttle: number | null;
  /** Index of this chunk and how many chunks the logical array has. */
  chunk: number;
  chunks: number;
  /** Logical array size over all chunks. */
  total: number;
  /**
   * A remapped rerun (see task-map.ts): task id i runs logical task
   * `indices[i]` (ids 0..indices.length-1); null: task id t runs `offset + t`, t in 0..count-1.
   */
  indices: number[] | null;
}

export interface Dependency {
  /** Plan job id of the upstream job. */
  job: string;
  type: "afterok" | "afterany";
}

export interface PlanJob {
  /** Stable id inside the plan, e.g. `j003`; also the script's file name. */
  id: string;
  /** SLURM job name (`--job-name`). */
  name: string;
  /**
   * Plain job: one body. Group array: one body per child (task i runs bodies[i]; a packed group's
   * task t runs the bodies of its children). Map array: one body template run for every item.
   */
  shape: "single" | "group" | "map";
  bodies: TaskBody[];
  /** Map only: the map's key, where its items live (`items/<key>.txt`) and the item's context key. */
  map?: PlanMap;
  /** Packed parallel group only: how many children each task runs. */
  groupPack?: PlanGroupPack;
  array: ArraySpec | null;
  dependencies: Dependency[];
  resources: Resources;
  /** Keys of the leaf steps this job runs, in order (with `{i}` inside maps); several means the job is a fusion. */
  steps: string[];
  /** The step keys fused into this job, when more than one; the plan prints these. */
  fused: string[] | null;
  /**
   * A retry controller (no steps, no bodies): runs `afterany` the job it retries, resubmits its failed tasks
   * and chains the next controller (templates/retry.sh). Absent on every other job.
   */
  retry?: RetryControl;
  /** Rendered sbatch script text and its path relative to the run directory. */
  script: string;
  scriptPath: string;
}

export interface PlanLayout {
  /** Absolute run directory as the job sees it (may start with $HOME or $SCRATCH, expanded by the job's shell). */
  runDir: string;
  scripts: "scripts";
  states: "states";
  logs: "logs";
  out: "out";
  ctx: "ctx";
  items: "items";
  work: "work";
}

export interface CompiledPlan {
  format: typeof PLAN_FORMAT_VERSION;
  pipeline: string;
  runId: string;
  /** Signature of the whole pipeline definition. */
  signature: string;
  cluster: string;
  layout: PlanLayout;
  tree: PlanNode;
  /** In dependency (submission) order. */
  jobs: PlanJob[];
  /** Initial context as strings (what jobs export). */
  context: Record<string, string>;
  /** Map items by map key. */
  items: Record<string, string[]>;
  /**
   * Maps whose items are staged local files (`items_glob`, `stage_items`):
   * the SHA-256 of each item's file, in item order, by map key. For a cache
   * key, the hash stands for the item (its value is a path that stays the same
   * when the file changes). Absent when no map stages files.
   */
  itemHashes?: Record<string, string[]>;
  /** Files written next to the scripts: lib.sh, the submit script, context, items. Path (relative to the run dir) to text. */
  files: Record<string, string>;
}
