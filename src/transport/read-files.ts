/**
 * ONE way to read files of a run directory on the cluster: a fixed bash
 * script (bash and coreutils only) run with ONE exec, safe to retry (it only
 * reads). Each request is a whole file (capped, and all whole files together
 * capped), the tail of a file, or the bytes of a file from an offset (a log
 * being followed). Paths are arguments, never spliced into the script; a
 * symlink, a non-file or a path resolving outside the directory is refused.
 */
import { randomBytes } from "node:crypto";
import { remotePath } from "./quote.js";
import type { Transport } from "./transport.js";
import { preview } from "../core/preview.js";

export interface RemoteReadRequest {
  /** Relative to the directory. */
  path: string;
  /** `file`: the whole file; `tail`: its last `tailBytes`; `from`: up to `tailBytes` from `offset`. */
  kind: "file" | "tail" | "from";
  offset?: number;
}

export type RemoteReadStatus = "ok" | "absent" | "symlink" | "notfile" | "outside" | "unreadable" | "toolarge" | "overtotal";

export interface RemoteReadAnswer {
  status: RemoteReadStatus;
  /** The file's size, when known. */
  size: number | null;
  data: Buffer | null;
  /** `from`: the file had shrunk below the offset (rewritten), so the bytes are from its start. */
  restarted: boolean;
}

export interface RemoteReadLimits {
  /** Bytes of a `tail`, and most bytes of one `from`. */
  tailBytes: number;
  /** Largest whole `file`. */
  fileMaxBytes: number;
  /** All whole files together. */
  totalMaxBytes: number;
}

// Args: marker, dir, tail bytes, file cap, total cap, then (kind, path) pairs; kind `from:<offset>` reads from an offset.
// One status line per pair, followed by one base64 line when the status is ok.
export const REMOTE_READ_SCRIPT = [
  'marker=$1; dir=$2; tailmax=$3; filemax=$4; totalmax=$5; shift 5',
  'cd -- "$dir" || exit 3',
  'root=$(pwd -P) || exit 3',
  "printf '%s\\n' \"$marker\"",
  "total=0",
  'while [ "$#" -ge 2 ]; do',
  '  kind=$1; f=$2; shift 2',
  '  if [ -L "$f" ]; then echo "hpcpipe-report symlink"; continue; fi',
  '  if [ ! -e "$f" ]; then echo "hpcpipe-report absent"; continue; fi',
  '  if [ ! -f "$f" ]; then echo "hpcpipe-report notfile"; continue; fi',
  '  real=$(realpath -e -- "$f" 2>/dev/null) || { echo "hpcpipe-report unreadable"; continue; }',
  '  case $real in "$root"/*) ;; *) echo "hpcpipe-report outside"; continue ;; esac',
  '  size=$(stat -c %s -- "$real" 2>/dev/null) || { echo "hpcpipe-report unreadable"; continue; }',
  '  more=',
  '  case $kind in',
  '  tail)',
  '    data=$(tail -c "$tailmax" -- "$real" | base64 -w 0) || { echo "hpcpipe-report unreadable $size"; continue; } ;;',
  '  from:*)',
  '    off=${kind#from:}',
  '    case $off in ""|*[!0-9]*) echo "hpcpipe-report unreadable $size"; continue ;; esac',
  '    if [ "$size" -lt "$off" ]; then off=0; more=" restarted"; fi',
  '    data=$(tail -c "+$((off + 1))" -- "$real" | head -c "$tailmax" | base64 -w 0) || { echo "hpcpipe-report unreadable $size"; continue; } ;;',
  '  *)',
  '    if [ "$size" -gt "$filemax" ]; then echo "hpcpipe-report toolarge $size"; continue; fi',
  '    if [ $((total + size)) -gt "$totalmax" ]; then echo "hpcpipe-report overtotal $size"; continue; fi',
  '    data=$(base64 -w 0 -- "$real") || { echo "hpcpipe-report unreadable $size"; continue; }',
  "    total=$((total + size)) ;;",
  "  esac",
  '  echo "hpcpipe-report ok $size$more"',
  "  printf '%s\\n' \"$data\"",
  "done",
].join("\n");

const STATUS_LINE = /^hpcpipe-report (ok|absent|symlink|notfile|outside|unreadable|toolarge|overtotal)(?: (\d{1,15}))?( restarted)?$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parses what the script printed after the marker: one answer per request, in order; `fail` says why it cannot. */
export function parseRemoteRead(stdout: string, marker: string, requests: readonly RemoteReadRequest[], fail: (why: string) => never): Map<string, RemoteReadAnswer> {
  const lines = stdout.split("\n");
  const start = lines.indexOf(marker);
  if (start < 0) fail("the start marker is missing");
  let at = start + 1;
  const answers = new Map<string, RemoteReadAnswer>();
  for (const request of requests) {
    const line = lines[at++];
    const match = line === undefined ? null : STATUS_LINE.exec(line);
    if (match === null) return fail(`expected a status line for ${preview(request.path)}, got ${preview(line ?? "", 80)}`);
    const status = match[1] as RemoteReadStatus;
    const size = match[2] === undefined ? null : Number(match[2]);
    let data: Buffer | null = null;
    if (status === "ok") {
      const body = lines[at++] ?? "";
      if (!BASE64_LINE.test(body)) fail(`the data of ${preview(request.path)} is not base64`);
      data = Buffer.from(body, "base64");
    }
    answers.set(request.path, { status, size, data, restarted: match[3] !== undefined });
  }
  return answers;
}

/** Thrown when the directory cannot be read at all (exit status) or the answer cannot be parsed. */
export class RemoteReadError extends Error {
  override name = "RemoteReadError";
}

/** Reads the requested files of a remote directory in ONE exec (each path once). */
export async function readRemoteFiles(
  transport: Transport,
  remoteDir: string,
  requests: readonly RemoteReadRequest[],
  limits: RemoteReadLimits,
  /** `fail(why, exit)`: the error to throw; `exit` is true when the directory could not be read at all. */
  options: { fail?: (why: string, exit: boolean) => never; timeoutMs?: number } = {},
): Promise<Map<string, RemoteReadAnswer>> {
  const unique = requests.filter((r, i) => requests.findIndex((x) => x.path === r.path) === i);
  if (unique.length === 0) return new Map();
  const fail =
    options.fail ??
    ((why: string, exit: boolean): never => {
      throw new RemoteReadError(exit ? `cannot read ${remoteDir} on the cluster (${why}` : `reading files under ${remoteDir} on the cluster: ${why}`);
    });
  const marker = `hpcpipe-read-${randomBytes(8).toString("hex")}`;
  const argv = [
    "bash",
    "-c",
    REMOTE_READ_SCRIPT,
    "hpcpipe-read",
    marker,
    remotePath(remoteDir),
    String(limits.tailBytes),
    String(limits.fileMaxBytes),
    String(limits.totalMaxBytes),
    ...unique.flatMap((r) => [r.kind === "from" ? `from:${Math.max(0, Math.floor(r.offset ?? 0))}` : r.kind, r.path]),
  ];
  // base64 is 4/3 of the bytes; the tails and whole files together are capped above.
  const maxOutputBytes = Math.ceil(((limits.totalMaxBytes + unique.length * limits.tailBytes) * 4) / 3) + unique.length * 64 + 1024 * 1024;
  const result = await transport.exec(argv, { retrySafe: true, timeoutMs: options.timeoutMs ?? 10 * 60_000, maxOutputBytes });
  if (result.code !== 0) fail(`exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 500)}`, true);
  return parseRemoteRead(result.stdout, marker, unique, (why) => fail(why, false));
}
