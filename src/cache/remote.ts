/**
 * The step cache on the cluster, beside the blob store:
 *
 *   <store>/cache/f/<family>/<run>.<host>.<pid>.jsonl
 *                                   the entries one job process wrote for the
 *                                   steps of one family (CacheKeys.families:
 *                                   a step's definition, the code and the
 *                                   environment), one line of JSON each
 *                                   (templates/lib.sh, _hp_cache_write): its
 *                                   key, state, published values and declared
 *                                   outputs as blobs. A line a crash cut short
 *                                   is not valid JSON: a miss.
 *   <store>/cache/ab/<key>.json     one entry in one file: the layout before
 *                                   families, still read until pruned.
 *
 * Who wrote an entry is the owner (uid) of its file, never a field inside it:
 * the directories are sticky (no user can replace another's file), and a run
 * uses only its own user's entries and those of the users and groups the
 * cluster config trusts (`cache_trust`). Input blobs are safe to share
 * because each is checked against its hash; a cached result cannot be
 * checked that way, hence the trust rule.
 *
 * A submission asks in ONE round trip which of its keys the store holds: only
 * the directories of its plan's families are read (one awk pass over their
 * files, holding the keys asked for), and the reply carries the trusted
 * entries themselves, streamed, so restoring them needs no further query.
 * A file with an entry used is touched: its last use, for `cache prune`,
 * which removes whole files.
 */
import { StringDecoder } from "node:string_decoder";
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

// $1 store, $2 group, $3 trusted users (comma-separated), $4 trusted groups. Stdin: "F <family>" lines, each
// followed by the keys of that family, one a line. Prints "store <absolute path>"; for entries of one file each,
// "hit <index> <entry>" (index: of the key among the key lines) or "untrusted <index>"; for entries in family
// files, "hit - <entry>" or "untrusted-key <key>" (a key may be in several files); then "end <keys read>".
// Touches the caller's files that held a hit (their last use, for prune).
const QUERY_SCRIPT = `set -u
store=$1 group=$2 tusers=$3 tgroups=$4
if [ -n "$group" ]; then umask 007; else umask 077; fi
mkdir -p -- "$store/cache/f" || exit 2
if [ -n "$group" ]; then chgrp -- "$group" "$store/cache" "$store/cache/f" 2>/dev/null; chmod 3770 -- "$store/cache" "$store/cache/f" 2>/dev/null; fi
printf 'store %s\\n' "$(cd -- "$store" && pwd -P)"
declare -A trusted=()
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
tmp=$(mktemp -d -- "$store/cache/.query.XXXXXX") || exit 2
trap 'rm -rf -- "$tmp"' EXIT
cat >"$tmp/q" || exit 2
: >"$tmp/used"
# Entries of one file each (the layout before families): the keys that have one are found by one listing and
# an awk join (not a test per key: a million keys), then each is read.
old=0
for d in "$store/cache/"[0-9a-f][0-9a-f]; do [ -d "$d" ] && { old=1; break; }; done
if [ "$old" = 1 ]; then
  find "$store/cache/" -mindepth 2 -maxdepth 2 -name '*.json' -printf '%f\\n' 2>/dev/null >"$tmp/have"
  awk -v have="$tmp/have" 'BEGIN { while ((getline l < have) > 0) h[substr(l, 1, length(l) - 5)] = 1 }
    substr($0, 1, 2) != "F " { if ($0 in h) print i + 0, $0; i++ }' "$tmp/q" >"$tmp/old" || exit 2
  while read -r i k; do
    f=$store/cache/\${k:0:2}/$k.json
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      ok=0
      if [ -O "$f" ]; then ok=1; printf '%s\\n' "$f" >>"$tmp/used"
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
  done <"$tmp/old"
fi
# Family files: one awk pass over a family's files, holding the keys asked of that family. t=2 marks the
# caller's files, 1 those of trusted users, 0 the others (their entries are counted, not sent).
while IFS= read -r line; do
  case $line in "F "*) ;; *) continue ;; esac
  fam=\${line#F }
  [[ $fam =~ ^[0-9a-f]{64}$ ]] || continue
  dir=$store/cache/f/$fam
  [ -d "$dir" ] || continue
  args=()
  for f in "$dir"/*.jsonl; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    if [ -O "$f" ]; then args+=(t=2 "$f")
    elif [ "\${#trusted[@]}" -gt 0 ] && owner=$(stat -c %u -- "$f" 2>/dev/null) && [ -n "\${trusted[$owner]+x}" ]; then args+=(t=1 "$f")
    else args+=(t=0 "$f")
    fi
  done
  [ "\${#args[@]}" -gt 0 ] || continue
  awk -v fam="$fam" -v used="$tmp/used" -v query="$tmp/q" '
    BEGIN { while ((getline l < query) > 0) { if (substr(l, 1, 2) == "F ") sec = substr(l, 3); else if (sec == fam) want[l] = 1 } }
    substr($0, 1, 19) == "{\\"format\\":1,\\"key\\":\\"" {
      k = substr($0, 20, 64)
      if (!(k in want)) next
      if (t == 0) { print "untrusted-key " k; next }
      print "hit - " $0
      if (t == 2 && !(FILENAME in seen)) { seen[FILENAME] = 1; print FILENAME >> used }
    }' "\${args[@]}" || exit 2
done < <(grep '^F ' "$tmp/q")
[ -s "$tmp/used" ] && xargs -d '\\n' -r touch -c -- <"$tmp/used" 2>/dev/null
printf 'end %s\\n' "$(grep -vc '^F ' "$tmp/q")"
`;

/**
 * Reads the query's answer line by line as it streams in (a million hits do not fit one string),
 * validating every entry: an unusable one is a miss, named in `invalid`. `keys` are the key lines
 * of the query in order; the first valid trusted entry of a key wins.
 */
export class CacheAnswerReader {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly invalid = new Set<string>();
  private readonly untrusted = new Set<string>();
  private readonly keys: QueryKeys;
  private storePath: string | null = null;
  private end: number | null = null;
  private rest = "";
  private readonly decoder = new StringDecoder("utf8");

  /** The keys asked, in the order of the query's key lines (a list, or cacheQueryInput's). */
  constructor(keys: readonly string[] | QueryKeys) {
    this.keys = Array.isArray(keys) ? queryKeysOf(keys) : (keys as QueryKeys);
  }

  /** A chunk of the answer (any split; a line may span chunks). */
  write(chunk: Buffer | string): void {
    const text = this.rest + (typeof chunk === "string" ? chunk : this.decoder.write(chunk));
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      this.line(text.slice(start, nl));
      start = nl + 1;
    }
    this.rest = text.slice(start);
  }

  /** An entry sent for `key`: the first valid one of a key wins; a key with none is invalid. */
  private entry(key: string, json: string): void {
    if (!this.keys.has(key) || this.entries.has(key)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      this.invalid.add(key);
      return;
    }
    const entry = cacheEntrySchema.safeParse(parsed);
    if (!entry.success || entry.data.key !== key || !entry.data.state.success) this.invalid.add(key);
    else {
      this.entries.set(key, entry.data);
      this.invalid.delete(key);
    }
  }

  private line(line: string): void {
    if (line === "") return;
    let m: RegExpExecArray | null;
    if (line.startsWith("hit - ")) {
      // The script sent it for its key, at a fixed place: {"format":1,"key":"<64 hex>"...
      const key = line.slice(25, 89);
      if (line.startsWith('{"format":1,"key":"', 6) && CACHE_KEY_PATTERN.test(key)) this.entry(key, line.slice(6));
    }
    else if ((m = /^hit (\d+) /.exec(line))) {
      const key = this.keys.at(Number(m[1]));
      if (key === undefined) throw new Error(`the cache's answer names key #${m[1]} of ${this.keys.length}`);
      this.entry(key, line.slice(m[0].length));
    } else if ((m = /^untrusted-key ([0-9a-f]{64})$/.exec(line))) this.untrusted.add(m[1] as string);
    else if ((m = /^untrusted (\d+)$/.exec(line))) {
      const key = this.keys.at(Number(m[1]));
      if (key !== undefined) this.untrusted.add(key);
    } else if ((m = /^store (\/.*)$/.exec(line))) this.storePath = m[1] as string;
    else if ((m = /^end (\d+)$/.exec(line))) this.end = Number(m[1]);
  }

  /** The answer, once it has all arrived. */
  finish(): CacheAnswer {
    this.rest += this.decoder.end();
    if (this.rest !== "") {
      this.line(this.rest);
      this.rest = "";
    }
    if (this.end !== this.keys.length) throw new Error(`the cache read ${this.end ?? "no"} keys of ${this.keys.length}: the answer was cut short`);
    if (this.storePath === null) throw new Error("the cache's answer does not say where the store is");
    let untrusted = 0;
    for (const key of this.untrusted) if (!this.entries.has(key)) untrusted += 1;
    return { storePath: this.storePath, entries: this.entries, untrusted, invalid: [...this.invalid] };
  }
}

/** Parses a whole answer (see CacheAnswerReader). */
export function parseCacheAnswer(stdout: string, keys: readonly string[] | QueryKeys): CacheAnswer {
  const reader = new CacheAnswerReader(keys);
  reader.write(stdout);
  return reader.finish();
}

/** The keys of a query in the order of its stdin's key lines: the i-th key line, and whether a key was asked. */
export interface QueryKeys {
  readonly length: number;
  at(index: number): string | undefined;
  has(key: string): boolean;
}

/** The QueryKeys of a list of keys. */
export function queryKeysOf(list: readonly string[]): QueryKeys {
  const wanted = new Set(list);
  return { length: list.length, at: (i) => list[i], has: (k) => wanted.has(k) };
}

/**
 * The query's stdin and its key lines in order: each family (`F <family>`), then its keys, one per line.
 * Written straight into one buffer, and the keys read back from it: at a million items (two million keys)
 * a list of the keys, their lines and the text joined from them held some 450 MB; the buffer is 130 MB.
 */
export function cacheQueryInput(families: ReadonlyMap<string, Iterable<string>>): { stdin: Buffer; keys: QueryKeys } {
  const groups: Array<{ family: string; members: Iterable<string> & { readonly size: number }; set?: ReadonlySet<string> }> = [];
  let bytes = 0;
  for (const [family, members] of families) {
    if (!CACHE_KEY_PATTERN.test(family)) throw new Error(`not a cache family: ${preview(family)}`);
    // Keys with a size (a Set, or the step keys' FamilyKeys) are written as they are; keys of two families are
    // never the same (the family is in the key). A key twice in a family is asked twice: an answer is per line.
    const sized = typeof (members as { size?: unknown }).size === "number" ? (members as Iterable<string> & { readonly size: number }) : new Set(members);
    groups.push({ family, members: sized });
    bytes += 67 + 65 * sized.size;
  }
  const stdin = Buffer.allocUnsafe(bytes);
  // Per family: the byte offset of its first key line, and that key's index.
  const offsets: number[] = [];
  const firsts: number[] = [];
  let offset = 0;
  let count = 0;
  for (const { family, members } of groups) {
    offset += stdin.write(`F ${family}\n`, offset, "latin1");
    offsets.push(offset);
    firsts.push(count);
    const end = offset + 65 * members.size;
    for (const k of members) {
      if (!CACHE_KEY_PATTERN.test(k)) throw new Error(`not a cache key: ${preview(k)}`);
      if (offset >= end) throw new Error(`family ${family} has more keys than its size`);
      stdin.write(k, offset, "latin1");
      stdin[offset + 64] = 0x0a;
      offset += 65;
      count += 1;
    }
    if (offset !== end) throw new Error(`family ${family} has fewer keys than its size`);
  }
  const at = (index: number): string | undefined => {
    if (!Number.isSafeInteger(index) || index < 0 || index >= count) return undefined;
    let g = firsts.length - 1;
    while (g > 0 && (firsts[g] as number) > index) g -= 1;
    const start = (offsets[g] as number) + (index - (firsts[g] as number)) * 65;
    return stdin.toString("latin1", start, start + 64);
  };
  // Asked only of an answer line that names its key (entries stored one per file, the layout before families).
  const has = (key: string): boolean =>
    groups.some((g) => {
      g.set ??= g.members instanceof Set ? (g.members as ReadonlySet<string>) : new Set(g.members);
      return g.set.has(key);
    });
  return { stdin, keys: { length: count, at, has } };
}

/** ONE round trip: which keys of each family (family -> its keys) the store holds, with the trusted entries. */
export async function queryCache(transport: Transport, families: ReadonlyMap<string, Iterable<string>>, options: CacheQuery): Promise<CacheAnswer> {
  const { stdin, keys } = cacheQueryInput(families);
  const trust = options.trust ?? {};
  let reader = new CacheAnswerReader(keys);
  const result = await transport.exec(
    ["bash", "-c", QUERY_SCRIPT, "hpcpipe-cache-query", remotePath(options.store), options.group ?? "", (trust.users ?? []).join(","), (trust.groups ?? []).join(",")],
    {
      stdin,
      retrySafe: true,
      // Streamed: the answer grows with the hits (a million items' entries are far over any cap on a kept answer).
      stdoutSink: () => (reader = new CacheAnswerReader(keys)),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    },
  );
  if (result.code !== 0) {
    throw new RemoteCommandError(`asking the step cache in ${options.store} failed (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 2000)}`, ["cache-query"], result.code, result.signal, result.stdout, result.stderr);
  }
  // A transport may keep stdout instead of streaming it: read both.
  if (result.stdout !== "") reader.write(result.stdout);
  return reader.finish();
}

/** The state file a restored step gets in the new run: the cached one under its new key, restored at `now`, marked cached. */
export function restoredState(entry: CacheEntry, concreteKey: string, now: string): StateFile {
  // Restored now (so a map's time spans this run), with the duration it took when it ran; `cached` says when that was.
  return { ...entry.state, key: concreteKey, timestamp: now, cached: { run: entry.run, step: entry.step, key: entry.key, ran: entry.state.timestamp } };
}

/** The queries' script, for tests that run it with a local bash. */
export const CACHE_SCRIPTS = { query: QUERY_SCRIPT } as const;
