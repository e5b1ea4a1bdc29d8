/**
 * The step cache at submission (issue "Move data like a render farm"): over
 * the open connection, ask the store in ONE round trip which step keys it
 * holds (with their entries), check in ONE more that the blobs of their
 * outputs are still there (a purge or a prune may have removed them), then
 * compile again leaving the restored steps out (compiling stays offline: the
 * set of restored steps is its input). The run gets the files that restore
 * them and the files that let its jobs store what they compute.
 */
import { cacheKeys, effectiveHits } from "../cache/keys.js";
import type { CacheKeys } from "../cache/keys.js";
import { queryCache } from "../cache/remote.js";
import { keyFiles, restoration, storeFile } from "../cache/restore.js";
import type { Restoration } from "../cache/restore.js";
import type { ClusterConfig } from "../cluster/index.js";
import type { CompiledPlan } from "../plan/plan.js";
import { distinctBlobs, missingBlobs, storeDir } from "../store/index.js";
import type { StagedFile } from "../store/index.js";
import type { Transport } from "../transport/index.js";

export interface StepCacheOutcome {
  /** The plan to submit: `full` with the restored steps left out (or `full` itself). */
  plan: CompiledPlan;
  /** Files to add to the run's upload (key files, the store file, restored states and published values). */
  files: Map<string, string | Buffer>;
  /** Outputs of restored steps, laid out from the store. */
  outputs: StagedFile[];
  /** Leaf step instances, those with a key, and those restored. */
  steps: number;
  keyed: number;
  restored: number;
  /** Entries of users the config does not trust, unusable entries, and hits whose output blobs are gone. */
  untrusted: number;
  invalid: number;
  purged: number;
}

/** The bundle files as the keys see them: path under work/ and hash. */
export function bundleForKeys(staged: readonly StagedFile[]): Array<{ path: string; sha256: string }> {
  return staged.map((f) => ({ path: f.rel.replace(/^work\//, ""), sha256: f.sha256 }));
}

export function planCacheKeys(full: CompiledPlan, staged: readonly StagedFile[], config: Pick<ClusterConfig, "modules" | "setup">): CacheKeys {
  return cacheKeys({ plan: full, bundle: bundleForKeys(staged), modules: config.modules, setup: config.setup, ...(full.itemHashes ? { itemHashes: full.itemHashes } : {}) });
}

/**
 * Applies the step cache to a submission. `recompile(done)` compiles the
 * same spec again with the given steps left out (same run id).
 */
export async function applyStepCache(
  transport: Transport,
  full: CompiledPlan,
  staged: readonly StagedFile[],
  config: ClusterConfig,
  recompile: (done: ReadonlySet<string>) => CompiledPlan,
  progress: (message: string) => void,
): Promise<StepCacheOutcome> {
  const keys = planCacheKeys(full, staged, config);
  const store = storeDir(config);
  const answer = await queryCache(transport, keys.byFamily, { store, group: config.store_group, trust: config.cache_trust, timeoutMs: 10 * 60_000 });
  let hits = new Set(answer.entries.keys());
  let restored = effectiveHits(keys, hits);
  // The outputs of what would be restored must still be in the store (ONE query): a hit whose blob is gone is a miss.
  let purged = 0;
  let rest: Restoration = restoration(full, keys, restored, answer.entries);
  const blobs = distinctBlobs(rest.outputs);
  if (blobs.length > 0) {
    const { missing } = await missingBlobs(transport, blobs, { store, group: config.store_group, timeoutMs: 10 * 60_000 });
    if (missing.length > 0) {
      const gone = new Set(missing.map((b) => b.sha256));
      for (const [key, entry] of answer.entries) {
        if (entry.outputs.some((o) => gone.has(o.sha256))) {
          hits.delete(key);
          purged += 1;
        }
      }
      hits = new Set(hits);
      restored = effectiveHits(keys, hits);
      rest = restoration(full, keys, restored, answer.entries);
    }
  }
  const plan = restored.size > 0 ? recompile(restored) : full;
  const files = new Map<string, string | Buffer>([["cache/store", storeFile(answer.storePath, config.store_group)], ...keyFiles(full, keys)]);
  for (const [path, text] of rest.files) files.set(path, text);
  let keyed = 0;
  for (const k of keys.keys.values()) if (k !== null) keyed += 1;
  const notes = [
    answer.untrusted > 0 ? `${answer.untrusted} entr${answer.untrusted === 1 ? "y" : "ies"} of untrusted users ignored` : "",
    answer.invalid.length > 0 ? `${answer.invalid.length} unusable entr${answer.invalid.length === 1 ? "y" : "ies"} ignored` : "",
    purged > 0 ? `${purged} whose outputs were purged from the store` : "",
  ].filter((n) => n !== "");
  progress(`step cache: ${restored.size} of ${keys.keys.size} step(s) restored from earlier runs${notes.length > 0 ? ` (${notes.join("; ")})` : ""}`);
  return { plan, files, outputs: rest.outputs, steps: keys.keys.size, keyed, restored: restored.size, untrusted: answer.untrusted, invalid: answer.invalid.length, purged };
}
