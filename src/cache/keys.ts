/**
 * Cache keys of step instances (DESIGN.md §8, "A step cache across runs").
 * A step that already succeeded somewhere with the same key is not run
 * again: its state and declared outputs are restored from the store.
 *
 * The key of a leaf step instance is the SHA-256 of:
 *   - its definition: signature (name, version, command, env, outputs,
 *     resources), requires, provides, declared inputs;
 *   - the context values it requires (a map's item: its value, or the
 *     content hash of a staged item file);
 *   - the content hashes of the input files it declares (`inputs:`, with
 *     `{i}`, `{item}` and `{item_stem}` replaced, `*` and `**` globs matched
 *     against the bundle);
 *   - the code digest: the hashes of every bundle file no step declares as
 *     an input (scripts, toolkits: editing one changes every key);
 *   - the cluster config's `modules` and `setup` lines;
 *   - the keys of every step that ran before it in its scope (a chain: a
 *     step after a map depends on every item; an item's second step on its
 *     first), which stand in for the files those steps left in work/.
 * The item's index is part of the key only when the step can see it (an
 * output pattern with `{i}`, or HPCPIPE_TASK / SLURM_ARRAY_TASK_ID in its
 * command or env): otherwise a model that moves in the list stays cached.
 *
 * A step whose chain holds a step that cannot be cached (`cache: false`, a
 * batch step) has no key. A hit counts only when every step before it in
 * its chain is a hit too (see effectiveHits): a step whose upstream runs
 * again runs again, so a flaky upstream never leaves a stale result behind.
 */
import * as crypto from "node:crypto";
import { createHash } from "node:crypto";
import { canonicalJson } from "../core/signature.js";
import type { CompiledPlan, PlanNode, PlanStep } from "../plan/plan.js";
import { globRegExp } from "../store/glob.js";

/** Format of the key material: bump to invalidate every key. */
export const CACHE_KEY_VERSION = 1;

export interface CacheKeyInput {
  plan: Pick<CompiledPlan, "tree" | "jobs" | "items" | "context">;
  /** The run's bundle files: path under work/ and content hash. */
  bundle: ReadonlyArray<{ path: string; sha256: string }>;
  /** The cluster config's `modules` and `setup` lines. */
  modules: readonly string[];
  setup: readonly string[];
  /** Per map key, the content hash of each item's file (staged items), in item order. */
  itemHashes?: Readonly<Record<string, ReadonlyArray<string | null>>>;
}

/** Keys of the plan's leaf step instances, in execution order; null for one that cannot be cached. */
export interface CacheKeys {
  /** Concrete step key -> cache key (64 hex) or null (a map's items kept compact: see StepKeys). */
  keys: StepKeys;
  /**
   * The steps restored for these hits (see effectiveHits): the plan walked again, each step restored when
   * its key is a hit and every step before it in its scope is restored. No list of the steps before each
   * step is kept: at a million items that was 230 MB.
   */
  effective: (hits: ReadonlySet<string>) => Set<string>;
  /** Bundle files that some step declares as an input (left out of the code digest). */
  declared: Set<string>;
  /**
   * Step template key (`{i}` for a map's items) -> its family: its definition, the code digest and the
   * environment, digested. A job stores a step's entries in one file per family and process
   * (src/cache/remote.ts), so a query reads the few families of its plan, not the whole store.
   */
  families: Map<string, string>;
  /** Family -> the cache keys of its steps in this plan (read from `keys` as they are iterated). */
  byFamily: Map<string, FamilyKeys>;
}

/** The keys of one family: how many, and each (a key two items share is there twice). */
export interface FamilyKeys extends Iterable<string> {
  readonly size: number;
}

/** A map step's keys by item index: 32 bytes each (a hex string, its step key and a Map entry cost ten times that). */
class ItemKeys {
  readonly digests: Buffer;
  readonly present: Uint8Array;
  constructor(
    readonly prefix: string,
    readonly suffix: string,
    readonly count: number,
  ) {
    this.digests = Buffer.alloc(32 * count);
    this.present = new Uint8Array(count);
  }
  /** The item index of a concrete step key of this template, or -1. */
  indexOf(concrete: string): number {
    if (concrete.length <= this.prefix.length + this.suffix.length || !concrete.startsWith(this.prefix) || !concrete.endsWith(this.suffix)) return -1;
    const digits = concrete.slice(this.prefix.length, concrete.length - this.suffix.length);
    if (!/^(?:0|[1-9][0-9]{0,8})$/.test(digits)) return -1;
    const index = Number(digits);
    return index < this.count ? index : -1;
  }
  key(index: number): string | null {
    return this.present[index] === 1 ? this.digests.toString("hex", 32 * index, 32 * index + 32) : null;
  }
}

type OrderEntry = { single: string } | { tables: ItemKeys[]; count: number };

/**
 * The cache key of each leaf step instance (concrete step key -> 64 hex, or null when it cannot be
 * cached), in execution order as a Map iterates. A map's item steps are kept per step template, as
 * digests by item index, and the order as "each item, each of these templates": at a million items,
 * two million keys in a Map of strings held some 300 MB.
 */
export class StepKeys implements ReadonlyMap<string, string | null> {
  private readonly order: OrderEntry[] = [];
  private readonly singles = new Map<string, string | null>();
  private readonly tables = new Map<string, ItemKeys>();
  private current: { tables: ItemKeys[]; count: number } | null = null;
  private count = 0;

  /** A step instance kept by its concrete key (outside a map's items). */
  setSingle(concrete: string, key: string | null): void {
    if (!this.singles.has(concrete)) {
      this.order.push({ single: concrete });
      this.count += 1;
    }
    this.singles.set(concrete, key);
  }

  /** A map of `count` items starts: its items' steps come as setItem, item by item, each item's in the same order. */
  startMap(count: number): void {
    this.current = { tables: [], count };
    this.order.push(this.current);
  }

  endMap(): void {
    this.current = null;
  }

  /** Item `index`'s step of template `<prefix>{i}<suffix>`, in the map started last. */
  setItem(template: string, index: number, key: string | null): void {
    const map = this.current as { tables: ItemKeys[]; count: number };
    let t = this.tables.get(template);
    if (t === undefined) {
      const at = template.indexOf("{i}");
      t = new ItemKeys(template.slice(0, at), template.slice(at + 3), map.count);
      this.tables.set(template, t);
    }
    if (index === 0) map.tables.push(t);
    if (key !== null) {
      t.digests.write(key, 32 * index, "hex");
      t.present[index] = 1;
    }
    this.count += 1;
  }

  get size(): number {
    return this.count;
  }

  get(concrete: string): string | null | undefined {
    const single = this.singles.get(concrete);
    if (single !== undefined || this.singles.has(concrete)) return single;
    for (const t of this.tables.values()) {
      const index = t.indexOf(concrete);
      if (index >= 0) return t.key(index);
    }
    return undefined;
  }

  has(concrete: string): boolean {
    return this.get(concrete) !== undefined;
  }

  /** The key of item `index`'s step of a map step template, without its concrete key (undefined: not kept that way). */
  itemKey(template: string, index: number): string | null | undefined {
    const t = this.tables.get(template);
    return t === undefined || index < 0 || index >= t.count ? undefined : t.key(index);
  }

  *entries(): MapIterator<[string, string | null]> {
    for (const e of this.order) {
      if ("single" in e) yield [e.single, this.singles.get(e.single) ?? null];
      else for (let i = 0; i < e.count; i++) for (const t of e.tables) yield [`${t.prefix}${i}${t.suffix}`, t.key(i)];
    }
  }

  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<string | null> {
    for (const e of this.order) {
      if ("single" in e) yield this.singles.get(e.single) ?? null;
      else for (let i = 0; i < e.count; i++) for (const t of e.tables) yield t.key(i);
    }
  }

  [Symbol.iterator](): MapIterator<[string, string | null]> {
    return this.entries();
  }

  forEach(callback: (value: string | null, key: string, map: ReadonlyMap<string, string | null>) => void): void {
    for (const [k, v] of this.entries()) callback(v, k, this);
  }

  /** The keys of a family's steps (their templates): each instance's that has one (a key two items share is there twice). */
  familyKeys(templates: readonly string[]): FamilyKeys {
    const singles: string[] = [];
    const tables: ItemKeys[] = [];
    for (const template of templates) {
      const t = this.tables.get(template);
      if (t !== undefined) tables.push(t);
      else if (!template.includes("{i}")) {
        // Outside any map: the template is the concrete key.
        const key = this.singles.get(template);
        if (key !== null && key !== undefined) singles.push(key);
      } else {
        // A map inside an item: its instances are singles.
        for (const [concrete, key] of this.singles) if (key !== null && matchesTemplate(template, concrete)) singles.push(key);
      }
    }
    let size = singles.length;
    for (const t of tables) for (let i = 0; i < t.count; i++) size += t.present[i] as number;
    return {
      size,
      *[Symbol.iterator]() {
        yield* singles;
        for (const t of tables) {
          for (let i = 0; i < t.count; i++) {
            const key = t.key(i);
            if (key !== null) yield key;
          }
        }
      },
    };
  }
}

/** Whether a concrete step key is an instance of a template with `{i}` (each `{i}` a decimal index). */
function matchesTemplate(template: string, concrete: string): boolean {
  const re = new RegExp(`^${template.split("{i}").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("(?:0|[1-9][0-9]*)")}$`);
  return re.test(concrete);
}

const sha = (value: unknown): string => createHash("sha256").update(canonicalJson(value)).digest("hex");
/** SHA-256 of strings in a fixed order (no canonical JSON on the hot path: a million items). */
const hashParts = (...parts: string[]): string => hashList(parts);

/** One-shot SHA-256 (Node >= 20.12): no Hash object per key, a million items make two million keys. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string) => string }).hash;

/**
 * `hashParts` over an array of any length (a map's item ends: a million of them cannot be spread into a
 * call's arguments): the SHA-256 of each part followed by a NUL, hashed as one string (the same bytes as
 * one update per part, at a fraction of the calls).
 */
function hashList(parts: readonly string[]): string {
  let text = "";
  for (const p of parts) text += `${p}\u0000`;
  return oneShot !== undefined ? oneShot("sha256", text) : createHash("sha256").update(text).digest("hex");
}

/** `{i}` -> index, `{item}` -> item, `{item_stem}` -> item without its last extension. */
export function expandInput(pattern: string, index: number | null, item: string | null): string {
  let out = pattern;
  if (index !== null) out = out.split("{i}").join(String(index));
  if (item !== null) {
    const base = item.slice(item.lastIndexOf("/") + 1);
    const dot = base.lastIndexOf(".");
    const stem = dot > 0 ? item.slice(0, item.length - (base.length - dot)) : item;
    out = out.split("{item_stem}").join(stem).split("{item}").join(item);
  }
  return out;
}

/** A glob as a RegExp over work/-relative paths: the one glob rule (src/store/glob.ts); a directory names everything under it. */
function inputRegExp(pattern: string): RegExp {
  return new RegExp(`${globRegExp(pattern).source.slice(0, -1)}(?:/.*)?$`);
}

/** The bundle's files sorted by path, for prefix lookups (a million items must not test every file against every pattern). */
class FileIndex {
  private readonly sorted: Array<{ path: string; sha256: string }>;
  constructor(files: ReadonlyArray<{ path: string; sha256: string }>) {
    this.sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
  /** Files whose path starts with `prefix`. */
  private withPrefix(prefix: string): Array<{ path: string; sha256: string }> {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.sorted[mid] as { path: string }).path < prefix) lo = mid + 1;
      else hi = mid;
    }
    const out: Array<{ path: string; sha256: string }> = [];
    for (let i = lo; i < this.sorted.length && (this.sorted[i] as { path: string }).path.startsWith(prefix); i++) out.push(this.sorted[i] as { path: string; sha256: string });
    return out;
  }
  private readonly memo = new Map<string, Array<{ path: string; sha256: string }>>();
  /** The files an input pattern names: a file, a directory (everything under it), or a glob. */
  match(pattern: string): Array<{ path: string; sha256: string }> {
    const hit = this.memo.get(pattern);
    if (hit !== undefined) return hit;
    const clean = pattern.replace(/\/+$/, "");
    const wild = clean.search(/[*?]/);
    let out: Array<{ path: string; sha256: string }>;
    if (wild < 0) out = this.withPrefix(clean).filter((f) => f.path === clean || f.path.startsWith(`${clean}/`));
    else {
      const candidates = this.withPrefix(clean.slice(0, wild));
      const re = candidates.length > 0 ? inputRegExp(clean) : null;
      out = re === null ? [] : candidates.filter((f) => re.test(f.path));
    }
    this.memo.set(pattern, out);
    return out;
  }
}

/** Whether a step can see its item's index (then the index is part of its key). */
function seesIndex(step: PlanStep): boolean {
  const text = [step.command, ...Object.values(step.env), ...(step.inputs ?? [])].join("\n");
  return step.outputs.some((o) => o.includes("{i}")) || /HPCPIPE_TASK|SLURM_ARRAY_TASK_ID/.test(text);
}

/** Every leaf PlanStep by its template key. */
function leavesByKey(plan: CacheKeyInput["plan"]): Map<string, PlanStep> {
  const out = new Map<string, PlanStep>();
  for (const job of plan.jobs) for (const body of job.bodies) for (const step of body.steps) out.set(step.key, step);
  return out;
}

/** The patterns of every step's `inputs`, with placeholders, for the code digest. */
function declaredFiles(input: CacheKeyInput, leaves: Map<string, PlanStep>, files: FileIndex): Set<string> {
  const declared = new Set<string>();
  for (const step of leaves.values()) {
    for (const pattern of step.inputs ?? []) {
      if (/\{i\}|\{item(?:_stem)?\}/.test(pattern)) {
        // Per item: expand over the map's items (the map is the step key's prefix before `.{i}.`).
        const mapKey = step.key.slice(0, step.key.indexOf(".{i}."));
        const items = input.plan.items[mapKey] ?? [];
        items.forEach((item, i) => {
          for (const f of files.match(expandInput(pattern, i, item))) declared.add(f.path);
        });
      } else for (const f of files.match(pattern)) declared.add(f.path);
    }
  }
  return declared;
}

/** A map item being walked; `compact`: its steps' keys go to the StepKeys table of its template. */
type Item = { index: number; value: string; hash: string | null; as: string; compact: boolean };

/** Computes the cache key of every leaf step instance of a plan. Pure and offline. */
export function cacheKeys(input: CacheKeyInput): CacheKeys {
  const leaves = leavesByKey(input.plan);
  const files = new FileIndex(input.bundle);
  const declared = declaredFiles(input, leaves, files);
  const code = sha(
    input.bundle
      .filter((f) => !declared.has(f.path))
      .map((f) => [f.path, f.sha256])
      .sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
  );
  const envDigest = sha({ modules: [...input.modules], setup: [...input.setup] });
  const keys = new StepKeys();
  // A template's definition is the same for each of its items: digested once.
  const definitions = new Map<PlanStep, string>();
  const families = new Map<string, string>();
  const indexed = new Map<PlanStep, boolean>();
  /** An instance's key: by item index for the items of a map (not one inside an item), else by its concrete key. */
  const record = (step: PlanStep, item: Item | null, key: string | null): void => {
    if (item?.compact === true) keys.setItem(step.key, item.index, key);
    else keys.setSingle(item ? step.key.split("{i}").join(String(item.index)) : step.key, key);
  };

  /** One leaf instance: its key from the chain digest so far. */
  const leaf = (step: PlanStep, chain: string | null, item: Item | null): string | null => {
    if (chain === null || step.cache === false || step.batch) {
      record(step, item, null);
      return null;
    }
    const context: string[] = [];
    for (const need of step.needs) {
      if (need.from !== "context") continue;
      if (item && need.key === item.as) context.push(need.key, item.hash !== null ? `sha256:${item.hash}` : `value:${item.value}`);
      else context.push(need.key, `value:${input.plan.context[need.key] ?? ""}`);
    }
    const inputs =
      step.inputs === undefined || step.inputs.length === 0
        ? "[]"
        : JSON.stringify(
            step.inputs.map((pattern) => {
              const path = expandInput(pattern, item?.index ?? null, item?.value ?? null);
              return [pattern, ...files.match(path).flatMap((f) => [f.path, f.sha256])];
            }),
          );
    let definition = definitions.get(step);
    if (definition === undefined) {
      definition = sha({
        signature: step.signature,
        command: step.command,
        env: step.env,
        requires: step.requires,
        provides: step.provides,
        outputs: step.outputs,
        continue_on_error: step.continue_on_error,
      });
      definitions.set(step, definition);
      const family = hashParts("hpcpipe-step-cache-family-v1", definition, code, envDigest);
      families.set(step.key, family);
      indexed.set(step, seesIndex(step));
    }
    const key = hashParts(
      `hpcpipe-step-cache-v${CACHE_KEY_VERSION}`,
      definition,
      chain,
      JSON.stringify(context),
      item ? (item.hash !== null ? `sha256:${item.hash}` : `value:${item.value}`) : "",
      item && indexed.get(step) === true ? String(item.index) : "",
      // An output named after the item ({item}) lands at a path made of its value, whatever its hash.
      item && item.hash !== null && step.outputs.some((o) => o.includes("{item}")) ? item.value : "",
      inputs,
      code,
      envDigest,
    );
    record(step, item, key);
    return key;
  };

  /** Walks a node in a scope whose chain digest so far is `chain`; returns the digest after it. */
  const walk = (node: PlanNode, chain: string | null, item: Item | null): string | null => {
    if (node.kind === "step") {
      const step = leaves.get(node.key);
      if (!step) return null;
      const key = leaf(step, chain, item);
      return key === null ? null : hashParts("after", chain ?? "", key);
    }
    if (node.kind === "map") {
      const values = input.plan.items[node.key] ?? [];
      const hashes = input.itemHashes?.[node.key];
      // The map's end: hashList(["after-map", chain, key, ...each item's end]), hashed as the items go (a
      // million ends held for it were 90 MB), null when the chain or an item's end is.
      const end = chain === null ? null : createHash("sha256").update(`after-map\u0000${chain}\u0000${node.key}\u0000`);
      let open = end !== null;
      // The items of a map outside any item are kept compact (StepKeys); a map inside an item, by concrete keys.
      const compact = item === null;
      if (compact) keys.startMap(values.length);
      values.forEach((value, index) => {
        const hash = hashes?.[index] ?? null;
        let c = chain === null ? null : hashParts("map", chain, node.key);
        for (const child of node.children) c = walk(child, c, { index, value, hash, as: node.item_key ?? "", compact });
        if (c === null) open = false;
        else if (open) end?.update(`${c}\u0000`);
      });
      if (compact) keys.endMap();
      return open && end !== null ? end.digest("hex") : null;
    }
    if (node.parallel) {
      const ends: Array<string | null> = [];
      for (const child of node.children) ends.push(walk(child, chain, item));
      return ends.some((e) => e === null) || chain === null ? null : hashList(["after-group", chain, node.key, ...(ends as string[])]);
    }
    let c = chain;
    for (const child of node.children) c = walk(child, c, item);
    return c;
  };
  walk(input.plan.tree, sha({ root: input.plan.tree.key }), null);

  /** The same walk for effectiveHits: whether every step so far in the scope is restored. */
  const effective = (hits: ReadonlySet<string>): Set<string> => {
    const restored = new Set<string>();
    if (hits.size === 0) return restored;
    const visit = (node: PlanNode, ok: boolean, index: number | null): boolean => {
      if (node.kind === "step") {
        if (!leaves.has(node.key)) return ok;
        const concrete = (): string => (index !== null ? node.key.split("{i}").join(String(index)) : node.key);
        const compact = index !== null ? keys.itemKey(node.key, index) : undefined;
        const key = compact !== undefined ? compact : keys.get(concrete());
        if (!ok || key === null || key === undefined || !hits.has(key)) return false;
        restored.add(concrete());
        return true;
      }
      if (node.kind === "map") {
        const count = (input.plan.items[node.key] ?? []).length;
        let all = ok;
        for (let i = 0; i < count; i++) {
          let c = ok;
          for (const child of node.children) c = visit(child, c, i);
          all &&= c;
        }
        return all;
      }
      if (node.parallel) {
        let all = ok;
        for (const child of node.children) all = visit(child, ok, index) && all;
        return all;
      }
      let c = ok;
      for (const child of node.children) c = visit(child, c, index);
      return c;
    };
    visit(input.plan.tree, true, null);
    return restored;
  };
  // Each family's keys, read from the key table as a query iterates them (no set of two million strings).
  const templatesOf = new Map<string, string[]>();
  for (const [template, family] of families) templatesOf.set(family, [...(templatesOf.get(family) ?? []), template]);
  const byFamily = new Map<string, FamilyKeys>();
  for (const [family, templates] of templatesOf) byFamily.set(family, keys.familyKeys(templates));
  return { keys, declared, families, byFamily, effective };
}

/**
 * The steps that are restored from the cache: a hit whose every step before
 * it in its chain is restored too. `hits` are the keys the store holds.
 */
export function effectiveHits(keys: CacheKeys, hits: ReadonlySet<string>): Set<string> {
  return keys.effective(hits);
}
