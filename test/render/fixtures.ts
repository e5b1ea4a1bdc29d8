/**
 * Hand-built plan jobs for the render tests (the compiler is written
 * separately; these follow src/plan/plan.ts and docs/runtime-contract.md).
 */
import type { PlanStep } from "../../src/plan/plan.js";
import type { ClusterRenderSettings, JobRenderContext, RenderableJob, RenderTaskBody } from "../../src/render/render.js";

export function step(key: string, command: string, extra: Partial<PlanStep> = {}): PlanStep {
  const name = key.split(".").pop() ?? key;
  return {
    key,
    name,
    signature: "0123456789ab",
    command,
    env: {},
    requires: [],
    provides: [],
    outputs: [],
    needs: [],
    continue_on_error: false,
    idempotent: true,
    ...extra,
  };
}

export function plainJob(steps: PlanStep[], extra: Partial<RenderableJob> = {}): RenderableJob {
  return {
    id: "j001",
    name: "demo-job",
    shape: "single",
    bodies: [{ unitKey: null, steps }],
    array: null,
    dependencies: [],
    resources: {},
    steps: steps.map((s) => s.key),
    fused: steps.length > 1 ? steps.map((s) => s.key) : null,
    scriptPath: "scripts/j001.sbatch",
    ...extra,
  };
}

export function groupJob(bodies: RenderTaskBody[], extra: Partial<RenderableJob> = {}): RenderableJob {
  return {
    id: "j002",
    name: "demo-group",
    shape: "group",
    bodies,
    array: { count: bodies.length, offset: 0, throttle: null, chunk: 0, chunks: 1, total: bodies.length, indices: null },
    dependencies: [],
    resources: {},
    steps: bodies.flatMap((b) => b.steps.map((s) => s.key)),
    fused: null,
    scriptPath: "scripts/j002.sbatch",
    ...extra,
  };
}

export function mapJob(
  mapKey: string,
  itemKey: string,
  steps: PlanStep[],
  array: { count: number; offset?: number; throttle?: number | null; total?: number; indices?: number[] | null },
  extra: Partial<RenderableJob> & { continueOnItemError?: boolean } = {},
): RenderableJob {
  const { continueOnItemError = false, ...rest } = extra;
  return {
    id: "j003",
    name: "demo-map",
    shape: "map",
    bodies: [{ unitKey: `${mapKey}.{i}`, unitSignature: "fedcba987654", steps }],
    map: { key: mapKey, itemsFile: `items/${mapKey}.txt`, itemKey, continueOnItemError },
    array: {
      count: array.count,
      offset: array.offset ?? 0,
      throttle: array.throttle ?? null,
      chunk: 0,
      chunks: 1,
      total: array.total ?? array.count,
      indices: array.indices ?? null,
    },
    dependencies: [],
    resources: {},
    steps: steps.map((s) => s.key),
    fused: null,
    scriptPath: "scripts/j003.sbatch",
    ...rest,
  };
}

export const MINIMAL_CLUSTER: ClusterRenderSettings = { modules: [], setup: [], sbatch_options: [], signal_grace_s: 0 };

export const FULL_CLUSTER: ClusterRenderSettings = {
  modules: ["gcc/12.2", "blender/4.1"],
  setup: ["export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"", "umask 027"],
  sbatch_options: ["--mail-type=NONE", "--exclusive"],
  signal_grace_s: 90,
  partition: "compute",
  account: "proj-42",
  qos: "normal",
};

export function context(runDir: string, cluster: ClusterRenderSettings = MINIMAL_CLUSTER): JobRenderContext {
  return { runDir, runId: "r20261128-1", pipeline: "demo", cluster };
}

/** A packed map job: each array task runs `itemsPerTask` items (task t: items t*n .. t*n+n-1). */
export function packedMapJob(
  mapKey: string,
  itemKey: string,
  steps: PlanStep[],
  pack: { itemsPerTask: number; itemCpus?: number },
  array: { count: number; offset?: number; throttle?: number | null; total?: number; indices?: number[] | null },
  extra: Partial<RenderableJob> & { continueOnItemError?: boolean } = {},
): RenderableJob {
  const job = mapJob(mapKey, itemKey, steps, array, { id: "j005", name: "demo-packed", scriptPath: "scripts/j005.sbatch", ...extra });
  if (job.map !== undefined) job.map = { ...job.map, itemsPerTask: pack.itemsPerTask, itemCpus: pack.itemCpus ?? 1 };
  return job;
}
