/**
 * Outputs home (`hpcpipe pull`): the declared outputs of a run, fetched in ONE
 * round trip and streamed to disk. The client sends the list of outputs with
 * the SHA-256 of the copy it already has (if any); the cluster sends back only
 * the files whose hash differs, each framed by its size and hash, and reports
 * the ones it refuses (a symlink, a path leading outside the run's work/
 * directory, a missing file, over the size caps). Every file is written to a
 * temp file beside its destination, checked against the hash the cluster
 * computed, and renamed into place: an interrupted pull never leaves a torn
 * file, and a file that changed on the cluster while it was sent is refused.
 */
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, realpathSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { remotePath, RemoteCommandError } from "../transport/index.js";
import type { Transport } from "../transport/index.js";
import { globRegExp } from "./glob.js";
import { hashFile, mapLimit } from "./hash.js";
import { preview } from "../core/preview.js";

/** Default caps: one file, and all files of one pull. */
export const PULL_MAX_FILE_BYTES = 16 * 1024 ** 3;
export const PULL_MAX_TOTAL_BYTES = 256 * 1024 ** 3;

// $1 run dir, $2 max bytes a file, $3 max bytes in all. Stdin: NUL-terminated records "<local sha256 or -> <path under work/>".
// Stdout: "hpcpipe-pull 1", then per file one of
//   F <size> <sha256> <path, base64>\n<size bytes>     sent
//   S <path, base64>                                  skipped: the client has the same bytes
//   R <path, base64> <reason>                         refused
// and "E" at the end.
// Few processes a file: the checks are bash tests; a file's real path is its directory's (`cd -P`, once a
// directory; the file itself is no symlink); names are base64-encoded in bash; sizes and hashes come from ONE
// `stat` and ONE `sha256sum` per 500 files (one a file again when a file vanished in between); only sending a
// file (`head -c`) is a process of its own.
const PULL_SCRIPT = `set -u
export LC_ALL=C
run=$1 maxfile=$2 maxtotal=$3
cd -- "$run/work" 2>/dev/null || { echo "no work directory in $run" >&2; exit 2; }
root=$(pwd -P)
total=0
abc=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/
b64() { # REPLY := $1 in base64 (one character is one byte under LC_ALL=C)
  local s=$1 out="" i n=\${#1} a b c v
  for ((i = 0; i < n; i += 3)); do
    printf -v a '%d' "'\${s:i:1}"
    b=0 c=0
    ((i + 1 < n)) && printf -v b '%d' "'\${s:i+1:1}"
    ((i + 2 < n)) && printf -v c '%d' "'\${s:i+2:1}"
    v=$(((a & 255) << 16 | (b & 255) << 8 | (c & 255)))
    out+=\${abc:v >> 18 & 63:1}\${abc:v >> 12 & 63:1}
    if ((i + 1 < n)); then out+=\${abc:v >> 6 & 63:1}; else out+="="; fi
    if ((i + 2 < n)); then out+=\${abc:v & 63:1}; else out+="="; fi
  done
  REPLY=$out
}
printf 'hpcpipe-pull 1\\n'
declare -A realdir=()
paths=() haves=() encs=()
while IFS= read -r -d '' rec; do
  have=\${rec%% *}; p=\${rec#* }
  b64 "$p"; enc=$REPLY
  if [ -L "$p" ]; then printf 'R %s a symlink\\n' "$enc"; continue; fi
  if [ ! -e "$p" ]; then printf 'R %s missing\\n' "$enc"; continue; fi
  if [ ! -f "$p" ]; then printf 'R %s not a regular file\\n' "$enc"; continue; fi
  d=.; case $p in */*) d=\${p%/*} ;; esac
  if [ -z "\${realdir[$d]+x}" ]; then
    realdir[$d]=""
    if cd -P -- "$d" 2>/dev/null; then realdir[$d]=$PWD; fi
    cd -- "$root" || exit 2
  fi
  [ -n "\${realdir[$d]}" ] || { printf 'R %s unreadable\\n' "$enc"; continue; }
  case \${realdir[$d]}/\${p##*/} in "$root"/*) ;; *) printf 'R %s outside the run directory\\n' "$enc"; continue ;; esac
  [ -r "$p" ] || { printf 'R %s unreadable\\n' "$enc"; continue; }
  paths+=("$p"); haves+=("$have"); encs+=("$enc")
done
n=\${#paths[@]}
sizes=() sums=()
for ((k = 0; k < n; k += 500)); do
  count=$((n - k < 500 ? n - k : 500))
  got=()
  mapfile -t got < <(stat -c %s -- "\${paths[@]:k:count}" 2>/dev/null)
  if [ "\${#got[@]}" -ne "$count" ]; then
    got=()
    for ((j = k; j < k + count; j++)); do got+=("$(stat -c %s -- "\${paths[j]}" 2>/dev/null || echo -)"); done
  fi
  for ((j = 0; j < count; j++)); do sizes[k + j]=\${got[j]}; done
done
hash=()
for ((j = 0; j < n; j++)); do
  case \${sizes[j]} in '' | *[!0-9]*) continue ;; esac
  [ "\${sizes[j]}" -gt "$maxfile" ] || hash+=("$j")
done
for ((k = 0; k < \${#hash[@]}; k += 500)); do
  part=("\${hash[@]:k:500}")
  files=()
  for j in "\${part[@]}"; do files+=("\${paths[j]}"); done
  got=()
  mapfile -t got < <(sha256sum -- "\${files[@]}" 2>/dev/null)
  if [ "\${#got[@]}" -ne "\${#part[@]}" ]; then
    got=()
    for j in "\${part[@]}"; do got+=("$(sha256sum -- "\${paths[j]}" 2>/dev/null || echo -)"); done
  fi
  for ((i = 0; i < \${#part[@]}; i++)); do sum=\${got[i]#\\\\}; sums[\${part[i]}]=\${sum%% *}; done
done
for ((j = 0; j < n; j++)); do
  p=\${paths[j]} enc=\${encs[j]} size=\${sizes[j]}
  case $size in '' | *[!0-9]*) printf 'R %s unreadable\\n' "$enc"; continue ;; esac
  if [ "$size" -gt "$maxfile" ]; then printf 'R %s over the size cap of one file (%s bytes)\\n' "$enc" "$size"; continue; fi
  sum=\${sums[j]-}
  case $sum in [0-9a-f]*) ;; *) printf 'R %s unreadable\\n' "$enc"; continue ;; esac
  if [ "$sum" = "\${haves[j]}" ]; then printf 'S %s\\n' "$enc"; continue; fi
  if [ $((total + size)) -gt "$maxtotal" ]; then printf 'R %s over the size cap of one pull\\n' "$enc"; continue; fi
  total=$((total + size))
  printf 'F %s %s %s\\n' "$size" "$sum" "$enc"
  head -c "$size" -- "$p"
done
printf 'E\\n'
`;

export interface PullOptions {
  /** Local directory the outputs go to (their paths under work/ are kept). */
  to: string;
  maxFileBytes?: number;
  maxTotalBytes?: number;
  /** Bytes received so far (the total is not known in advance: null). */
  onBytes?: (received: number) => void;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface PullOutcome {
  /** Paths (relative to work/) written, skipped (same hash here), refused (with why). */
  fetched: string[];
  skipped: string[];
  refused: { path: string; reason: string }[];
  bytes: number;
  roundTrips: number;
}

/** A local destination for an output path, refused when it would leave `to`. */
export function pullDestination(to: string, path: string): string {
  if (path === "" || isAbsolute(path) || path.split("/").some((s) => s === ".." || s === "" || s === ".") || path.includes("\0")) {
    throw new Error(`refusing output path ${preview(path, 200)}: not a plain path under the run's work/ directory`);
  }
  const dest = resolve(to, path);
  const back = relative(resolve(to), dest);
  if (back.startsWith(`..${sep}`) || back === ".." || isAbsolute(back)) throw new Error(`refusing output path ${preview(path)}: leaves ${to}`);
  return dest;
}

/** Streaming parser of the pull protocol: writes each file to a temp file, verifies it, renames it into place. */
class PullReceiver {
  #buffer: Buffer = Buffer.alloc(0);
  #file: { path: string; dest: string; temp: string; fd: number; left: number; sha256: string; hash: Hash } | null = null;
  #sawMagic = false;
  ended = false;
  readonly outcome: Omit<PullOutcome, "roundTrips"> = { fetched: [], skipped: [], refused: [], bytes: 0 };

  constructor(
    private readonly to: string,
    private readonly wanted: ReadonlySet<string>,
    private readonly onBytes?: (received: number) => void,
  ) {}

  write(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (this.#file) {
        if (this.#buffer.length === 0) return;
        const take = Math.min(this.#file.left, this.#buffer.length);
        const part = this.#buffer.subarray(0, take);
        writeSync(this.#file.fd, part);
        this.#file.hash.update(part);
        this.#file.left -= take;
        this.outcome.bytes += take;
        this.onBytes?.(this.outcome.bytes);
        this.#buffer = this.#buffer.subarray(take);
        if (this.#file.left === 0) this.#finishFile();
        continue;
      }
      const nl = this.#buffer.indexOf(10);
      if (nl === -1) {
        if (this.#buffer.length > 64 * 1024) throw new Error("the pull stream has a line over 64 KiB: not the pull protocol");
        return;
      }
      const line = this.#buffer.subarray(0, nl).toString("utf8");
      this.#buffer = this.#buffer.subarray(nl + 1);
      this.#line(line);
    }
  }

  #path(encoded: string): string {
    const path = Buffer.from(encoded, "base64").toString("utf8");
    if (!this.wanted.has(path)) throw new Error(`the cluster sent ${preview(path, 200)}, which was not asked for`);
    return path;
  }

  #line(line: string): void {
    if (!this.#sawMagic) {
      if (line === "hpcpipe-pull 1") this.#sawMagic = true; // anything before it (a login banner) is ignored
      return;
    }
    if (this.ended) throw new Error("the pull stream goes on after its end");
    let m: RegExpExecArray | null;
    if (line === "E") this.ended = true;
    else if ((m = /^S (\S+)$/.exec(line))) this.outcome.skipped.push(this.#path(m[1] as string));
    else if ((m = /^R (\S+) (.+)$/.exec(line))) this.outcome.refused.push({ path: this.#path(m[1] as string), reason: m[2] as string });
    else if ((m = /^F (\d+) ([0-9a-f]{64}) (\S+)$/.exec(line))) {
      const path = this.#path(m[3] as string);
      const dest = pullDestination(this.to, path);
      mkdirSync(dirname(dest), { recursive: true });
      if (existsSync(dest) && lstatSync(dest).isSymbolicLink()) throw new Error(`refusing to write ${dest}: it is a symlink here`);
      const temp = `${dest}.hpcpipe-pull-${process.pid}`;
      const fd = openSync(temp, "w", 0o644);
      this.#file = { path, dest, temp, fd, left: Number(m[1]), sha256: m[2] as string, hash: createHash("sha256") };
      if (this.#file.left === 0) this.#finishFile();
    } else throw new Error(`unexpected line in the pull stream: ${preview(line, 120)}`);
  }

  #finishFile(): void {
    const f = this.#file;
    if (!f) return;
    this.#file = null;
    closeSync(f.fd);
    const got = f.hash.digest("hex");
    if (got !== f.sha256) {
      rmSync(f.temp, { force: true });
      throw new Error(`${f.path} arrived with other bytes than the cluster hashed (it changed while it was sent?); nothing was written for it`);
    }
    renameSync(f.temp, f.dest);
    this.outcome.fetched.push(f.path);
  }

  /** Removes a half-written temp file (the stream was cut). */
  abandon(): void {
    if (!this.#file) return;
    try {
      closeSync(this.#file.fd);
    } catch {
      // already closed
    }
    rmSync(this.#file.temp, { force: true });
    this.#file = null;
  }
}

/**
 * Fetches `paths` (relative to the run's work/ directory) from `runDir` on the
 * cluster into `options.to`, in ONE round trip, skipping the files already
 * there with the same SHA-256.
 */
export async function pullOutputs(transport: Transport, runDir: string, paths: readonly string[], options: PullOptions): Promise<PullOutcome> {
  const before = transport.roundTrips;
  const to = resolve(options.to);
  const unique = [...new Set(paths)];
  const local = await mapLimit(unique, 4, async (path) => {
    const dest = pullDestination(to, path);
    try {
      const info = lstatSync(dest);
      if (!info.isFile()) return "-";
      return (await hashFile(dest)).sha256;
    } catch {
      return "-";
    }
  });
  const records = unique.map((p, i) => `${local[i]} ${p}\0`).join("");
  let receiver = new PullReceiver(to, new Set(unique), options.onBytes);
  try {
    const result = await transport.exec(
      ["bash", "-c", PULL_SCRIPT, "hpcpipe-pull", remotePath(runDir), String(options.maxFileBytes ?? PULL_MAX_FILE_BYTES), String(options.maxTotalBytes ?? PULL_MAX_TOTAL_BYTES)],
      {
        stdin: records,
        retrySafe: true,
        stdoutSink: () => {
          receiver.abandon();
          receiver = new PullReceiver(to, new Set(unique), options.onBytes);
          return receiver;
        },
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
    if (result.code !== 0 || !receiver.ended) {
      throw new RemoteCommandError(`pulling outputs from ${runDir} failed (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 2000) || "the stream ended early"}`, ["pull"], result.code, result.signal, "", result.stderr);
    }
  } finally {
    receiver.abandon();
  }
  return { ...receiver.outcome, roundTrips: transport.roundTrips - before };
}

/** A simple glob for output paths: `*` and `?` stay within a path segment, `**` crosses segments. */
export const outputGlob = globRegExp;

/** The output paths of a merged result's steps (files the wrapper found; under work/), in a stable order. */
export function declaredOutputs(stepStates: Readonly<Record<string, { outputs?: unknown }>>): { paths: string[]; outside: string[] } {
  const paths = new Set<string>();
  const outside = new Set<string>();
  for (const state of Object.values(stepStates)) {
    const files = (state.outputs as { files?: unknown } | undefined)?.files;
    if (!Array.isArray(files)) continue;
    for (const f of files) {
      if (typeof f !== "string") continue;
      if (isAbsolute(f) || f.split("/").includes("..")) outside.add(f);
      else paths.add(f.replace(/^\.\//, ""));
    }
  }
  return { paths: [...paths].sort(), outside: [...outside].sort() };
}


/**
 * The same as pullOutputs for a run on this machine: its declared outputs copied from
 * `<runDir>/work/` into `options.to` with the same rules (a symlink, a path leading outside
 * the run's work/ directory, a missing file or one over the caps is refused; a file already
 * there with the same SHA-256 is skipped), each written to a temp file, checked and renamed.
 */
export async function pullLocalOutputs(runDir: string, paths: readonly string[], options: PullOptions): Promise<PullOutcome> {
  const to = resolve(options.to);
  const work = realpathSync(join(runDir, "work"));
  const maxFile = options.maxFileBytes ?? PULL_MAX_FILE_BYTES;
  const maxTotal = options.maxTotalBytes ?? PULL_MAX_TOTAL_BYTES;
  const outcome: PullOutcome = { fetched: [], skipped: [], refused: [], bytes: 0, roundTrips: 0 };
  let total = 0;
  for (const path of [...new Set(paths)]) {
    const dest = pullDestination(to, path);
    const src = join(work, path);
    let info;
    try {
      info = lstatSync(src);
    } catch {
      outcome.refused.push({ path, reason: "missing" });
      continue;
    }
    if (info.isSymbolicLink()) {
      outcome.refused.push({ path, reason: "a symlink" });
      continue;
    }
    if (!info.isFile()) {
      outcome.refused.push({ path, reason: "not a regular file" });
      continue;
    }
    const real = realpathSync(src);
    if (!real.startsWith(`${work}${sep}`)) {
      outcome.refused.push({ path, reason: "outside the run directory" });
      continue;
    }
    if (info.size > maxFile) {
      outcome.refused.push({ path, reason: `over the size cap of one file (${info.size} bytes)` });
      continue;
    }
    const sum = (await hashFile(real)).sha256;
    if (existsSync(dest) && lstatSync(dest).isFile() && (await hashFile(dest)).sha256 === sum) {
      outcome.skipped.push(path);
      continue;
    }
    if (total + info.size > maxTotal) {
      outcome.refused.push({ path, reason: "over the size cap of one pull" });
      continue;
    }
    total += info.size;
    mkdirSync(dirname(dest), { recursive: true });
    if (existsSync(dest) && lstatSync(dest).isSymbolicLink()) throw new Error(`refusing to write ${dest}: it is a symlink here`);
    const temp = `${dest}.hpcpipe-pull-${process.pid}`;
    copyFileSync(real, temp);
    if ((await hashFile(temp)).sha256 !== sum) {
      rmSync(temp, { force: true });
      throw new Error(`${path} changed while it was copied; nothing was written for it`);
    }
    renameSync(temp, dest);
    outcome.fetched.push(path);
    outcome.bytes += info.size;
    options.onBytes?.(outcome.bytes);
  }
  return outcome;
}
