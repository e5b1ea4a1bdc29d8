/**
 * The phase that builds job drafts (jobs without their script text) from
 * the fused segments, in submission order: one plain job per segment of
 * leaves, one array per group or map (packed when asked), chunked to the
 * cluster's MaxArraySize, each waiting on what came before it.
 */
import type { ArraySpec, Dependency, PlanGroupPack, PlanJob, PlanMap, TaskBody } from "../plan/plan.js";
import type { Resources } from "../plan/resources.js";
import { groupPackingOf, throttleOf } from "../spec/annotations.js";
import { chunkArray } from "./chunk.js";
import type { Chunk } from "./chunk.js";
import type { Segment } from "./fusion.js";
import { combineResources, sequenceResources, sumTime } from "./job-resources.js";
import { resolvePacking } from "./packing.js";
import { addControllers } from "./retries.js";
import type { CompileTarget } from "./target.js";
import { isComposite } from "./tree.js";
import { refuseBatch, taskLeaves } from "./units.js";
import type { GroupUnit, LeafContext, LeafUnit, MapUnit } from "./units.js";

/** A plan job before its script is rendered. */
export type JobDraft = Omit<PlanJob, "script">;

/** The jobs in submission order (ids j000, j001, ... by position) and the items of every map, by map key. */
export interface Drafts {
  jobs: JobDraft[];
  items: Record<string, string[]>;
  itemHashes: Record<string, string[]>;
}

/** One logical array before chunking: `total` tasks running `bodies`. */
export interface ArrayRequest {
  label: string;
  shape: "group" | "map";
  bodies: TaskBody[];
  total: number;
  throttle: number | null;
  resources: Resources;
  map?: PlanMap;
  groupPack?: PlanGroupPack;
}

export function buildDrafts(segments: readonly Segment[], target: CompileTarget, cx: LeafContext): Drafts {
  const drafts: Drafts = { jobs: [], items: {}, itemHashes: {} };
  addSequence(drafts, segments, [], target, cx);
  return drafts;
}

/** Adds the jobs of a sequence of segments, each waiting on the one before; returns what its successor waits on. */
function addSequence(drafts: Drafts, segments: readonly Segment[], incoming: Dependency[], target: CompileTarget, cx: LeafContext): Dependency[] {
  let current = incoming;
  for (const segment of segments) {
    if (segment.type === "single") {
      const only = segment.leaves.length === 1 ? segment.leaves[0] : undefined;
      current = addControllers(drafts.jobs, addSingleJob(drafts.jobs, segment.leaves, current), only?.retry, only?.leaf.key ?? "", target, cx.problems);
    } else if (segment.type === "block") current = addSequence(drafts, segment.segments, current, target, cx).map((d) => ({ ...d, type: "afterany" as const }));
    else if (segment.type === "group") current = addArrayJobs(drafts.jobs, groupArray(segment, target, cx), current, target.maxArraySize);
    else current = addControllers(drafts.jobs, addArrayJobs(drafts.jobs, mapArray(drafts, segment, target, cx), current, target.maxArraySize), segment.retry, segment.key, target, cx.problems);
  }
  return current;
}

const nextId = (jobs: readonly JobDraft[]): string => `j${String(jobs.length).padStart(3, "0")}`;
const copyDeps = (incoming: Dependency[]): Dependency[] => incoming.map((d) => ({ ...d }));

function jobName(id: string, label: string): string {
  return `hp-${id}-${label}`.slice(0, 64);
}

/** One plain job running `leaves` in order (a fusion when more than one). */
export function addSingleJob(jobs: JobDraft[], leaves: readonly LeafUnit[], incoming: Dependency[]): Dependency[] {
  const first = leaves[0];
  if (!first) return incoming;
  const id = nextId(jobs);
  const steps = leaves.map((u) => u.leaf);
  const resources = leaves.length === 1 ? first.resources : sumTime(leaves.map((u) => u.resources));
  jobs.push({
    id,
    name: jobName(id, first.leaf.name),
    shape: "single",
    bodies: [{ unitKey: null, steps }],
    array: null,
    dependencies: copyDeps(incoming),
    resources,
    steps: steps.map((s) => s.key),
    fused: steps.length > 1 ? steps.map((s) => s.key) : null,
    scriptPath: `scripts/${id}.sbatch`,
  });
  return [{ job: id, type: leaves.length === 1 && first.coe ? "afterany" : "afterok" }];
}

/**
 * The jobs of one logical array: chunks of at most `maxArraySize` tasks, each
 * indexed from 0 with its offset, sharing the throttle (see chunkArray); a
 * chunk that must wait for an earlier one depends on it with afterany.
 * Nothing for an empty array (its successor waits on `incoming`).
 */
export function addArrayJobs(jobs: JobDraft[], request: ArrayRequest, incoming: Dependency[], maxArraySize: number): Dependency[] {
  const { label, shape, bodies, total, throttle, resources, map, groupPack } = request;
  if (total === 0) return incoming;
  const chunks = chunkArray(total, maxArraySize, throttle);
  const ids: string[] = [];
  for (const chunk of chunks) {
    const id = nextId(jobs);
    ids.push(id);
    const chunkDeps = copyDeps(incoming);
    if (chunk.after !== null) chunkDeps.push({ job: ids[chunk.after] ?? "", type: "afterany" });
    const stepKeys = [...new Set(bodies.flatMap((b) => b.steps.map((s) => s.key)))];
    jobs.push({
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
}

function arraySpec(chunk: Chunk, total: number): ArraySpec {
  return { count: chunk.count, offset: chunk.offset, throttle: chunk.throttle, chunk: chunk.chunk, chunks: chunk.chunks, total, indices: null };
}

/** A parallel group's array: task i runs child i (or, packed, several children), all with the largest request of any child. */
function groupArray(unit: GroupUnit, target: CompileTarget, cx: LeafContext): ArrayRequest {
  const where = `parallel group ${unit.key}`;
  const perChild = unit.step.children.map((child) => {
    const childKey = `${unit.key}.${child.name}`;
    const leaves = taskLeaves(child, childKey, where, cx);
    for (const l of leaves) refuseBatch(l.leaf, where, cx.problems);
    return { child, childKey, leaves };
  });
  const bodies: TaskBody[] = perChild.map(({ child, childKey, leaves }) => ({
    unitKey: isComposite(child) ? childKey : null,
    continue_on_error: child.continue_on_error,
    steps: leaves.map((l) => l.leaf),
  }));
  const perTask = perChild.map((c) => sequenceResources(c.leaves.map((l) => l.resources), unit.key, cx.problems));
  const resources = combineResources(perTask, unit.key, cx.problems);
  const throttle = throttleOf(unit.step);
  const pack = resolvePacking(unit.key, groupPackingOf(unit.step), bodies.length, resources, throttle, cx.problems);
  const base = { label: unit.step.name, shape: "group" as const, bodies };
  if (pack === null) return { ...base, total: bodies.length, throttle: throttle ?? target.arrayThrottle, resources };
  return {
    ...base,
    total: pack.tasks,
    throttle: pack.throttle ?? target.arrayThrottle,
    resources: pack.resources,
    groupPack: { itemsPerTask: pack.itemsPerTask, itemCpus: pack.itemCpus },
  };
}

/** A map's array: task i runs item i (or, packed, several items) through the map's steps; records the map's items in `drafts`. */
function mapArray(drafts: Drafts, unit: MapUnit, target: CompileTarget, cx: LeafContext): ArrayRequest {
  const m = unit.step;
  const itemKey = `${unit.key}.{i}`;
  const leaves = m.children.flatMap((c) => taskLeaves(c, `${itemKey}.${c.name}`, `map ${unit.key}`, cx, false));
  drafts.items[unit.key] = [...m.items];
  if (m.itemHashes) drafts.itemHashes[unit.key] = [...m.itemHashes];
  const body: TaskBody = { unitKey: itemKey, continue_on_error: m.continue_on_item_error, steps: leaves.map((l) => l.leaf) };
  const resources = sequenceResources(leaves.map((l) => l.resources), unit.key, cx.problems);
  const map: PlanMap = { key: unit.key, itemsFile: `items/${unit.key}.txt`, itemKey: m.as, continueOnItemError: m.continue_on_item_error };
  const throttle = throttleOf(m);
  const pack = resolvePacking(unit.key, m.packing ?? null, m.items.length, resources, throttle, cx.problems);
  const base = { label: m.name, shape: "map" as const, bodies: [body] };
  if (pack === null) return { ...base, total: m.items.length, throttle: throttle ?? target.arrayThrottle, resources, map };
  return {
    ...base,
    total: pack.tasks,
    throttle: pack.throttle ?? target.arrayThrottle,
    resources: pack.resources,
    map: { ...map, itemsPerTask: pack.itemsPerTask, itemCpus: pack.itemCpus },
  };
}
