/**
 * Loads a YAML pipeline spec into the core's objects: a Pipeline of
 * CommandSteps, StepGroups, nested Pipelines and MapSteps. A malformed spec
 * throws a SpecError naming the file, the path of the field and what was
 * expected; nothing is built half-way.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, isAbsolute, normalize, resolve } from "node:path";
import { Pipeline } from "../core/pipeline.js";
import { preview } from "../core/preview.js";
import { StepGroup } from "../core/step-group.js";
import { StepDefinitionError } from "../core/step.js";
import type { PipelineStep } from "../core/step.js";
import type { Resources } from "../plan/resources.js";
import type { StagedFile } from "../store/staging.js";
import { noFuse, withPacking, withRetries, withThrottle } from "./annotations.js";
import { CommandStep } from "./command-step.js";
import { contextKeyProblem } from "./context-keys.js";
import { resolveItemFiles } from "./item-files.js";
import type { ItemPath } from "./item-files.js";
import { forEachItemLine } from "./items-file.js";
import { itemProblem, MapStep } from "./map-step.js";
import { ENTRY_SCHEMAS, SPEC_ENTRY_KINDS, specDocumentSchema } from "./schema.js";
import type { CommandEntry, GroupEntry, MapEntry, PipelineEntry, SpecDocument, SpecEntry, SpecEntryKind } from "./schema.js";
import { describeValue, errorText, FieldError, formatPath, parseWith, problemAt, readYamlFile } from "./source.js";
import type { FieldProblem, PathSegment, YamlSource } from "./source.js";

/** A malformed pipeline spec: `file`, the `path` of the field (e.g. `steps[2].steps[0].run`) and what was `expected`. */
export class SpecError extends FieldError {
  override name = "SpecError";
}

export interface LoadSpecOptions {
  /** `--set key=value`: overrides or extends the spec's context (keys are checked like the spec's). */
  set?: Record<string, string>;
}

export interface LoadedSpec {
  /** The root pipeline, built from real core objects. */
  pipeline: Pipeline;
  /** The validated document (map entries carry their items, also when read from items_file). */
  spec: SpecDocument;
  /** Absolute directory of the spec file: items_file and bundle paths are relative to it. */
  specDir: string;
  /** The initial context: the spec's `context` with `--set` values applied. */
  context: Record<string, string | number | boolean>;
  /** Files and directories (relative to specDir, normalised) to copy into the run's work directory. */
  bundle: string[];
  /** The spec's resource defaults (empty when none). */
  defaults: Resources;
  /**
   * Local files that map items name (`items_glob`, `stage_items`) and their
   * `stage_with` files, hashed, keyed `work/inputs/<map>/<layout>`: staged
   * into the run like the bundle. Empty when no map stages files.
   */
  inputs: StagedFile[];
}

/** Most items a map may have (one array task each). */
export const MAX_MAP_ITEMS = 1_000_000;

/** Reads, validates and builds the spec at `path`. Throws SpecError. */
export function loadSpec(path: string, options: LoadSpecOptions = {}): LoadedSpec {
  const source = readYamlFile(path, (problems) => new SpecError(path, problems));
  return buildSpec(source.value, path, options, source);
}

/**
 * Builds a spec from an already-parsed object (for tests and programmatic
 * use). `file` names the spec in errors; items_file and bundle paths are
 * relative to its directory.
 */
export function pipelineFromSpecObject(obj: unknown, file: string, options: LoadSpecOptions = {}): LoadedSpec {
  return buildSpec(obj, file, options);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function buildSpec(obj: unknown, file: string, options: LoadSpecOptions, source?: YamlSource): LoadedSpec {
  const specDir = resolve(dirname(file));
  const problems: FieldProblem[] = [];
  const fail = (): SpecError => new SpecError(file, problems);

  if (!isPlainObject(obj)) {
    throw new SpecError(file, [problemAt([], `expected a mapping with name and steps, got ${describeValue(obj)}`, source)]);
  }
  const top = parseWith(specDocumentSchema, obj, [], problems, source);
  // Entries are checked even when the top level has problems, so one pass reports them all.
  const rawSteps = Array.isArray(obj.steps) ? obj.steps : [];
  const inputs: StagedFile[] = [];
  const entries = parseEntries(rawSteps, ["steps"], { problems, source, specDir, inputs, stagingMaps: new Map() });
  if (entries !== undefined) refuseBatchOutsideMaps(entries, ["steps"], false, problems, source);
  if (problems.length > 0 || top === undefined || entries === undefined) throw fail();

  const bundle: string[] = [];
  (top.bundle ?? []).forEach((p, i) => {
    if (!existsSync(resolve(specDir, p))) problems.push(problemAt(["bundle", i], `expected an existing file or directory, but ${resolve(specDir, p)} does not exist`, source));
    else bundle.push(normalize(p));
  });

  const context: Record<string, string | number | boolean> = { ...(top.context ?? {}) };
  for (const [k, v] of Object.entries(options.set ?? {})) {
    const problem = contextKeyProblem(k);
    if (problem) problems.push({ path: `--set ${preview(k)}`, expected: problem });
    else if (typeof v !== "string" || v.includes("\0")) problems.push({ path: `--set ${k}`, expected: "expected a value without NUL bytes" });
    else context[k] = v;
  }
  if (problems.length > 0) throw fail();

  const spec: SpecDocument = { ...top, steps: entries };
  const steps = buildChildren(entries, ["steps"], problems, source);
  let pipeline: Pipeline | undefined;
  if (problems.length === 0) {
    pipeline = guard([], problems, source, () => new Pipeline(defined({ name: top.name, version: top.version, steps })));
    if (pipeline && top.fuse === false) noFuse(pipeline);
  }
  if (problems.length > 0 || pipeline === undefined) throw fail();
  problems.push(...unknownSetKeys(options.set ?? {}, top.context ?? {}, pipeline.requires));
  if (problems.length > 0) throw fail();
  return { pipeline, spec, specDir, context, bundle, defaults: top.defaults ?? {}, inputs };
}

/** `--set` may change what the pipeline reads from its context: the spec's `context` keys and what its steps require from outside. */
function unknownSetKeys(set: Record<string, string>, context: Record<string, unknown>, requires: readonly string[]): FieldProblem[] {
  const known = [...new Set([...Object.keys(context), ...requires])].sort();
  const list = known.length === 0 ? "none (it has no context and its steps require nothing from outside)" : known.join(", ");
  return Object.keys(set)
    .filter((k) => !known.includes(k))
    .map((k) => ({ path: `--set ${k}`, expected: `unknown context key: this pipeline knows ${list}` }));
}

/** `batch: true` gives a command every item of its array task: it means something only inside a map. */
function refuseBatchOutsideMaps(entries: readonly SpecEntry[], at: readonly PathSegment[], inMap: boolean, problems: FieldProblem[], source: YamlSource | undefined): void {
  entries.forEach((entry, i) => {
    const path = [...at, i];
    if ("step" in entry) {
      if (entry.batch === true && !inMap) {
        problems.push(problemAt([...path, "batch"], `step '${entry.step}': batch: true runs one command for all the items of a map's task; put the step inside a map, or remove batch`, source));
      }
      return;
    }
    refuseBatchOutsideMaps(entry.steps, [...path, "steps"], inMap || "map" in entry, problems, source);
  });
}

interface ParseEnv {
  problems: FieldProblem[];
  source: YamlSource | undefined;
  specDir: string;
  /** Staged item files found so far (see item-files.ts). */
  inputs: StagedFile[];
  /** Maps that stage files, by name (their files go under inputs/<name>/), with the path of the first. */
  stagingMaps: Map<string, string>;
}

function parseEntries(list: readonly unknown[], at: readonly PathSegment[], env: ParseEnv): SpecEntry[] | undefined {
  const out: SpecEntry[] = [];
  let ok = true;
  const names = new Map<string, number>();
  list.forEach((raw, i) => {
    const path = [...at, i];
    const entry = parseEntry(raw, path, env);
    if (entry === undefined) {
      ok = false;
      return;
    }
    const [kind, name] = entryName(entry);
    const earlier = names.get(name);
    if (earlier !== undefined) {
      env.problems.push(problemAt([...path, kind], `duplicate name '${name}' (steps[${earlier}] has it too); names must be unique among siblings`, env.source));
      ok = false;
    }
    names.set(name, i);
    out.push(entry);
  });
  return ok ? out : undefined;
}

function entryName(entry: SpecEntry): [SpecEntryKind, string] {
  if ("step" in entry) return ["step", entry.step];
  if ("group" in entry) return ["group", entry.group];
  if ("map" in entry) return ["map", entry.map];
  return ["pipeline", entry.pipeline];
}

function parseEntry(raw: unknown, path: PathSegment[], env: ParseEnv): SpecEntry | undefined {
  const { problems, source } = env;
  const kindsList = SPEC_ENTRY_KINDS.join(", ");
  if (!isPlainObject(raw)) {
    problems.push(problemAt(path, `expected a mapping with one of the keys ${kindsList}, got ${describeValue(raw)}`, source));
    return undefined;
  }
  const kinds = SPEC_ENTRY_KINDS.filter((k) => k in raw);
  const first = kinds[0];
  if (first === undefined) {
    const keys = Object.keys(raw);
    problems.push(problemAt(path, `expected exactly one of the keys ${kindsList}, found ${keys.length > 0 ? keys.map((k) => preview(k)).join(", ") : "none"}`, source));
    return undefined;
  }
  if (kinds.length > 1) {
    problems.push(problemAt([...path, kinds[1] as string], `an entry has exactly one of the keys ${kindsList}; this one has ${kinds.map((k) => `'${k}'`).join(" and ")}`, source));
    return undefined;
  }
  const before = problems.length;
  const parsed = parseWith(ENTRY_SCHEMAS[first], raw, path, problems, source);
  // Children are checked even when this entry has problems, so one pass reports them all.
  const children = first === "step" ? [] : parseEntries(Array.isArray(raw.steps) ? raw.steps : [], [...path, "steps"], env);
  if (parsed === undefined || children === undefined || problems.length > before) return undefined;
  if (first === "step") return parsed as CommandEntry;
  if (first === "map") {
    const m = parsed as Omit<MapEntry, "steps">;
    if (m.items_glob !== undefined) return stagedMap(m, undefined, children, path, env);
    const lines = m.items !== undefined ? m.items.map((item, i) => ({ item, line: i })) : readItemsFile(m.items_file ?? "", [...path, "items_file"], env);
    if (lines === undefined) return undefined;
    if (m.stage_items === true) return stagedMap(m, lines, children, path, env);
    return { ...m, items: lines.map((l) => l.item), steps: children };
  }
  return { ...(parsed as Omit<GroupEntry | PipelineEntry, "steps">), steps: children } as GroupEntry | PipelineEntry;
}

/** One item per line; blank lines and lines starting with `#` are skipped; a trailing `\r` is dropped. */
export function parseItemsText(text: string): Array<{ line: number; item: string }> {
  const out: Array<{ line: number; item: string }> = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "" || line.startsWith("#")) return;
    out.push({ line: i + 1, item: line });
  });
  return out;
}

/**
 * A map whose items are local files: finds and hashes them (item-files.ts);
 * the items become their staged paths `inputs/<map>/...`. `lines` are the
 * inline items (line = index) or the lines of items_file; undefined for items_glob.
 */
function stagedMap(m: Omit<MapEntry, "steps">, lines: Array<{ line: number; item: string }> | undefined, children: SpecEntry[], path: PathSegment[], env: ParseEnv): MapEntry | undefined {
  const earlier = env.stagingMaps.get(m.map);
  if (earlier !== undefined) {
    env.problems.push(problemAt([...path, "map"], `another map named '${m.map}' (${earlier}) stages files too; staged files go under inputs/<map name>/, so give one of them another name`, env.source));
    return undefined;
  }
  env.stagingMaps.set(m.map, formatPath(path));
  const list = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : typeof v === "string" ? [v] : v);
  const paths: ItemPath[] | undefined = lines?.map(({ line, item }) =>
    m.items_file !== undefined ? { path: item, field: ["items_file"], where: `${m.items_file} line ${line}: ` } : { path: item, field: ["items", line], where: "" },
  );
  if (m.items_root !== undefined) {
    const root = resolve(env.specDir, m.items_root);
    let isDir = false;
    try {
      isDir = statSync(root).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) {
      env.problems.push(problemAt([...path, "items_root"], `expected an existing directory (relative to the spec), but ${root} is not one`, env.source));
      return undefined;
    }
  }
  const resolved = resolveItemFiles({
    map: m.map,
    ...(m.items_glob !== undefined ? { glob: list(m.items_glob) as string[] } : {}),
    ...(paths ? { paths } : {}),
    ...(m.stage_with !== undefined ? { stageWith: list(m.stage_with) as string[] } : {}),
    root: resolve(env.specDir, m.items_root ?? "."),
    specDir: env.specDir,
  });
  if ("problems" in resolved) {
    for (const p of resolved.problems) env.problems.push(problemAt([...path, ...p.field], p.message, env.source));
    return undefined;
  }
  const { items, hashes, files } = resolved.value;
  if (items.length > MAX_MAP_ITEMS) {
    env.problems.push(problemAt([...path, "items_glob"], `${items.length} items; at most ${MAX_MAP_ITEMS} are allowed`, env.source));
    return undefined;
  }
  // One by one: a million item files cannot be spread into push()'s arguments.
  for (const f of files) env.inputs.push(f);
  return { ...m, items, itemHashes: hashes, steps: children };
}

/** Reads an items file line by line (no size cap: at most MAX_MAP_ITEMS items, each checked); stops at the first bad line. */
function readItemsFile(file: string, at: PathSegment[], env: ParseEnv): Array<{ line: number; item: string }> | undefined {
  const full = isAbsolute(file) ? file : resolve(env.specDir, file);
  const items: Array<{ line: number; item: string }> = [];
  let bad: string | null = null;
  try {
    forEachItemLine(full, (item, line) => {
      const problem = itemProblem(item);
      if (problem) bad = `${file} line ${line}: item ${problem}`;
      else if (items.length === MAX_MAP_ITEMS) bad = `${file} has more than ${MAX_MAP_ITEMS} items (line ${line} is item ${MAX_MAP_ITEMS + 1}); at most ${MAX_MAP_ITEMS} are allowed`;
      else items.push({ line, item });
      return bad === null;
    });
  } catch (err) {
    env.problems.push(problemAt(at, `expected a readable file of items (relative to the spec), but ${full}: ${errorText(err)}`, env.source));
    return undefined;
  }
  if (bad !== null) {
    env.problems.push(problemAt(at, bad, env.source));
    return undefined;
  }
  return items;
}

/** Runs a core constructor, turning a StepDefinitionError into a problem at `path`. */
function guard<T>(path: readonly PathSegment[], problems: FieldProblem[], source: YamlSource | undefined, make: () => T): T | undefined {
  try {
    return make();
  } catch (err) {
    if (!(err instanceof StepDefinitionError)) throw err;
    problems.push(problemAt(path, err.message, source));
    return undefined;
  }
}

/** Drops undefined values, so a constructor's own defaults apply (`{version: undefined}` would override them). */
function defined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as T;
}

function buildChildren(entries: readonly SpecEntry[], at: readonly PathSegment[], problems: FieldProblem[], source: YamlSource | undefined): PipelineStep[] {
  const out: PipelineStep[] = [];
  entries.forEach((entry, i) => {
    const step = buildEntry(entry, [...at, i], problems, source);
    if (step) out.push(step);
  });
  return out;
}

function buildEntry(entry: SpecEntry, path: PathSegment[], problems: FieldProblem[], source: YamlSource | undefined): PipelineStep | undefined {
  if ("step" in entry) {
    const command = guard(path, problems, source, () =>
      new CommandStep(defined({
        name: entry.step,
        command: entry.run,
        requires: entry.requires,
        provides: entry.provides,
        outputs: entry.outputs,
        resources: entry.resources,
        env: entry.env,
        continue_on_error: entry.continue_on_error,
        idempotent: entry.idempotent,
        version: entry.version,
        fuse: entry.fuse,
        batch: entry.batch,
        inputs: entry.inputs,
        cache: entry.cache,
      })),
    );
    if (command) applyRetries(command, entry);
    return command;
  }
  const before = problems.length;
  const children = buildChildren(entry.steps, [...path, "steps"], problems, source);
  if (problems.length > before) return undefined;
  let step: PipelineStep | undefined;
  if ("group" in entry) {
    step = guard(path, problems, source, () =>
      new StepGroup(defined({
        name: entry.group,
        parallel: entry.parallel,
        concurrency: entry.throttle,
        continue_on_error: entry.continue_on_error,
        version: entry.version,
        steps: children,
      })),
    );
    if (step && entry.throttle !== undefined) withThrottle(step, entry.throttle);
    const packed = step;
    if (packed && (entry.items_per_task ?? entry.task_duration ?? entry.item_duration ?? entry.task_cpus) !== undefined) {
      step = guard(path, problems, source, () =>
        withPacking(packed, defined({ itemsPerTask: entry.items_per_task, taskDuration: entry.task_duration, itemDuration: entry.item_duration, taskCpus: entry.task_cpus })),
      );
    }
  } else if ("map" in entry) {
    step = guard(path, problems, source, () =>
      new MapStep(defined({
        name: entry.map,
        items: entry.items,
        as: entry.as,
        concurrency: entry.throttle,
        continue_on_item_error: entry.continue_on_item_error,
        itemsPerTask: entry.items_per_task,
        taskDuration: entry.task_duration,
        itemDuration: entry.item_duration,
        taskCpus: entry.task_cpus,
        continue_on_error: entry.continue_on_error,
        version: entry.version,
        itemsSource: entry.items_file ?? (entry.items_glob !== undefined ? `items_glob ${[entry.items_glob].flat().join(", ")}` : undefined),
        itemHashes: entry.itemHashes,
        steps: children,
      })),
    );
  } else {
    step = guard(path, problems, source, () =>
      new Pipeline(defined({ name: entry.pipeline, continue_on_error: entry.continue_on_error, version: entry.version, steps: children })),
    );
  }
  if (step && entry.fuse === false) noFuse(step);
  if (step && "map" in entry) applyRetries(step, entry);
  return step;
}

/** The entry's retry fields as the compiler reads them (annotations.ts). */
function applyRetries(step: PipelineStep, entry: CommandEntry | MapEntry): void {
  if (entry.retries === undefined || entry.retries === 0) return;
  withRetries(step, { retries: entry.retries, on: entry.retry_on ?? null, timeFactor: entry.on_timeout?.time ?? null, memFactor: entry.on_oom?.mem ?? null });
}
