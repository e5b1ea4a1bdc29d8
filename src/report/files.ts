/**
 * Reading the files a report shows — the ends of failed steps' logs and the
 * image outputs — from a local run directory, or from a cluster run
 * directory in ONE round trip. Both refuse symbolic links, anything that is
 * not a regular file and anything that resolves outside the run directory,
 * and cap sizes: a log is read only from its last LOG_TAIL_BYTES, an image
 * over IMAGE_MAX_BYTES (or past IMAGES_TOTAL_MAX_BYTES in all) is not read.
 */
import { randomBytes } from "node:crypto";
import { lstat, open, realpath } from "node:fs/promises";
import { join, relative, isAbsolute, sep } from "node:path";
import { RunStateError } from "../runs/errors.js";
import { remotePath } from "../transport/index.js";
import type { Transport } from "../transport/index.js";
import { IMAGE_MAX_BYTES, IMAGES_TOTAL_MAX_BYTES, LOG_TAIL_BYTES, logPaths, safeOutputPath, tailLines } from "./model.js";
import type { FetchedImage, LogTail } from "./model.js";

/** One file to read: the end of a log (`tail`) or a whole image (`file`), relative to the run directory. */
export interface FileRequest {
  kind: "tail" | "file";
  path: string;
}

export type FileStatus = "ok" | "absent" | "symlink" | "notfile" | "outside" | "unreadable" | "toolarge" | "overtotal";

export interface FileAnswer {
  status: FileStatus;
  /** The file's size, when known. */
  size: number | null;
  /** Its bytes (a tail: the last LOG_TAIL_BYTES) when status is ok. */
  data: Buffer | null;
}

export interface ReportLimits {
  tailBytes: number;
  fileMaxBytes: number;
  totalMaxBytes: number;
}

export const DEFAULT_LIMITS: ReportLimits = { tailBytes: LOG_TAIL_BYTES, fileMaxBytes: IMAGE_MAX_BYTES, totalMaxBytes: IMAGES_TOTAL_MAX_BYTES };

const WHY: Record<Exclude<FileStatus, "ok">, string> = {
  absent: "no such file",
  symlink: "a symbolic link: not read",
  notfile: "not a regular file",
  outside: "resolves outside the run directory: not read",
  unreadable: "cannot be read",
  toolarge: `not embedded: over the ${IMAGE_MAX_BYTES / (1024 * 1024)} MiB limit per image`,
  overtotal: `not embedded: the images together would be over the ${IMAGES_TOTAL_MAX_BYTES / (1024 * 1024)} MiB limit`,
};

/** What the report needs read: both logs of each failed step, then each image, in order. */
export function reportRequests(logKeys: readonly string[], imagePaths: readonly string[]): FileRequest[] {
  const requests: FileRequest[] = [];
  for (const key of logKeys) {
    const paths = logPaths(key);
    if (paths === null) continue;
    requests.push({ kind: "tail", path: paths.stdout }, { kind: "tail", path: paths.stderr });
  }
  for (const path of imagePaths) {
    const safe = safeOutputPath(path);
    if (safe !== null) requests.push({ kind: "file", path: `work/${safe}` });
  }
  return requests;
}

/** Turns the answers into the model's log tails (by step key) and images (by declared path). */
export function interpretAnswers(
  logKeys: readonly string[],
  imagePaths: readonly string[],
  answers: ReadonlyMap<string, FileAnswer>,
): { logs: Map<string, LogTail[]>; images: Map<string, FetchedImage> } {
  const logs = new Map<string, LogTail[]>();
  for (const key of logKeys) {
    const paths = logPaths(key);
    if (paths === null) continue;
    const tails: LogTail[] = [];
    for (const [stream, path] of [["stdout", paths.stdout], ["stderr", paths.stderr]] as const) {
      const a = answers.get(path);
      if (a === undefined) tails.push({ stream, path, lines: [], truncated: false, missing: "not fetched" });
      else if (a.status !== "ok" || a.data === null) tails.push({ stream, path, lines: [], truncated: false, missing: a.status === "ok" ? "cannot be read" : WHY[a.status] });
      else tails.push(tailLines(a.data, (a.size ?? a.data.length) > a.data.length, stream, path));
    }
    logs.set(key, tails);
  }
  const images = new Map<string, FetchedImage>();
  for (const path of imagePaths) {
    const safe = safeOutputPath(path);
    if (safe === null) continue;
    const a = answers.get(`work/${safe}`);
    if (a === undefined) continue;
    if (a.status === "ok" && a.data !== null) images.set(path, { bytes: a.data });
    else images.set(path, { note: a.status === "ok" ? "cannot be read" : WHY[a.status] });
  }
  return { logs, images };
}

// ---------------------------------------------------------------------------- local

function inside(root: string, path: string): boolean {
  const back = relative(root, path);
  return back !== "" && !back.startsWith(`..${sep}`) && back !== ".." && !isAbsolute(back);
}

/** Reads the requested files of a local run directory. */
export async function readLocalFiles(runDir: string, requests: readonly FileRequest[], limits: ReportLimits = DEFAULT_LIMITS): Promise<Map<string, FileAnswer>> {
  const root = await realpath(runDir);
  const answers = new Map<string, FileAnswer>();
  let total = 0;
  for (const request of requests) {
    if (answers.has(request.path)) continue;
    const full = join(root, request.path);
    const answer = (status: FileStatus, size: number | null = null, data: Buffer | null = null): void => {
      answers.set(request.path, { status, size, data });
    };
    const info = await lstat(full).catch(() => null);
    if (info === null) {
      answer("absent");
      continue;
    }
    if (info.isSymbolicLink()) {
      answer("symlink");
      continue;
    }
    if (!info.isFile()) {
      answer("notfile");
      continue;
    }
    const real = await realpath(full).catch(() => null);
    if (real === null || !inside(root, real)) {
      answer(real === null ? "unreadable" : "outside");
      continue;
    }
    const size = info.size;
    if (request.kind === "file") {
      if (size > limits.fileMaxBytes) {
        answer("toolarge", size);
        continue;
      }
      if (total + size > limits.totalMaxBytes) {
        answer("overtotal", size);
        continue;
      }
    }
    const want = request.kind === "tail" ? Math.min(size, limits.tailBytes) : size;
    try {
      const handle = await open(real, "r");
      try {
        const data = Buffer.alloc(want);
        const { bytesRead } = await handle.read(data, 0, want, size - want);
        if (request.kind === "file") total += bytesRead;
        answer("ok", size, data.subarray(0, bytesRead));
      } finally {
        await handle.close();
      }
    } catch {
      answer("unreadable", size);
    }
  }
  return answers;
}

// ---------------------------------------------------------------------------- remote

// Args: marker, run dir, tail bytes, file cap, total cap, then (kind, path) pairs.
// One status line per pair, followed by one base64 line when the status is ok.
// Only bash and coreutils (tail, base64, stat, realpath).
const REMOTE_READ = [
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
  '  if [ "$kind" = tail ]; then',
  '    data=$(tail -c "$tailmax" -- "$real" | base64 -w 0) || { echo "hpcpipe-report unreadable $size"; continue; }',
  "  else",
  '    if [ "$size" -gt "$filemax" ]; then echo "hpcpipe-report toolarge $size"; continue; fi',
  '    if [ $((total + size)) -gt "$totalmax" ]; then echo "hpcpipe-report overtotal $size"; continue; fi',
  '    data=$(base64 -w 0 -- "$real") || { echo "hpcpipe-report unreadable $size"; continue; }',
  "    total=$((total + size))",
  "  fi",
  '  echo "hpcpipe-report ok $size"',
  "  printf '%s\\n' \"$data\"",
  "done",
].join("\n");

const STATUS_LINE = /^hpcpipe-report (ok|absent|symlink|notfile|outside|unreadable|toolarge|overtotal)(?: (\d{1,15}))?$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parses what REMOTE_READ printed after the marker: one answer per request, in order. */
export function parseRemoteAnswers(stdout: string, marker: string, requests: readonly FileRequest[], runId = ""): Map<string, FileAnswer> {
  const lines = stdout.split("\n");
  const start = lines.indexOf(marker);
  const bad = (why: string): never => {
    throw new RunStateError(`run ${runId}: reading the report's files on the cluster: unexpected output (${why})`, runId);
  };
  if (start < 0) bad("the start marker is missing");
  let at = start + 1;
  const answers = new Map<string, FileAnswer>();
  for (const request of requests) {
    const line = lines[at++];
    const match = line === undefined ? null : STATUS_LINE.exec(line);
    if (match === null) return bad(`expected a status line for ${JSON.stringify(request.path)}, got ${JSON.stringify((line ?? "").slice(0, 80))}`);
    const status = match[1] as FileStatus;
    const size = match[2] === undefined ? null : Number(match[2]);
    let data: Buffer | null = null;
    if (status === "ok") {
      const body = lines[at++] ?? "";
      if (!BASE64_LINE.test(body)) bad(`the data of ${JSON.stringify(request.path)} is not base64`);
      data = Buffer.from(body, "base64");
    }
    answers.set(request.path, { status, size, data });
  }
  return answers;
}

/** Reads the requested files of a cluster run directory in ONE exec (safe to retry: it only reads). */
export async function readRemoteFiles(
  transport: Transport,
  remoteDir: string,
  requests: readonly FileRequest[],
  options: { runId?: string; limits?: ReportLimits } = {},
): Promise<Map<string, FileAnswer>> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const runId = options.runId ?? "";
  const unique = requests.filter((r, i) => requests.findIndex((x) => x.path === r.path) === i);
  if (unique.length === 0) return new Map();
  const marker = `hpcpipe-report-${randomBytes(8).toString("hex")}`;
  const argv = [
    "bash",
    "-c",
    REMOTE_READ,
    "hpcpipe-report",
    marker,
    remotePath(remoteDir),
    String(limits.tailBytes),
    String(limits.fileMaxBytes),
    String(limits.totalMaxBytes),
    ...unique.flatMap((r) => [r.kind, r.path]),
  ];
  // base64 is 4/3 of the bytes; the tails and images together are capped above.
  const maxOutputBytes = Math.ceil(((limits.totalMaxBytes + unique.length * limits.tailBytes) * 4) / 3) + unique.length * 64 + 1024 * 1024;
  const result = await transport.exec(argv, { retrySafe: true, timeoutMs: 10 * 60_000, maxOutputBytes });
  if (result.code !== 0) {
    throw new RunStateError(
      `run ${runId}: cannot read its run directory ${remoteDir} on the cluster (exit ${String(result.code ?? result.signal)}): ${result.stderr.trim().slice(0, 500)}`,
      runId,
    );
  }
  return parseRemoteAnswers(result.stdout, marker, unique, runId);
}
