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
  /** Concrete step key -> cache key (64 hex) or null. */
  keys: Map<string, string | null>;
  /** The chain: concrete step key -> the concrete keys of the steps before it in its scope (for effectiveHits). */
  before: Map<string, readonly string[]>;
  /** Bundle files that some step declares as an input (left out of the code digest). */
  declared: Set<string>;
  /**
   * Step template key (`{i}` for a map's items) -> its family: its definition, the code digest and the
   * environment, digested. A job stores a step's entries in one file per family and process
   * (src/cache/remote.ts), so a query reads the few families of its plan, not the whole store.
   */
  families: Map<string, string>;
  /** Family -> the distinct cache keys of its steps in this plan. */
  byFamily: Map<string, Set<string>>;
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
  const keys = new Map<string, string | null>();
  const before = new Map<string, readonly string[]>();
  // A template's definition is the same for each of its items: digested once.
  const definitions = new Map<PlanStep, string>();
  const families = new Map<string, string>();
  const indexed = new Map<PlanStep, boolean>();
  const byFamily = new Map<string, Set<string>>();

  /** One leaf instance: its key from the chain digest so far. */
  const leaf = (step: PlanStep, concrete: string, chain: string | null, upstream: readonly string[], item: { index: number; value: string; hash: string | null; as: string } | null): string | null => {
    before.set(concrete, upstream);
    if (chain === null || step.cache === false || step.batch) {
      keys.set(concrete, null);
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
      byFamily.set(family, byFamily.get(family) ?? new Set());
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
    keys.set(concrete, key);
    (byFamily.get(families.get(step.key) as string) as Set<string>).add(key);
    return key;
  };

  type Chain = { digest: string | null; steps: string[] };
  /** Walks a node in a scope whose chain so far is `chain`; returns the chain after it. */
  const walk = (node: PlanNode, chain: Chain, item: { index: number; value: string; hash: string | null; as: string } | null): Chain => {
    if (node.kind === "step") {
      const step = leaves.get(node.key);
      if (!step) return { digest: null, steps: chain.steps };
      const concrete = item ? node.key.split("{i}").join(String(item.index)) : node.key;
      const key = leaf(step, concrete, chain.digest, chain.steps, item);
      return { digest: key === null ? null : hashParts("after", chain.digest ?? "", key), steps: [...chain.steps, concrete] };
    }
    if (node.kind === "map") {
      const values = input.plan.items[node.key] ?? [];
      const hashes = input.itemHashes?.[node.key];
      const ends: Array<string | null> = [];
      const steps: string[] = [...chain.steps];
      values.forEach((value, index) => {
        const hash = hashes?.[index] ?? null;
        const start: Chain = { digest: chain.digest === null ? null : hashParts("map", chain.digest, node.key), steps: chain.steps };
        let c = start;
        for (const child of node.children) c = walk(child, c, { index, value, hash, as: node.item_key ?? "" });
        ends.push(c.digest);
        for (const s of c.steps.slice(chain.steps.length)) steps.push(s);
      });
      return { digest: ends.some((e) => e === null) || chain.digest === null ? null : hashList(["after-map", chain.digest, node.key, ...(ends as string[])]), steps };
    }
    if (node.parallel) {
      const ends: Array<string | null> = [];
      const steps: string[] = [...chain.steps];
      for (const child of node.children) {
        const c = walk(child, chain, item);
        ends.push(c.digest);
        for (const s of c.steps.slice(chain.steps.length)) steps.push(s);
      }
      return { digest: ends.some((e) => e === null) || chain.digest === null ? null : hashList(["after-group", chain.digest, node.key, ...(ends as string[])]), steps };
    }
    let c = chain;
    for (const child of node.children) c = walk(child, c, item);
    return c;
  };
  walk(input.plan.tree, { digest: sha({ root: input.plan.tree.key }), steps: [] }, null);
  return { keys, before, declared, families, byFamily };
}

/**
 * The steps that are restored from the cache: a hit whose every step before
 * it in its chain is restored too. `hits` are the keys the store holds.
 */
export function effectiveHits(keys: CacheKeys, hits: ReadonlySet<string>): Set<string> {
  const restored = new Set<string>();
  for (const [concrete, key] of keys.keys) {
    if (key === null || !hits.has(key)) continue;
    const upstream = keys.before.get(concrete) ?? [];
    if (upstream.every((s) => restored.has(s))) restored.add(concrete);
  }
  return restored;
}
