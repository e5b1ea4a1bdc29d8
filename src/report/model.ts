/**
 * The data of a run report, built from what a finished run left behind: the
 * compiled plan (when there is one), the merged result, the run's facts, the
 * scheduler's times, log tails and image bytes. Pure: no I/O, no clock; the
 * app layer (src/app/report.ts) fetches, this module decides.
 */
import { formatBytes } from "../core/units.js";
import type { CompletedStateJson, FailureKind } from "../core/completed-state.js";
import { exitCodeFrom } from "../core/exit-code.js";
import type { PlanNode } from "../plan/plan.js";

/** How a node of the pipeline tree ended. */
export type Outcome = "ok" | "failed" | "skipped" | "not_run";

/** Lines of a failed step's log shown in the report. */
export const LOG_TAIL_LINES = 40;
/** Bytes read from the end of a log to find those lines. */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Characters kept of one log line. */
export const LOG_LINE_MAX_CHARS = 400;
/** Failed steps whose logs are fetched and shown (the others are listed without). */
export const MAX_LOG_TAILS = 50;
/** Failed steps listed in the errors section. */
export const MAX_ERRORS = 200;
/** Largest image embedded. */
export const IMAGE_MAX_BYTES = 5 * 1024 * 1024;
/** All embedded images together. */
export const IMAGES_TOTAL_MAX_BYTES = 50 * 1024 * 1024;
/** Images considered at all (each is one file to fetch). */
export const MAX_IMAGES = 100;
/** Rows of the timeline. */
export const MAX_TIMELINE_ROWS = 1000;
/** Items of one map shown in the tree (failed ones first); the rest are counted. */
export const MAX_MAP_ITEMS_SHOWN = 100;

const IMAGE_EXTENSIONS = /\.(png|jpe?g|gif|webp|svg)$/i;

/** The parts of a compiled plan the report uses (a `CompiledPlan` is one). */
export interface ReportPlan {
  tree: PlanNode;
  items: Record<string, string[]>;
}

/** What is known about the run itself. */
export interface RunFacts {
  kind: "cluster" | "local";
  runId: string;
  pipeline: string;
  cluster: string;
  /** 1 for a first submission; `submit --resume` adds one. */
  attempt: number;
  /** Cluster: when the record was written, just before submission. Local: when the run directory was prepared. ISO. */
  started: string | null;
  /** Where the run lives: the remote run directory, or the local one. */
  location: string;
  /** Cluster: the record's phase (`collected`, `cancelled`...). */
  phase?: string;
  /** Cluster: SLURM job id by plan job id, this attempt. */
  jobs?: Record<string, string>;
  /** Set when the result does not cover the whole run yet (jobs still running when it was collected). */
  partial?: string | null;
}

/** When and where one job or array task ran, as the scheduler recorded it (epoch milliseconds). */
export interface TaskTimes {
  submit: number | null;
  eligible: number | null;
  start: number | null;
  end: number | null;
  nodes: string | null;
}

/** The scheduler's times by the task's own SLURM job id, or why there are none. */
export type SchedulerTimes = { available: true; byJobId: ReadonlyMap<string, TaskTimes> } | { available: false; why: string };

export interface LogTail {
  stream: "stdout" | "stderr";
  /** Relative to the run directory (`logs/<key>.out`). */
  path: string;
  lines: string[];
  /** Earlier lines were left out. */
  truncated: boolean;
  /** Why there is no tail (no such file, a symlink, not fetched...); null when there is one. */
  missing: string | null;
}

/** An image output as fetched: its bytes, or why it could not be (too large, absent, outside the run...). */
export type FetchedImage = { bytes: Buffer } | { note: string };

export interface ReportInput {
  plan: ReportPlan | null;
  result: CompletedStateJson;
  run: RunFacts;
  scheduler: SchedulerTimes | null;
  /** Tails by step key (see logTargets). */
  logs: ReadonlyMap<string, LogTail[]>;
  /** Image outputs by path relative to the work directory (see imageTargets). */
  images: ReadonlyMap<string, FetchedImage>;
  /** Why logs and images were not fetched at all (`--offline`), if so. */
  notFetched?: string | null;
  /** When the report was made (ISO); passed in so the model stays pure. */
  generated: string;
}

export interface TreeNode {
  key: string;
  name: string;
  kind: "pipeline" | "group" | "map" | "item" | "step" | "composite";
  outcome: Outcome;
  /** Its failure does not fail its parent (continue_on_error, continue_on_item_error). */
  allowed: boolean;
  /** A map item's value. */
  item: string | null;
  duration_s: number | null;
  failure: FailureKind | null;
  error: string | null;
  host: string | null;
  /** `24610_1` for an array task, `24609` for a plain job. */
  slurmId: string | null;
  /** The scheduler's state and reason for a step that did not run (`CANCELLED (DependencyNeverSatisfied)`). */
  reason: string | null;
  /** Attempt a skipped step's result comes from. */
  fromAttempt: number | null;
  children: TreeNode[];
  /** Items of a map left out of the tree, by outcome. */
  omitted: { count: number; byOutcome: Record<Outcome, number> } | null;
}

export interface TimelineRow {
  key: string;
  outcome: Outcome;
  host: string | null;
  slurmId: string | null;
  /** Epoch ms. */
  start: number;
  end: number;
  /** Where the wait bar starts (submission, or the run's start); null for later steps of the same task. */
  waitFrom: number | null;
  /** Seconds the task waited before it started; null when not known or not this row's. */
  wait_s: number | null;
  /** Of the wait, seconds spent waiting for dependencies (before the task became eligible). */
  dependency_s: number | null;
}

export interface Timeline {
  rows: TimelineRow[];
  /** Epoch ms of the left edge and the right edge. */
  from: number;
  to: number;
  /** How queue waits were measured, in one sentence for the page. */
  waitNote: string;
  /** Queue waits are estimates. */
  approximate: boolean;
  /** Rows left out (over MAX_TIMELINE_ROWS). */
  omitted: number;
  /** Steps reused from an earlier attempt (not drawn). */
  skipped: number;
}

export interface ErrorEntry {
  key: string;
  failure: FailureKind | null;
  error: string;
  exitCode: number | null;
  host: string | null;
  slurmId: string | null;
  reason: string | null;
  notRun: boolean;
  allowed: boolean;
  logs: LogTail[];
}

export interface ImageEntry {
  /** The step that declared it. */
  key: string;
  /** Relative to the work directory, as declared. */
  path: string;
  /** `data:image/png;base64,...` (only for bytes whose signature is a known raster format), or null with a note. */
  dataUri: string | null;
  mime: string | null;
  bytes: number | null;
  note: string | null;
}

export interface ReportModel {
  runId: string;
  pipeline: string;
  kind: "cluster" | "local";
  cluster: string;
  attempt: number;
  location: string;
  phase: string | null;
  success: boolean;
  failure: FailureKind | null;
  error: string | null;
  exitCode: number;
  started: string | null;
  finished: string | null;
  wall_s: number | null;
  generated: string;
  counts: Record<Outcome, number>;
  tree: TreeNode;
  timeline: Timeline;
  errors: ErrorEntry[];
  /** Failed steps beyond MAX_ERRORS. */
  errorsOmitted: number;
  images: ImageEntry[];
  /** Sentences for the top of the page (partial result, approximate waits, what was not fetched). */
  notes: string[];
}

// ---------------------------------------------------------------------------- reading states

type State = CompletedStateJson;

function str(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The wrapper's SLURM facts of a state (`meta.slurm`), checked. */
export function slurmOf(state: State | undefined): { jobId: string; arrayJobId: string | null; arrayTaskId: string | null } | null {
  const slurm = record(state?.meta.slurm);
  const jobId = str(slurm?.job_id);
  if (jobId === null) return null;
  return { jobId, arrayJobId: str(slurm?.array_job_id), arrayTaskId: str(slurm?.array_task_id) };
}

/** `24610_1` for an array task, else the job id; for a step that never ran, the id the collector recorded. */
export function slurmIdOf(state: State | undefined): string | null {
  const s = slurmOf(state);
  if (s !== null) return s.arrayJobId !== null && s.arrayTaskId !== null ? `${s.arrayJobId}_${s.arrayTaskId}` : s.jobId;
  const recorded = str(state?.meta.slurm_job_id);
  const task = num(state?.meta.task);
  if (recorded === null) return null;
  return task !== null ? `${recorded} (task ${task})` : recorded;
}

function isNotRun(state: State | undefined): boolean {
  return state?.meta.not_run === true;
}

function attemptOf(state: State | undefined): number | null {
  return num(state?.meta.attempt);
}

function outcomeOf(state: State | undefined, attempt: number): Outcome {
  if (state === undefined || isNotRun(state)) return "not_run";
  if (!state.success) return "failed";
  const from = attemptOf(state);
  return from !== null && from < attempt ? "skipped" : "ok";
}

function reasonOf(state: State | undefined): string | null {
  if (state === undefined) return "no result: it was not started";
  const slurmState = str(state.meta.slurm_state);
  const slurmReason = str(state.meta.slurm_reason);
  if (slurmState !== null) return slurmReason !== null ? `${slurmState} (${slurmReason})` : slurmState;
  return str(state.meta.reason);
}

// ---------------------------------------------------------------------------- the tree

interface Walk {
  states: Record<string, State>;
  root: State;
  rootKey: string;
  attempt: number;
  items: Record<string, string[]>;
  /** Leaf keys in tree order (every leaf, shown or not). */
  leaves: string[];
  /** Whether each node's failure is allowed, shown or not. */
  allowed: Map<string, boolean>;
}

function treeNode(key: string, name: string, kind: TreeNode["kind"], state: State | undefined, allowed: boolean, attempt: number): TreeNode {
  const outcome = outcomeOf(state, attempt);
  return {
    key,
    name,
    kind,
    outcome,
    allowed: allowed && outcome === "failed",
    item: str(state?.meta.item),
    duration_s: state === undefined || isNotRun(state) ? null : state.duration_s,
    failure: state?.failure ?? null,
    error: state?.error ?? (state === undefined ? "no result: it was not started" : null),
    host: str(state?.meta.host),
    slurmId: slurmIdOf(state),
    reason: outcome === "not_run" ? reasonOf(state) : null,
    fromAttempt: outcome === "skipped" ? attemptOf(state) : null,
    children: [],
    omitted: null,
  };
}

function emptyCounts(): Record<Outcome, number> {
  return { ok: 0, failed: 0, skipped: 0, not_run: 0 };
}

/** Keeps at most MAX_MAP_ITEMS_SHOWN items: failed ones first, then the others in order; counts the rest. */
function trimItems(node: TreeNode): void {
  if (node.children.length <= MAX_MAP_ITEMS_SHOWN) return;
  const rank = (n: TreeNode): number => (n.outcome === "failed" ? 0 : n.outcome === "not_run" ? 1 : 2);
  const chosen = new Set([...node.children].sort((a, b) => rank(a) - rank(b)).slice(0, MAX_MAP_ITEMS_SHOWN));
  const byOutcome = emptyCounts();
  let count = 0;
  for (const c of node.children) {
    if (chosen.has(c)) continue;
    byOutcome[c.outcome] += 1;
    count += 1;
  }
  node.children = node.children.filter((c) => chosen.has(c));
  node.omitted = { count, byOutcome };
}

/** The concrete key of a plan child under a concrete parent key (a map's `{i}` replaced), as the merger computes it. */
function concreteChildKey(child: PlanNode, parentTemplate: string, parentKey: string): string {
  return child.key.startsWith(`${parentTemplate}.`) ? parentKey + child.key.slice(parentTemplate.length) : `${parentKey}.${child.name}`;
}

function walkPlan(node: PlanNode, key: string, allowed: boolean, w: Walk, itemName?: string): TreeNode {
  const state = key === w.rootKey ? w.root : w.states[key];
  const kind: TreeNode["kind"] = itemName !== undefined ? "item" : node.kind;
  const out = treeNode(key, itemName ?? node.name, kind, state, allowed, w.attempt);
  w.allowed.set(key, out.allowed);
  if (node.kind === "step") {
    w.leaves.push(key);
    return out;
  }
  if (node.kind === "map" && itemName === undefined) {
    const values = w.items[node.key] ?? [];
    const count = node.items ?? values.length;
    const template = `${node.key}.{i}`;
    const only = node.children.length === 1 ? node.children[0] : undefined;
    const itemNode: PlanNode =
      only !== undefined && only.key === template
        ? only
        : { ...node, key: template, name: "{i}", kind: "pipeline", children: node.children };
    const itemAllowed = node.continue_on_item_error ?? itemNode.continue_on_error;
    for (let i = 0; i < count; i++) {
      const child = walkPlan(itemNode, `${key}.${i}`, itemAllowed, w, String(i));
      if (child.item === null && values[i] !== undefined) child.item = values[i] ?? null;
      out.children.push(child);
    }
    trimItems(out);
    return out;
  }
  for (const child of node.children) {
    out.children.push(walkPlan(child, concreteChildKey(child, node.key, key), child.continue_on_error, w));
  }
  return out;
}

/** A tree from the result's keys alone (a run directory without plan.json): kinds are guessed from the key shapes. */
function treeFromKeys(w: Walk): TreeNode {
  interface Trie {
    key: string;
    name: string;
    children: Map<string, Trie>;
  }
  const root: Trie = { key: w.rootKey, name: w.rootKey, children: new Map() };
  for (const key of Object.keys(w.states)) {
    if (!key.startsWith(`${w.rootKey}.`)) continue;
    let at = root;
    for (const segment of key.slice(w.rootKey.length + 1).split(".")) {
      let next = at.children.get(segment);
      if (next === undefined) {
        next = { key: `${at.key}.${segment}`, name: segment, children: new Map() };
        at.children.set(segment, next);
      }
      at = next;
    }
  }
  const isIndex = (s: string): boolean => /^\d+$/.test(s);
  const build = (t: Trie, parentIsMap: boolean): TreeNode => {
    const children = [...t.children.values()];
    const isMap = children.length > 0 && children.every((c) => isIndex(c.name));
    if (isMap) children.sort((a, b) => Number(a.name) - Number(b.name));
    const kind: TreeNode["kind"] = parentIsMap ? "item" : children.length === 0 ? "step" : isMap ? "map" : "composite";
    const state = t.key === w.rootKey ? w.root : w.states[t.key];
    const parentKey = t.key.slice(0, t.key.lastIndexOf("."));
    const parent = parentKey === w.rootKey ? w.root : w.states[parentKey];
    const listed = parent?.meta.failed_allowed;
    const node = treeNode(t.key, t.name, kind, state, Array.isArray(listed) && listed.includes(t.key), w.attempt);
    w.allowed.set(t.key, node.allowed);
    if (kind === "step") w.leaves.push(t.key);
    node.children = children.map((c) => build(c, isMap));
    if (isMap) trimItems(node);
    return node;
  };
  const tree = build(root, false);
  tree.kind = "pipeline";
  return tree;
}

// ---------------------------------------------------------------------------- what to fetch

/** The step keys whose logs the report shows: failed leaf steps that may have run, at most MAX_LOG_TAILS, in tree order. */
export function logTargets(plan: ReportPlan | null, result: CompletedStateJson, attempt = 1): string[] {
  const { leaves, states } = leafWalk(plan, result, attempt);
  return leaves
    .filter((key) => {
      const s = states[key];
      if (s === undefined || s.success) return false;
      // A step whose job never started has no log; one killed before it wrote its state (TIMEOUT, NODE_FAIL) may.
      return !(isNotRun(s) && (s.meta.slurm_reason === "DependencyNeverSatisfied" || /^(CANCELLED|PENDING)/.test(str(s.meta.slurm_state) ?? "")));
    })
    .slice(0, MAX_LOG_TAILS);
}

/** Logs of a step, relative to the run directory; null when the key could name a file outside `logs/`. */
export function logPaths(key: string): { stdout: string; stderr: string } | null {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/.test(key) || key.length > 1024) return null;
  return { stdout: `logs/${key}.out`, stderr: `logs/${key}.err` };
}

/**
 * An output path the report may read: relative, inside the work directory,
 * no `..`, no control characters; returned normalised (no `./`, single `/`).
 * Null otherwise (absolute outputs are not fetched: they may be anywhere).
 */
export function safeOutputPath(path: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (path === "" || path.length > 1024 || /[\u0000-\u001f\u007f\\]/.test(path) || path.startsWith("/") || path.startsWith("~")) return null;
  const segments = path.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.length === 0 || segments.some((s) => s === "..")) return null;
  return segments.join("/");
}

/** The image outputs of the run's steps, in tree order: the declared outputs that existed, with an image extension. */
export function imageTargets(plan: ReportPlan | null, result: CompletedStateJson, attempt = 1): Array<{ key: string; path: string }> {
  const { leaves, states } = leafWalk(plan, result, attempt);
  const seen = new Set<string>();
  const out: Array<{ key: string; path: string }> = [];
  for (const key of leaves) {
    const files = states[key]?.outputs.files;
    if (!Array.isArray(files)) continue;
    for (const file of files) {
      if (typeof file !== "string" || !IMAGE_EXTENSIONS.test(file) || seen.has(file)) continue;
      seen.add(file);
      out.push({ key, path: file });
    }
  }
  return out.slice(0, MAX_IMAGES);
}

function leafWalk(plan: ReportPlan | null, result: CompletedStateJson, attempt: number): { leaves: string[]; states: Record<string, State> } {
  const w = walkState(plan, result, attempt);
  if (plan !== null) walkPlan(plan.tree, plan.tree.key, false, w);
  else treeFromKeys(w);
  return { leaves: w.leaves, states: w.states };
}

function rootKeyOf(plan: ReportPlan | null, result: CompletedStateJson, fallback: string): string {
  if (plan !== null) return plan.tree.key;
  const first = Object.keys(result.step_states ?? {})[0];
  return first !== undefined ? (first.split(".")[0] ?? fallback) : fallback;
}

function walkState(plan: ReportPlan | null, result: CompletedStateJson, attempt: number, fallbackRoot = "pipeline"): Walk {
  return {
    states: result.step_states ?? {},
    root: result,
    rootKey: rootKeyOf(plan, result, fallbackRoot),
    attempt,
    items: plan?.items ?? {},
    leaves: [],
    allowed: new Map(),
  };
}

// ---------------------------------------------------------------------------- logs and images

// CSI and OSC escape sequences, then any other control character but tab.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/**
 * The last `LOG_TAIL_LINES` lines of a log's end. `cutAtStart` says the bytes
 * do not begin at the start of the file (so the first line may be partial and
 * is dropped). Terminal escapes and control characters are removed; long lines
 * are shortened. The lines are text for the page, escaped by the renderer.
 */
export function tailLines(bytes: Buffer, cutAtStart: boolean, stream: LogTail["stream"], path: string): LogTail {
  let lines = bytes.toString("utf8").replace(/\r\n/g, "\n").replace(/\r/g, "\n").split("\n");
  if (cutAtStart && lines.length > 1) lines = lines.slice(1);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const truncated = cutAtStart || lines.length > LOG_TAIL_LINES;
  lines = lines.slice(-LOG_TAIL_LINES).map((line) => {
    const clean = line.replace(ANSI, "").replace(CONTROL, "\uFFFD");
    return clean.length > LOG_LINE_MAX_CHARS ? `${clean.slice(0, LOG_LINE_MAX_CHARS)}… (${clean.length - LOG_LINE_MAX_CHARS} more characters)` : clean;
  });
  return { stream, path, lines, truncated, missing: null };
}

/** The MIME type of a raster image from its first bytes; null for anything else (SVG included: it can carry scripts). */
export function imageMime(bytes: Buffer): string | null {
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return "image/png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
  if (bytes.length >= 6 && /^GIF8[79]a$/.test(bytes.toString("latin1", 0, 6))) return "image/gif";
  if (bytes.length >= 12 && bytes.toString("latin1", 0, 4) === "RIFF" && bytes.toString("latin1", 8, 12) === "WEBP") return "image/webp";
  return null;
}


function imageEntries(targets: Array<{ key: string; path: string }>, fetched: ReadonlyMap<string, FetchedImage>, notFetched: string | null): ImageEntry[] {
  let total = 0;
  return targets.map(({ key, path }) => {
    const entry: ImageEntry = { key, path, dataUri: null, mime: null, bytes: null, note: null };
    if (/\.svg$/i.test(path)) {
      entry.note = "SVG images are not embedded (an SVG can carry scripts); open the file itself";
      return entry;
    }
    if (safeOutputPath(path) === null) {
      entry.note = "not embedded: the path is outside the run's work directory";
      return entry;
    }
    const got = fetched.get(path);
    if (got === undefined) {
      entry.note = notFetched ?? "not fetched";
      return entry;
    }
    if ("note" in got) {
      entry.note = got.note;
      return entry;
    }
    entry.bytes = got.bytes.length;
    if (got.bytes.length > IMAGE_MAX_BYTES) {
      entry.note = `not embedded: ${formatBytes(got.bytes.length)} is over the ${formatBytes(IMAGE_MAX_BYTES)} limit per image`;
      return entry;
    }
    if (total + got.bytes.length > IMAGES_TOTAL_MAX_BYTES) {
      entry.note = `not embedded: the report already holds ${formatBytes(total)} of images (limit ${formatBytes(IMAGES_TOTAL_MAX_BYTES)})`;
      return entry;
    }
    const mime = imageMime(got.bytes);
    if (mime === null) {
      entry.note = "not embedded: the file is not a PNG, JPEG, GIF or WebP image";
      return entry;
    }
    total += got.bytes.length;
    entry.mime = mime;
    entry.dataUri = `data:${mime};base64,${got.bytes.toString("base64")}`;
    return entry;
  });
}

// ---------------------------------------------------------------------------- timeline

function timeline(leaves: string[], states: Record<string, State>, input: ReportInput): Timeline {
  const { run, scheduler } = input;
  const rows: TimelineRow[] = [];
  let skipped = 0;
  for (const key of leaves) {
    const s = states[key];
    if (s === undefined || isNotRun(s)) continue;
    const outcome = outcomeOf(s, run.attempt);
    if (outcome === "skipped") {
      skipped += 1;
      continue;
    }
    const start = Date.parse(s.timestamp);
    if (Number.isNaN(start)) continue;
    rows.push({
      key,
      outcome,
      host: str(s.meta.host),
      slurmId: slurmIdOf(s),
      start,
      end: start + s.duration_s * 1000,
      waitFrom: null,
      wait_s: null,
      dependency_s: null,
    });
  }
  rows.sort((a, b) => a.start - b.start || a.key.localeCompare(b.key));

  const runStart = run.started === null ? Number.NaN : Date.parse(run.started);
  const sacct = scheduler?.available === true ? scheduler.byJobId : null;
  let approximate = false;
  let waitNote: string;
  if (run.kind === "local") {
    waitNote = "Local run: a task's wait is the time from the start of the run to the task's start (waiting for its dependencies and a free CPU).";
  } else if (sacct !== null) {
    waitNote = "Queue waits come from the scheduler (sacct): from submission to the task's start, including the time spent waiting for dependencies.";
  } else if (Number.isNaN(runStart)) {
    approximate = true;
    const why = scheduler?.available === false ? ` (${scheduler.why})` : "";
    waitNote = `Queue waits are not shown: the scheduler's times were not available${why}, and when this attempt was submitted is not recorded.`;
  } else {
    approximate = true;
    const why = scheduler?.available === false ? ` (${scheduler.why})` : "";
    waitNote = `Queue waits are approximate: the scheduler's times were not available${why}, so a task's wait is measured from when the run was submitted to its first step's start.`;
  }

  // The first step of each task (by its own SLURM job id) carries the task's wait.
  const firstOfTask = new Set<TimelineRow>();
  const seenTasks = new Set<string>();
  for (const row of rows) {
    const own = slurmOf(states[row.key])?.jobId ?? `row:${row.key}`;
    if (seenTasks.has(own)) continue;
    seenTasks.add(own);
    firstOfTask.add(row);
    const times = sacct?.get(own);
    if (times !== undefined && times.submit !== null) {
      const began = times.start ?? row.start;
      row.waitFrom = times.submit;
      row.wait_s = Math.max(0, (began - times.submit) / 1000);
      row.dependency_s = times.eligible !== null && times.eligible > times.submit ? Math.min(row.wait_s, (times.eligible - times.submit) / 1000) : 0;
      if (row.host === null && times.nodes !== null) row.host = times.nodes;
    } else if (!Number.isNaN(runStart)) {
      row.waitFrom = Math.min(runStart, row.start);
      row.wait_s = Math.max(0, (row.start - runStart) / 1000);
      if (run.kind === "cluster" && sacct !== null) approximate = true;
    }
  }
  if (approximate && sacct !== null) {
    waitNote += " Some tasks had no scheduler record; their waits are measured from the submission of the run.";
  }

  const omitted = Math.max(0, rows.length - MAX_TIMELINE_ROWS);
  const shown = rows.slice(0, MAX_TIMELINE_ROWS);
  const points = shown.flatMap((r) => [r.start, r.end, ...(r.waitFrom !== null ? [r.waitFrom] : [])]);
  const from = points.length > 0 ? Math.min(...points) : 0;
  const to = points.length > 0 ? Math.max(...points) : 0;
  return { rows: shown, from, to: Math.max(to, from + 1), waitNote, approximate, omitted, skipped };
}

// ---------------------------------------------------------------------------- the model

function countLeaves(node: TreeNode, counts: Record<Outcome, number>): void {
  if (node.kind === "step" || (node.children.length === 0 && node.kind !== "map" && node.kind !== "item")) counts[node.outcome] += 1;
  for (const c of node.children) countLeaves(c, counts);
}

/** A failure is tolerated when its node, or a node above it (a map item, a group child), may fail. */
function toleratedAbove(key: string, allowed: ReadonlyMap<string, boolean>): boolean {
  for (let k = key; k.length > 0; k = k.includes(".") ? k.slice(0, k.lastIndexOf(".")) : "") {
    if (allowed.get(k) === true) return true;
  }
  return false;
}

/** Builds the report's model; pure. */
export function buildReportModel(input: ReportInput): ReportModel {
  const { plan, result, run } = input;
  const w = walkState(plan, result, run.attempt, run.pipeline);
  const tree = plan !== null ? walkPlan(plan.tree, plan.tree.key, false, w) : treeFromKeys(w);
  const states = w.states;

  const counts = emptyCounts();
  for (const key of w.leaves) counts[outcomeOf(states[key], run.attempt)] += 1;
  if (w.leaves.length === 0) countLeaves(tree, counts);

  const failedLeaves = w.leaves.filter((k) => states[k] !== undefined && !states[k].success);
  const errors: ErrorEntry[] = failedLeaves.slice(0, MAX_ERRORS).map((key) => {
    const s = states[key] as State;
    return {
      key,
      failure: s.failure ?? null,
      error: s.error ?? "failed",
      exitCode: num(s.meta.exit_code),
      host: str(s.meta.host),
      slurmId: slurmIdOf(s),
      reason: isNotRun(s) ? reasonOf(s) : str(s.meta.reason),
      notRun: isNotRun(s),
      allowed: toleratedAbove(key, w.allowed),
      logs: input.logs.get(key) ?? [],
    };
  });
  // A failure no leaf explains (unusable state files, a composite that did not finish): the root's own error.
  if (!result.success && failedLeaves.length === 0) {
    errors.push({
      key: w.rootKey,
      failure: result.failure ?? null,
      error: result.error ?? "failed",
      exitCode: null,
      host: null,
      slurmId: null,
      reason: null,
      notRun: isNotRun(result),
      allowed: false,
      logs: [],
    });
  }

  const line = timeline(w.leaves, states, input);
  const ends = line.rows.map((r) => r.end);
  const starts = line.rows.map((r) => r.start);
  const started = run.started ?? (starts.length > 0 ? new Date(Math.min(...starts)).toISOString() : null);
  const finished = ends.length > 0 ? new Date(Math.max(...ends)).toISOString() : null;
  const wall_s = started !== null && finished !== null ? Math.max(0, (Date.parse(finished) - Date.parse(started)) / 1000) : null;

  const notes: string[] = [];
  if (run.partial) notes.push(`This result is partial: ${run.partial}.`);
  if (line.approximate) notes.push(line.waitNote);
  if (input.notFetched) notes.push(input.notFetched);
  if (plan === null) notes.push("The run directory has no plan.json: the tree is rebuilt from the result's step keys (group and pipeline kinds unknown).");
  const omittedErrors = Math.max(0, failedLeaves.length - MAX_ERRORS);
  const missingLogs = failedLeaves.length > MAX_LOG_TAILS ? failedLeaves.length - MAX_LOG_TAILS : 0;
  if (missingLogs > 0) notes.push(`${failedLeaves.length} steps failed; log tails are shown for the first ${MAX_LOG_TAILS} (see \`hpcpipe logs\` for the others).`);

  return {
    runId: run.runId,
    pipeline: run.pipeline,
    kind: run.kind,
    cluster: run.cluster,
    attempt: run.attempt,
    location: run.location,
    phase: run.phase ?? null,
    success: result.success,
    failure: result.failure ?? null,
    error: result.error,
    exitCode: exitCodeFrom({ success: result.success, failure: result.failure ?? null }),
    started,
    finished,
    wall_s,
    generated: input.generated,
    counts,
    tree,
    timeline: line,
    errors,
    errorsOmitted: omittedErrors,
    images: imageEntries(imageTargets(plan, result, run.attempt), input.images, input.notFetched ?? null),
    notes,
  };
}
