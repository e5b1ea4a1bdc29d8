/**
 * Looking after the store (`hpcpipe cache ls` / `hpcpipe cache prune`): sizes,
 * and removing blobs nobody uses. A blob is in use while a run directory holds
 * it: a run's work/ files are hard links to the blobs they were laid out from,
 * so a blob with more than one link is never removed, whatever its age (a run
 * whose jobs are still active always holds its blobs). Every layout sets a
 * blob's modification time (its last use); `prune --older-than D` removes the
 * caller's own blobs that no run directory links and that were last used
 * longer ago than D. A submission that finds a blob gone (pruned between its
 * query and its layout, or purged by the site) sends it again.
 */
import { remotePath, RemoteCommandError } from "../transport/index.js";
import type { Transport } from "../transport/index.js";
import { preview } from "../core/preview.js";

export interface StoreUsage {
  blobs: number;
  bytes: number;
  /** Blobs that no run directory links (link count 1). */
  unlinked: number;
  unlinkedBytes: number;
  /** Of those, the ones last used more than `olderThanS` ago and owned by the caller: what prune would remove. */
  prunable: number;
  prunableBytes: number;
  /** Uploads left behind in incoming/ (interrupted). */
  incoming: number;
  /** Step cache entries (src/cache), and those `prune` would remove: the caller's own, last used more than `olderThanS` ago. */
  entries: number;
  entriesBytes: number;
  prunableEntries: number;
  prunableEntriesBytes: number;
}

// $1 store, $2 age in minutes, $3 "prune" or "ls". Prints "entries N B", "prunable_entries N B", "blobs N B",
// "unlinked N B", "prunable N B", "incoming N"; with prune, first removes the prunable step cache entries (own,
// last used more than $2 minutes ago: a hit marks its file used; a family file goes as a whole), then the prunable blobs (own, one link, last
// used more than $2 minutes ago), and temp files that writers killed mid-way left for more than a day.
const MANAGE_SCRIPT = `set -u
store=$1 minutes=$2 action=$3
count() { awk '{ n++; b += $1 } END { printf "%d %d\\n", n, b }'; }
me=$(id -u)
if [ -d "$store/cache" ]; then
  # Entries: files of one entry (the layout before families) and the lines of family files (src/cache/remote.ts).
  # A family file is used, and pruned, as a whole.
  entries() {
    { find "$store/cache" -mindepth 2 -maxdepth 2 -type f -name '*.json' "$@" -printf '%s\\n'
      find "$store/cache/f" -mindepth 2 -maxdepth 2 -type f -name '*.jsonl' "$@" -printf '%s %p\\0' 2>/dev/null |
        while IFS=' ' read -r -d '' size path; do printf '%s %s\\n' "$size" "$(wc -l <"$path")"; done
    } | awk '{ n += (NF > 1 ? $2 : 1); b += $1 } END { printf "%d %d\\n", n, b }'
  }
  printf 'entries %s\\n' "$(entries)"
  printf 'prunable_entries %s\\n' "$(entries -user "$me" -mmin +"$minutes")"
  if [ "$action" = prune ]; then
    find "$store/cache" -mindepth 2 -maxdepth 2 -type f -name '*.json' -user "$me" -mmin +"$minutes" -delete
    find "$store/cache/f" -mindepth 2 -maxdepth 2 -type f -name '*.jsonl' -user "$me" -mmin +"$minutes" -delete 2>/dev/null
    find "$store/cache" -type f -name '.*.tmp' -user "$me" -mmin +1440 -delete
    find "$store/cache" -mindepth 1 -maxdepth 1 -type d -name '.query.*' -user "$me" -mmin +1440 -exec rm -rf -- {} +
    find "$store/cache/f" -mindepth 1 -maxdepth 1 -type d -user "$me" -empty -delete 2>/dev/null
  fi
else
  printf 'entries 0 0\\nprunable_entries 0 0\\n'
fi
if [ ! -d "$store/blobs" ]; then printf 'blobs 0 0\\nunlinked 0 0\\nprunable 0 0\\nincoming 0\\n'; exit 0; fi
printf 'blobs %s\\n' "$(find "$store/blobs" -type f -printf '%s\\n' | count)"
printf 'unlinked %s\\n' "$(find "$store/blobs" -type f -links 1 -printf '%s\\n' | count)"
printf 'prunable %s\\n' "$(find "$store/blobs" -type f -links 1 -user "$(id -u)" -mmin +"$minutes" -printf '%s\\n' | count)"
if [ "$action" = prune ]; then
  find "$store/blobs" -type f -links 1 -user "$(id -u)" -mmin +"$minutes" -delete
  find "$store/blobs" -type f -name '.*.tmp' -user "$me" -mmin +1440 -delete
  find "$store/blobs" -mindepth 1 -maxdepth 1 -type d -empty -delete 2>/dev/null
fi
printf 'incoming %s\\n' "$(find "$store/incoming" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)"
`;

/** "30d", "12h", "90m", "0" as minutes. */
export function parseAge(text: string): number {
  const m = /^(\d+)([dhm]?)$/.exec(text.trim());
  if (!m) throw new Error(`expected an age such as 30d, 12h or 90m, got ${preview(text, 40)}`);
  const n = Number(m[1]);
  return m[2] === "d" ? n * 1440 : m[2] === "h" ? n * 60 : m[2] === "m" ? n : n * 1440;
}

/** ONE round trip: the store's usage, and with `prune`, removes the prunable blobs. Returns the usage before pruning. */
export async function manageStore(transport: Transport, store: string, options: { olderThanMinutes: number; prune: boolean }): Promise<StoreUsage> {
  const result = await transport.exec(["bash", "-c", MANAGE_SCRIPT, "hpcpipe-store", remotePath(store), String(options.olderThanMinutes), options.prune ? "prune" : "ls"], { retrySafe: true, timeoutMs: 60 * 60_000 });
  if (result.code !== 0) throw new RemoteCommandError(`looking at the store ${store} failed (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 2000)}`, ["store-manage"], result.code, result.signal, result.stdout, result.stderr);
  const pair = (name: string): [number, number] => {
    const m = new RegExp(`^${name} (\\d+) (\\d+)$`, "m").exec(result.stdout);
    if (!m) throw new RemoteCommandError(`the store's answer has no "${name}" line`, ["store-manage"], result.code, result.signal, result.stdout, result.stderr);
    return [Number(m[1]), Number(m[2])];
  };
  const [blobs, bytes] = pair("blobs");
  const [unlinked, unlinkedBytes] = pair("unlinked");
  const [prunable, prunableBytes] = pair("prunable");
  const incoming = Number(/^incoming (\d+)$/m.exec(result.stdout)?.[1] ?? 0);
  const [entries, entriesBytes] = pair("entries");
  const [prunableEntries, prunableEntriesBytes] = pair("prunable_entries");
  return { blobs, bytes, unlinked, unlinkedBytes, prunable, prunableBytes, incoming, entries, entriesBytes, prunableEntries, prunableEntriesBytes };
}
