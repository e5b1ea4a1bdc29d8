/**
 * The step cache on the cluster, beside the blob store:
 *
 *   <store>/cache/ab/<key>.json     one entry a line of JSON, written by the job
 *                                   that ran the step (templates/lib.sh,
 *                                   _hp_cache_put): its state, its published
 *                                   values and its declared outputs as blobs.
 *
 * Who wrote an entry is the owner (uid) of its file, never a field inside it:
 * the shard directories are sticky (no user can replace another's entry), and
 * a run uses only its own user's entries and those of the users and groups
 * the cluster config trusts (`cache_trust`). Input blobs are safe to share
 * because each is checked against its hash; a cached result cannot be
 * checked that way, hence the trust rule.
 *
 * A submission asks in ONE round trip which of its keys the store holds; the
 * reply carries the trusted entries themselves, so restoring them needs no
 * further query.
 */
import { z } from "zod";
import { STATE_FILE_MAX_BYTES, stateFileSchema, STEP_KEY_PATTERN } from "../plan/state-file.js";
import type { StateFile } from "../plan/state-file.js";
import { outputPathProblem } from "../spec/command-step.js";
import { SHA256_HEX } from "../store/hash.js";
import { remotePath, RemoteCommandError } from "../transport/index.js";
import type { Transport } from "../transport/index.js";
import { preview } from "../core/preview.js";

export const CACHE_KEY_PATTERN = /^[0-9a-f]{64}$/;

/** One cache entry as the job wrapper writes it (one line of JSON). */
export const cacheEntrySchema = z
  .object({
    format: z.literal(1),
    key: z.string().regex(CACHE_KEY_PATTERN),
    step: z.string().regex(STEP_KEY_PATTERN).max(1024),
    run: z.string().max(128),
    state: stateFileSchema,
    pub: z.string().max(STATE_FILE_MAX_BYTES),
    outputs: z
      .array(
        z.object({
          path: z.string().refine((p) => outputPathProblem(p) === null, { error: "expected a relative path inside the working directory" }),
          sha256: z.string().regex(SHA256_HEX),
        }),
      )
      .max(10_000),
  })
  .strip();

export type CacheEntry = z.infer<typeof cacheEntrySchema>;

export interface CacheTrust {
  users?: readonly string[];
  groups?: readonly string[];
}

export interface CacheQuery {
  /** The store directory (storeDir(config)). */
  store: string;
  group?: string | undefined;
  trust?: CacheTrust | undefined;
  timeoutMs?: number;
}

export interface CacheAnswer {
  /** The store's absolute path on the cluster (the job writes its entries there). */
  storePath: string;
  /** Cache key -> the trusted, valid entry the store holds for it. */
  entries: Map<string, CacheEntry>;
  /** Keys with an entry written by a user the config does not trust (not used). */
  untrusted: number;
  /** Entries that could not be used (not valid JSON, not this key, not a success): treated as misses. */
  invalid: string[];
}

// $1 store, $2 group, $3 trusted users (comma-separated), $4 trusted groups. Stdin: one key a line.
// Prints "store <absolute path>", then "hit <index> <entry>" for each trusted entry, "untrusted <index>"
// for an entry of someone else, and "end <count>". Touches the caller's hits (their last use, for prune).
const QUERY_SCRIPT = `set -u
store=$1 group=$2 tusers=$3 tgroups=$4
if [ -n "$group" ]; then umask 007; else umask 077; fi
mkdir -p -- "$store/cache" || exit 2
if [ -n "$group" ]; then chgrp -- "$group" "$store/cache" 2>/dev/null; chmod 3770 -- "$store/cache" 2>/dev/null; fi
printf 'store %s\\n' "$(cd -- "$store" && pwd -P)"
declare -A trusted=()
me=$(id -u)
IFS=, read -ra names <<<"$tusers"
for u in "\${names[@]}"; do [ -n "$u" ] && uid=$(id -u -- "$u" 2>/dev/null) && trusted[$uid]=1; done
IFS=, read -ra names <<<"$tgroups"
for g in "\${names[@]}"; do
  [ -n "$g" ] || continue
  line=$(getent group -- "$g") || continue
  gid=$(printf '%s' "$line" | cut -d: -f3); members=$(printf '%s' "$line" | cut -d: -f4)
  IFS=, read -ra ms <<<"$members"
  for u in "\${ms[@]}"; do [ -n "$u" ] && uid=$(id -u -- "$u" 2>/dev/null) && trusted[$uid]=1; done
  while IFS=: read -r _ _ uid pgid _; do [ "$pgid" = "$gid" ] && trusted[$uid]=1; done < <(getent passwd)
done
i=0
declare -a mine=()
while IFS= read -r k; do
  f=$store/cache/\${k:0:2}/$k.json
  if [ -f "$f" ] && [ ! -L "$f" ]; then
    ok=0
    if [ -O "$f" ]; then ok=1; mine+=("$f")
    elif [ "\${#trusted[@]}" -gt 0 ]; then
      owner=$(stat -c %u -- "$f" 2>/dev/null) && [ -n "\${trusted[$owner]+x}" ] && ok=1
    fi
    if [ "$ok" = 1 ]; then
      line=
      IFS= read -r -n 1048576 line <"$f" || true
      [ -n "$line" ] && printf 'hit %s %s\\n' "$i" "$line"
    else
      printf 'untrusted %s\\n' "$i"
    fi
  fi
  i=$((i + 1))
done
[ "\${#mine[@]}" -gt 0 ] && printf '%s\\0' "\${mine[@]}" | xargs -0 -r touch -c -- 2>/dev/null
printf 'end %s\\n' "$i"
`;

/** Parses the query's answer, validating every entry (an unusable one is a miss, named in `invalid`). */
export function parseCacheAnswer(stdout: string, keys: readonly string[]): CacheAnswer {
  const entries = new Map<string, CacheEntry>();
  const invalid: string[] = [];
  let untrusted = 0;
  let storePath: string | null = null;
  let end: number | null = null;
  for (const line of stdout.split("\n")) {
    if (line === "") continue;
    let m: RegExpExecArray | null;
    if ((m = /^store (\/.*)$/.exec(line))) storePath = m[1] as string;
    else if ((m = /^end (\d+)$/.exec(line))) end = Number(m[1]);
    else if ((m = /^untrusted (\d+)$/.exec(line))) untrusted += 1;
    else if ((m = /^hit (\d+) (.*)$/.exec(line))) {
      const key = keys[Number(m[1])];
      if (key === undefined) throw new Error(`the cache's answer names key #${m[1]} of ${keys.length}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(m[2] as string);
      } catch {
        invalid.push(key);
        continue;
      }
      const entry = cacheEntrySchema.safeParse(parsed);
      if (!entry.success || entry.data.key !== key || !entry.data.state.success) invalid.push(key);
      else entries.set(key, entry.data);
    }
  }
  if (end !== keys.length) throw new Error(`the cache read ${end ?? "no"} keys of ${keys.length}: the answer was cut short`);
  if (storePath === null) throw new Error("the cache's answer does not say where the store is");
  return { storePath, entries, untrusted, invalid };
}

/** ONE round trip: which of `keys` the store holds, with the trusted entries. */
export async function queryCache(transport: Transport, keys: readonly string[], options: CacheQuery): Promise<CacheAnswer> {
  for (const k of keys) if (!CACHE_KEY_PATTERN.test(k)) throw new Error(`not a cache key: ${preview(k)}`);
  const trust = options.trust ?? {};
  const result = await transport.exec(
    ["bash", "-c", QUERY_SCRIPT, "hpcpipe-cache-query", remotePath(options.store), options.group ?? "", (trust.users ?? []).join(","), (trust.groups ?? []).join(",")],
    { stdin: keys.map((k) => `${k}\n`).join(""), retrySafe: true, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) },
  );
  if (result.code !== 0) {
    throw new RemoteCommandError(`asking the step cache in ${options.store} failed (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 2000)}`, ["cache-query"], result.code, result.signal, result.stdout, result.stderr);
  }
  return parseCacheAnswer(result.stdout, keys);
}

/** The state file a restored step gets in the new run: the cached one under its new key, restored at `now`, marked cached. */
export function restoredState(entry: CacheEntry, concreteKey: string, now: string): StateFile {
  // Restored now (so a map's time spans this run), with the duration it took when it ran; `cached` says when that was.
  return { ...entry.state, key: concreteKey, timestamp: now, cached: { run: entry.run, step: entry.step, key: entry.key, ran: entry.state.timestamp } };
}

/** The queries' script, for tests that run it with a local bash. */
export const CACHE_SCRIPTS = { query: QUERY_SCRIPT } as const;
