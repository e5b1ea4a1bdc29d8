/**
 * Content-addressed staging of a run's input files on the cluster
 * (DESIGN.md §8). The files a run needs (the spec's bundle) go into a store
 * of blobs named by their SHA-256, sharded by the first two hex digits:
 *
 *   <store>/blobs/ab/ab12...ef      read-only (0444) once verified
 *   <store>/incoming/<host>.<pid>.<n>/   an upload in progress
 *
 * A submission costs at most three round trips whatever the number of files:
 *   1. ONE query: which of these hashes are missing (the reply is index
 *      ranges, so a million blobs never make a reply over the output cap);
 *   2. ONE stream of only the missing blobs (a tar read from disk as it is
 *      sent, never whole in memory), each verified against its name and
 *      renamed into place atomically (two uploads of one blob end with one
 *      good copy);
 *   3. ONE layout of the run's work/ directory from the store: a hard link
 *      where the blob is ours and on the same filesystem, else a copy that is
 *      verified; never a symlink (relative references inside assets, a glTF's
 *      .bin or Blender's // paths, must resolve next to the file). Every blob
 *      is verified again before use; a corrupt one is removed and reported,
 *      and the submission sends it again.
 * An upload cut short (a dropped connection) leaves whole blobs in its
 * incoming directory; the next query promotes the ones that verify, so only
 * what never arrived is sent again.
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { ConnectionLostError, remotePath, RemoteCommandError, tarStream } from "../transport/index.js";
import type { Transport } from "../transport/index.js";
import { formatBytes } from "./format.js";
import { hashFile, mapLimit, SHA256_HEX } from "./hash.js";
import { hashWithCache } from "./hash-cache.js";
import { preview } from "../core/preview.js";

/** A local file to stage: where it is here, where it goes under the run directory (`work/...`), its size. */
export interface LocalFile {
  abs: string;
  rel: string;
  size: number;
}

/** A local file with its content hash. */
export interface StagedFile extends LocalFile {
  sha256: string;
}

/** A blob the cluster's store holds in a bad state (corrupt, unreadable): named for messages. */
export class StoreError extends Error {
  override name = "StoreError";
}

/** Where the store lives for a cluster: the config's `store`, else `<workdir>/.hpcpipe/store`. */
export function storeDir(config: { workdir: string; store?: string | undefined }): string {
  return config.store ?? `${config.workdir.replace(/\/+$/, "")}/.hpcpipe/store`;
}

/**
 * Hashes every file (streamed, a few at once). With `cacheDir`, a file whose
 * size, times and inode did not change since it was last hashed keeps its
 * hash (src/store/hash-cache.ts): a resubmission of 2,000 models only stats them.
 */
export async function hashBundle(files: readonly LocalFile[], cacheDir: string | null = null): Promise<StagedFile[]> {
  if (cacheDir !== null) {
    const hashed = await hashWithCache(files.map((f) => f.abs), cacheDir);
    return files.map((file, i) => {
      const h = hashed[i] as { size: number; sha256: string };
      if (h.size !== file.size) throw new StoreError(`${file.abs} changed while it was staged (${file.size} then ${h.size} bytes)`);
      return { ...file, sha256: h.sha256 };
    });
  }
  return mapLimit(files, 4, async (file) => {
    const digest = await hashFile(file.abs);
    if (digest.size !== file.size) throw new StoreError(`${file.abs} changed while it was staged (${file.size} then ${digest.size} bytes)`);
    return { ...file, sha256: digest.sha256 };
  });
}

// Shared by the remote scripts: promote the verified blobs of an upload directory into blobs/.
// A file whose SHA-256 is not its name is deleted and reported as "bad <name>".
const PROMOTE = `
promote() {
  local dir=$1 sum name
  local -a good=()
  local -A shards=()
  while read -r sum name; do
    name=\${name#\\*}; name=\${name##*/}
    if [ "$sum" = "$name" ]; then
      good+=("$name"); shards[\${sum:0:2}]=1
    else
      rm -f -- "$dir/$name"; printf 'bad %s\\n' "$name"
    fi
  done < <(cd -- "$dir" && find . -maxdepth 1 -type f -name '[0-9a-f]*' -print0 | xargs -0 -r sha256sum --)
  [ "\${#good[@]}" -gt 0 ] || return 0
  # A few processes for the whole upload, not a few per blob: one chmod, one mkdir, one mv per shard.
  (cd -- "$dir" && printf '%s\\0' "\${good[@]}" | xargs -0 chmod "$mode_blob" --) || return 1
  local shard
  for shard in "\${!shards[@]}"; do printf '%s\\0' "$store/blobs/$shard"; done | xargs -0 mkdir -p -- || return 1
  if command -v perl >/dev/null 2>&1; then
    # One process renames them all (rename(2), atomic: a blob another upload put there first is replaced by the same bytes).
    (cd -- "$dir" && printf '%s\\0' "\${good[@]}" | HP_BLOBS="$store/blobs" perl -0 -ne 'chomp; rename($_, "$ENV{HP_BLOBS}/" . substr($_, 0, 2) . "/$_") or exit 1') || return 1
  else
    for shard in "\${!shards[@]}"; do
      (cd -- "$dir" && find . -maxdepth 1 -type f -name "$shard*" -print0 | xargs -0 -r mv -f -t "$store/blobs/$shard" --) || return 1
    done
  fi
  promoted=$((promoted + \${#good[@]}))
}
setup_store() {
  if [ -n "$group" ]; then umask 007; mode_blob=0444; else umask 077; mode_blob=0444; fi
  mkdir -p -- "$store/blobs" "$store/incoming" || exit 2
  if [ -n "$group" ]; then chgrp -- "$group" "$store" "$store/blobs" "$store/incoming" 2>/dev/null; chmod 2770 -- "$store" "$store/blobs" 2>/dev/null; chmod 3770 -- "$store/incoming" 2>/dev/null; fi
  promoted=0
}
`;

// $1 store, $2 group ('' = private). Stdin: one hash a line. First promotes what uploads that are no
// longer running left behind (a dropped connection), then prints the indexes of the missing hashes as
// ranges ("3", "5-9"), then "end <count>".
const MISSING_SCRIPT = `set -u
store=$1 group=$2
${PROMOTE}
setup_store
host=$(hostname -s 2>/dev/null || hostname)
for dir in "$store"/incoming/*/; do
  [ -d "$dir" ] || continue
  name=\${dir%/}; name=\${name##*/}
  h=\${name%%.*}; rest=\${name#*.}; pid=\${rest%%.*}
  if [ "$h" = "$host" ]; then
    [ -d "/proc/$pid" ] && continue
  elif [ -z "$(find "$dir" -maxdepth 0 -mmin +1440 2>/dev/null)" ]; then
    continue
  fi
  [ -O "$dir" ] || continue
  promote "\${dir%/}" >/dev/null
  rm -rf -- "$dir"
done
[ "$promoted" -gt 0 ] && printf 'recovered %s\\n' "$promoted"
i=0 start=-1 prev=-1
flush() { if [ "$start" -ge 0 ]; then if [ "$start" -eq "$prev" ]; then printf '%s\\n' "$start"; else printf '%s-%s\\n' "$start" "$prev"; fi; fi; }
while IFS= read -r h; do
  if [ ! -f "$store/blobs/\${h:0:2}/$h" ]; then
    if [ "$start" -ge 0 ] && [ "$prev" -eq $((i - 1)) ]; then prev=$i; else flush; start=$i; prev=$i; fi
  fi
  i=$((i + 1))
done
flush
printf 'end %s\\n' "$i"
`;

// $1 store, $2 group. Stdin: a tar of files named by their hash. Prints "stored <n>", and "bad <hash>"
// for every blob whose bytes do not match its name (dropped).
const RECEIVE_SCRIPT = `set -u
# A dropped connection closes stdout: finish promoting what arrived whole regardless.
trap '' PIPE HUP
store=$1 group=$2
${PROMOTE}
setup_store
host=$(hostname -s 2>/dev/null || hostname)
incoming=$store/incoming/$host.$$.$RANDOM
mkdir -m 700 -- "$incoming" || exit 2
status=0
tar -x --no-same-owner --no-same-permissions -f - -C "$incoming" || status=3
# Also after a stream cut short: the whole blobs it delivered are kept (a partial one fails its hash).
promote "$incoming" || status=4
rm -rf -- "$incoming"
printf 'stored %s\\n' "$promoted"
exit "$status"
`;

// $1 store, $2 run dir. Stdin: NUL-terminated records "<hash> <path under the run dir>".
// Verifies every blob once (one sha256sum over all of them), then links (ours, same filesystem) or
// copies and verifies (another user's, another filesystem) each file into place, read-only.
// Prints "corrupt <hash>" / "missing <hash>" and exits 3 when any blob cannot be used (nothing is
// laid out then), "laid <linked> <copied>" when all went in.
const LAYOUT_SCRIPT = `set -u
store=$1 run=$2
umask 077
cd -- "$run" || exit 2
declare -a hashes=() paths=()
declare -A want=() dirs=()
while IFS= read -r -d '' rec; do
  h=\${rec%% *}; p=\${rec#* }
  hashes+=("$h"); paths+=("$p"); want[$h]=1
  [[ $p == */* ]] && dirs[\${p%/*}]=1
done
declare -A good=()
problems=0
list=()
for h in "\${!want[@]}"; do
  b=$store/blobs/\${h:0:2}/$h
  if [ -f "$b" ] && [ -r "$b" ]; then list+=("$b"); else printf 'missing %s\\n' "$h"; problems=1; fi
done
if [ "\${#list[@]}" -gt 0 ]; then
  while read -r sum name; do
    name=\${name#\\*}; base=\${name##*/}
    if [ "$sum" = "$base" ]; then good[$sum]=1; else
      printf 'corrupt %s\\n' "$base"; problems=1
      [ -O "$name" ] && rm -f -- "$name"
    fi
  done < <(printf '%s\\0' "\${list[@]}" | xargs -0 -r sha256sum --)
fi
[ "$problems" -eq 0 ] || exit 3
# Directories in one go; the blobs' mtime is their last use (hpcpipe cache prune --older-than): only the owner can set it.
if [ "\${#dirs[@]}" -gt 0 ]; then printf '%s\\0' "\${!dirs[@]}" | xargs -0 mkdir -p -- || exit 2; fi
printf '%s\\0' "\${list[@]}" | xargs -0 -r touch -c -- 2>/dev/null
# Hard links for our own blobs: with perl (on every Debian, and nearly every login node) in one process,
# else one ln a file. What could not be linked (another user's blob, another filesystem) is copied and verified.
pairs() { local i; for i in "\${!paths[@]}"; do h=\${hashes[$i]}; printf '%s\\0%s\\0' "$store/blobs/\${h:0:2}/$h" "\${paths[$i]}"; done; }
linker() {
  if command -v perl >/dev/null 2>&1; then
    perl -0 -e 'while (defined(my $b = <STDIN>)) { chomp $b; my $p = <STDIN>; chomp $p; my @s = stat $b; if (@s && $s[4] == $>) { unlink $p; next if link $b, $p; } print "$b\\0$p\\0"; }'
  else
    while IFS= read -r -d '' b && IFS= read -r -d '' p; do
      if [ -O "$b" ] && ln -f -- "$b" "$p" 2>/dev/null; then continue; fi
      printf '%s\\0%s\\0' "$b" "$p"
    done
  fi
}
copied=0
while IFS= read -r -d '' b && IFS= read -r -d '' p; do
  h=\${b##*/}
  tmp=$p.hpcpipe-copy.$$
  rm -f -- "$p"
  cp -- "$b" "$tmp" || exit 2
  sum=$(sha256sum -- "$tmp"); sum=\${sum%% *}
  if [ "$sum" != "$h" ]; then rm -f -- "$tmp"; printf 'corrupt %s\\n' "$h"; exit 3; fi
  chmod 0444 -- "$tmp" && mv -f -- "$tmp" "$p" || exit 2
  copied=$((copied + 1))
done < <(pairs | linker)
printf 'laid %s %s\\n' "$((\${#paths[@]} - copied))" "$copied"
`;

/** Parses "3", "5-9" lines into indexes, checked against the count the script read. */
export function parseMissing(stdout: string, count: number): { missing: number[]; recovered: number } {
  const missing: number[] = [];
  let end: number | null = null;
  let recovered = 0;
  for (const raw of stdout.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    let m: RegExpMatchArray | null;
    if ((m = /^end (\d+)$/.exec(line))) end = Number(m[1]);
    else if ((m = /^recovered (\d+)$/.exec(line))) recovered = Number(m[1]);
    else if ((m = /^(\d+)(?:-(\d+))?$/.exec(line))) {
      const from = Number(m[1]);
      const to = m[2] === undefined ? from : Number(m[2]);
      if (to < from || to >= count) throw new StoreError(`the store's answer has a bad range ${preview(line)} for ${count} hashes`);
      for (let i = from; i <= to; i++) missing.push(i);
    }
  }
  if (end !== count) throw new StoreError(`the store read ${end ?? "no"} hashes of ${count}: the answer was cut short`);
  return { missing, recovered };
}

export interface StageOptions {
  /** The store directory (storeDir(config)). */
  store: string;
  /** A group that shares the store (mode 2770 directories), or none. */
  group?: string | undefined;
  /** Bytes sent so far of the total to send, for a progress bar. */
  onBytes?: (sent: number, total: number) => void;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Distinct blobs, in the order of first use. */
export function distinctBlobs(files: readonly StagedFile[]): StagedFile[] {
  const seen = new Map<string, StagedFile>();
  for (const f of files) if (!seen.has(f.sha256)) seen.set(f.sha256, f);
  return [...seen.values()];
}

/** ONE round trip: the indexes (into `blobs`) of the blobs the store lacks. */
export async function missingBlobs(transport: Transport, blobs: readonly StagedFile[], options: StageOptions): Promise<{ missing: StagedFile[]; recovered: number }> {
  for (const b of blobs) if (!SHA256_HEX.test(b.sha256)) throw new StoreError(`not a SHA-256: ${preview(b.sha256)}`);
  const result = await transport.exec(["bash", "-c", MISSING_SCRIPT, "hpcpipe-store-missing", remotePath(options.store), options.group ?? ""], {
    stdin: blobs.map((b) => `${b.sha256}\n`).join(""),
    retrySafe: true,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (result.code !== 0) throw new RemoteCommandError(`asking the store ${options.store} which blobs are missing failed (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 2000)}`, ["store-missing"], result.code, result.signal, result.stdout, result.stderr);
  const { missing, recovered } = parseMissing(result.stdout, blobs.length);
  return { missing: missing.map((i) => blobs[i] as StagedFile), recovered };
}

/** Joins small buffers into chunks of about `size` bytes: one SSH packet per tar header or small file would cost far more than the bytes. */
async function* coalesce(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let bytes = 0;
  for await (const b of source) {
    if (b.length >= size && bytes === 0) {
      yield b;
      continue;
    }
    parts.push(b);
    bytes += b.length;
    if (bytes >= size) {
      yield Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}

/** ONE stream of `blobs` into the store, read from disk as it is sent. Returns the bytes sent. */
export async function sendBlobs(transport: Transport, blobs: readonly StagedFile[], options: StageOptions): Promise<number> {
  const total = blobs.reduce((t, b) => t + b.size, 0);
  let sent = 0;
  const entries = blobs.map((b) => ({
    path: b.sha256,
    size: b.size,
    mode: 0o400,
    open: async function* () {
      // A small file in one read; a large one streamed in 1 MiB chunks.
      const chunks = b.size <= 1 << 20 ? [await readFile(b.abs)] : createReadStream(b.abs, { highWaterMark: 1 << 20 });
      for await (const chunk of chunks) {
        const data = chunk as Buffer;
        sent += data.length;
        options.onBytes?.(sent, total);
        yield data;
      }
    },
  }));
  const stream = Readable.from(coalesce(tarStream(entries), 256 * 1024));
  const result = await transport.exec(["bash", "-c", RECEIVE_SCRIPT, "hpcpipe-store-receive", remotePath(options.store), options.group ?? ""], {
    stdin: stream,
    retrySafe: false,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const bad = result.stdout
    .split("\n")
    .filter((l) => l.startsWith("bad "))
    .map((l) => l.slice(4).trim());
  if (result.code !== 0 || bad.length > 0) {
    const byHash = new Map(blobs.map((b) => [b.sha256, b.abs]));
    const names = bad.map((h) => byHash.get(h) ?? h);
    const why = bad.length > 0 ? `arrived with other bytes than were hashed: ${names.slice(0, 5).join(", ")}${names.length > 5 ? ` and ${names.length - 5} more` : ""}` : `exit ${String(result.code ?? result.signal)}: ${result.stderr.trim().slice(0, 2000)}`;
    throw new RemoteCommandError(`sending ${blobs.length} blob(s) to the store ${options.store} failed: ${why}`, ["store-receive"], result.code, result.signal, result.stdout, result.stderr);
  }
  return sent;
}

/** ONE round trip: lays out `<runDir>/<file.rel>` from the store. Returns the hashes that could not be used (corrupt or missing), or [] when all were laid out. */
export async function layoutRun(transport: Transport, runDir: string, files: readonly StagedFile[], options: StageOptions): Promise<{ bad: string[]; linked: number; copied: number }> {
  const records = files.map((f) => `${f.sha256} ${f.rel}\0`).join("");
  const result = await transport.exec(["bash", "-c", LAYOUT_SCRIPT, "hpcpipe-store-layout", remotePath(options.store), remotePath(runDir)], {
    stdin: records,
    retrySafe: true,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const bad = result.stdout
    .split("\n")
    .map((l) => /^(?:corrupt|missing) ([0-9a-f]{64})$/.exec(l.trim())?.[1])
    .filter((h): h is string => h !== undefined);
  if (result.code === 3 && bad.length > 0) return { bad, linked: 0, copied: 0 };
  const laid = /^laid (\d+) (\d+)$/m.exec(result.stdout);
  if (result.code !== 0 || !laid) throw new RemoteCommandError(`laying out ${runDir}/work from the store ${options.store} failed (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 2000)}`, ["store-layout"], result.code, result.signal, result.stdout, result.stderr);
  return { bad: [], linked: Number(laid[1]), copied: Number(laid[2]) };
}

export interface EnsureOutcome {
  /** Distinct blobs the run needs, and how many the store already had. */
  blobs: number;
  had: number;
  /** Blobs sent, and their bytes. */
  sent: number;
  sentBytes: number;
  /** Blobs an earlier, interrupted upload had left whole and that were kept. */
  recovered: number;
  /** Uploads resumed after a dropped connection. */
  resumed: number;
}

/**
 * Makes sure the store holds every blob of `files`: ONE query for the missing
 * ones, ONE stream of those. When the connection drops in the middle of the
 * stream, the blobs that arrived whole are kept, and the upload resumes on a
 * new connection with only what is still missing (at most `attempts` times).
 */
export async function ensureBlobs(
  transport: Transport,
  files: readonly StagedFile[],
  options: StageOptions & { attempts?: number; onStatus?: (message: string) => void },
): Promise<EnsureOutcome> {
  const blobs = distinctBlobs(files);
  const outcome: EnsureOutcome = { blobs: blobs.length, had: 0, sent: 0, sentBytes: 0, recovered: 0, resumed: 0 };
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    const { missing, recovered } = await missingBlobs(transport, blobs, options);
    outcome.recovered += recovered;
    if (attempt === 1) {
      outcome.had = blobs.length - missing.length;
      const bytes = missing.reduce((t, b) => t + b.size, 0);
      options.onStatus?.(`bundle: ${files.length} file(s); ${outcome.had} blob(s) already in the store${recovered > 0 ? ` (${recovered} kept from an interrupted upload)` : ""}; sending ${missing.length} (${formatBytes(bytes)})`);
    }
    if (missing.length === 0) return outcome;
    try {
      outcome.sentBytes += await sendBlobs(transport, missing, options);
      outcome.sent += missing.length;
      return outcome;
    } catch (error) {
      if (!(error instanceof ConnectionLostError) || attempt >= attempts) throw error;
      outcome.resumed += 1;
      options.onStatus?.(`the connection dropped while sending blobs; resuming with what the store still lacks (attempt ${attempt + 1} of ${attempts})`);
    }
  }
}

/**
 * Lays out the run's work/ from the store (ONE round trip); a blob found
 * corrupt or missing is sent again once, then the layout is tried again; if it
 * is still unusable, fails naming the files.
 */
export async function layoutWithRepair(
  transport: Transport,
  runDir: string,
  files: readonly StagedFile[],
  options: StageOptions & { onStatus?: (message: string) => void },
  /**
   * Files laid out in the same round trip that the client cannot send again (the outputs of steps restored
   * from the step cache): a bad blob among them fails the layout, naming it.
   */
  fromStore: readonly StagedFile[] = [],
): Promise<{ linked: number; copied: number; repaired: number }> {
  const all = fromStore.length === 0 ? files : [...files, ...fromStore];
  let laid = await layoutRun(transport, runDir, all, options);
  if (laid.bad.length === 0) return { linked: laid.linked, copied: laid.copied, repaired: 0 };
  const sendable = new Set(files.map((f) => f.sha256));
  const lost = laid.bad.filter((h) => !sendable.has(h));
  if (lost.length > 0) {
    const names = lost.map((h) => fromStore.find((o) => o.sha256 === h)?.abs ?? h);
    throw new StoreError(`${names.slice(0, 5).join(", ")}${names.length > 5 ? ` and ${names.length - 5} more` : ""}: gone from the store or corrupt since it was asked (pruned or purged meanwhile?); submit again, or with --no-cache`);
  }
  const badSet = new Set(laid.bad);
  const again = distinctBlobs(files).filter((b) => badSet.has(b.sha256));
  options.onStatus?.(`the store had ${again.length} corrupt or missing blob(s); sending them again`);
  await sendBlobs(transport, again, options);
  laid = await layoutRun(transport, runDir, all, options);
  if (laid.bad.length > 0) {
    const byHash = new Map(all.map((f) => [f.sha256, f.abs]));
    const names = laid.bad.map((h) => byHash.get(h) ?? h);
    throw new StoreError(`the store ${options.store} cannot hold a good copy of ${names.join(", ")} (sent twice, still corrupt or missing)`);
  }
  return { linked: laid.linked, copied: laid.copied, repaired: again.length };
}

/** The remote scripts, for tests that run them with a local bash. */
export const STORE_SCRIPTS = { missing: MISSING_SCRIPT, receive: RECEIVE_SCRIPT, layout: LAYOUT_SCRIPT } as const;
