/**
 * What a submission does with the step cache (pure parts): the files that
 * tell the jobs their steps' cache keys and where the store is, and the
 * files that restore the cached steps into the new run (their states, their
 * published values, the states of the map items and group children whose
 * every step is restored, and the declared outputs to lay out from the store).
 */
import type { CompiledPlan } from "../plan/plan.js";
import type { StagedFile } from "../store/staging.js";
import type { CacheKeys } from "./keys.js";
import type { CacheEntry } from "./remote.js";
import { restoredState } from "./remote.js";

/** `cache/store`: the store's absolute path and its group, for the job wrapper (templates/lib.sh). */
export function storeFile(storePath: string, group: string | undefined): string {
  return `${storePath}\n${group ?? ""}\n`;
}

/** The line of an item without a cache key: as long as a key, so that every line of a keys file is 65 bytes. */
export const NO_CACHE_KEY = "-".repeat(64);

/**
 * `cache/keys/<step key template>.keys`: line i is the cache key of the
 * step for item (or task) i, or NO_CACHE_KEY when it has none: every line is
 * 65 bytes, so a packed task reads its items' lines from byte 65*i without
 * reading the lines before (templates/lib.sh, _hp_cache_slices). Only steps
 * that have at least one key get a file, and beside it
 * `cache/keys/<step key template>.family`: the directory of the store its
 * entries go to (CacheKeys.families).
 */
export function keyFiles(plan: Pick<CompiledPlan, "jobs" | "items">, keys: CacheKeys): Map<string, string | Buffer> {
  const out = new Map<string, string | Buffer>();
  for (const job of plan.jobs) {
    for (const body of job.bodies) {
      for (const step of body.steps) {
        if (out.has(`cache/keys/${step.key}.keys`)) continue;
        const parts = step.key.includes("{i}") ? step.key.split("{i}") : null;
        const count = parts === null ? 1 : job.map ? (plan.items[job.map.key]?.length ?? 0) : 0;
        // Written into one buffer: a million lines held as strings and joined cost some 150 MB of heap.
        const text = Buffer.allocUnsafe(65 * count);
        let keyed = false;
        for (let i = 0; i < count; i++) {
          const compact = parts === null ? undefined : keys.keys.itemKey(step.key, i);
          const key = (compact !== undefined ? compact : keys.keys.get(parts === null ? step.key : parts.join(String(i)))) ?? null;
          if (key !== null) keyed = true;
          text.write(key ?? NO_CACHE_KEY, 65 * i, "latin1");
          text[65 * i + 64] = 0x0a;
        }
        if (keyed) {
          out.set(`cache/keys/${step.key}.keys`, text);
          const family = keys.families.get(step.key);
          if (family !== undefined) out.set(`cache/keys/${step.key}.family`, `${family}\n`);
        }
      }
    }
  }
  return out;
}

export interface Restoration {
  /** Run files: states/<key>.json and ctx/<key>.pub of every restored step, and the states of fully restored units. */
  files: Map<string, string>;
  /** Declared outputs to lay out from the store (`rel` under the run directory). */
  outputs: StagedFile[];
  /** Restored leaf steps. */
  steps: number;
  /** Restored units (map items, group children) and all their steps. */
  units: number;
}

/**
 * The files that restore `restored` (concrete step keys) into a new run,
 * from their cache entries. `full` is the plan before the restored steps
 * were left out (it still has their jobs and bodies).
 */
export function restoration(
  full: Pick<CompiledPlan, "jobs" | "items">,
  keys: CacheKeys,
  restored: ReadonlySet<string>,
  entries: ReadonlyMap<string, CacheEntry>,
  now: string = new Date().toISOString(),
): Restoration {
  const files = new Map<string, string>();
  const outputs: StagedFile[] = [];
  // Nothing restored (a first run): no unit to look at, not a million of them.
  if (restored.size === 0) return { files, outputs, steps: 0, units: 0 };
  const states = new Map<string, ReturnType<typeof restoredState>>();
  for (const concrete of restored) {
    const key = keys.keys.get(concrete);
    const entry = key ? entries.get(key) : undefined;
    if (!entry) throw new Error(`step ${concrete} is restored but the cache sent no entry for it`);
    const state = restoredState(entry, concrete, now);
    states.set(concrete, state);
    files.set(`states/${concrete}.json`, `${JSON.stringify(state)}\n`);
    files.set(`ctx/${concrete}.pub`, entry.pub);
    for (const o of entry.outputs) outputs.push({ abs: `(the cached output ${o.path} of step ${entry.step}, run ${entry.run})`, rel: `work/${o.path}`, size: 0, sha256: o.sha256 });
  }
  // A map item (or group child) whose every step is restored: its own state, as the wrapper writes it (hp_unit_end).
  let units = 0;
  for (const job of full.jobs) {
    for (const body of job.bodies) {
      if (body.unitKey === null) continue;
      const instances = body.unitKey.includes("{i}") ? Array.from({ length: job.map ? (full.items[job.map.key]?.length ?? 0) : 0 }, (_, i) => i) : [null];
      for (const index of instances) {
        const expand = (k: string): string => (index === null ? k : k.split("{i}").join(String(index)));
        const leaves = body.steps.map((s) => states.get(expand(s.key)));
        if (leaves.length === 0 || leaves.some((s) => s === undefined)) continue;
        const unitKey = expand(body.unitKey);
        if (files.has(`states/${unitKey}.json`)) continue;
        const first = leaves[0] as NonNullable<(typeof leaves)[number]>;
        const last = leaves[leaves.length - 1] as NonNullable<(typeof leaves)[number]>;
        const item = index !== null && job.map ? full.items[job.map.key]?.[index] : undefined;
        const state = {
          success: true,
          timestamp: first.timestamp,
          duration_s: Math.round(leaves.reduce((t, s) => t + (s?.duration_s ?? 0), 0) * 1000) / 1000,
          provides: [],
          outputs: {},
          error: null,
          meta: item !== undefined ? { item } : {},
          // As the wrapper writes it: the body's unit signature ("" when the compiler gives none).
          signature: (body as { unitSignature?: string }).unitSignature ?? "",
          failure: null,
          key: unitKey,
          ...(first.slurm ? { slurm: first.slurm } : {}),
          ...(first.host !== undefined ? { host: first.host } : {}),
          exit_code: null,
          attempt: 1,
          cached: { run: last.cached?.run ?? "", step: unitKey, key: last.cached?.key ?? "", ...(first.cached?.ran ? { ran: first.cached.ran } : {}) },
        };
        files.set(`states/${unitKey}.json`, `${JSON.stringify(state)}\n`);
        units += 1;
      }
    }
  }
  return { files, outputs, steps: restored.size, units };
}
