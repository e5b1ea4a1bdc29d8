/**
 * Reading the files a report shows — the ends of failed steps' logs and the
 * image outputs — from a local run directory, or from a cluster run
 * directory in ONE round trip. Both refuse symbolic links, anything that is
 * not a regular file and anything that resolves outside the run directory,
 * and cap sizes: a log is read only from its last LOG_TAIL_BYTES, an image
 * over IMAGE_MAX_BYTES (or past IMAGES_TOTAL_MAX_BYTES in all) is not read.
 */
import { lstat, open, realpath } from "node:fs/promises";
import { join, relative, isAbsolute, sep } from "node:path";
import { RunStateError } from "../runs/errors.js";
import { parseRemoteRead, readRemoteFiles as readFilesOnCluster } from "../transport/index.js";
import type { Transport } from "../transport/index.js";
import { IMAGE_MAX_BYTES, IMAGES_TOTAL_MAX_BYTES, safeOutputPath } from "./images.js";
import type { FetchedImage } from "./images.js";
import { LOG_TAIL_BYTES, logPaths, tailLines } from "./log-tails.js";
import { logSection } from "../core/log-section.js";
import type { LogTail } from "./log-tails.js";

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

/**
 * What the report needs read: both logs of each failed step, then each image, in order. A packed item's
 * logs are the end of its slot logs (`slotLogs`: by key), read once for the items that share them.
 */
export function reportRequests(logKeys: readonly string[], imagePaths: readonly string[], slotLogs?: ReadonlyMap<string, string>): FileRequest[] {
  const requests: FileRequest[] = [];
  for (const key of logKeys) {
    const paths = logPaths(key, slotLogs?.get(key));
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
  slotLogs?: ReadonlyMap<string, string>,
): { logs: Map<string, LogTail[]>; images: Map<string, FetchedImage> } {
  const logs = new Map<string, LogTail[]>();
  for (const key of logKeys) {
    const paths = logPaths(key, slotLogs?.get(key));
    if (paths === null) continue;
    const tails: LogTail[] = [];
    for (const [stream, path] of [["stdout", paths.stdout], ["stderr", paths.stderr]] as const) {
      const a = answers.get(path);
      if (a === undefined) tails.push({ stream, path, lines: [], truncated: false, missing: "not fetched" });
      else if (a.status !== "ok" || a.data === null) tails.push({ stream, path, lines: [], truncated: false, missing: a.status === "ok" ? "cannot be read" : WHY[a.status] });
      else if (paths.section !== true) tails.push(tailLines(a.data, (a.size ?? a.data.length) > a.data.length, stream, path));
      else {
        // The item's section of its slot log: after its last marker in the end that was read.
        const section = logSection(a.data, key);
        const cut = (a.size ?? a.data.length) > a.data.length;
        if (section !== null) tails.push(tailLines(section, false, stream, path));
        else tails.push({ stream, path, lines: [], truncated: false, missing: cut ? `no section of ${key} in the last ${a.data.length} bytes read` : `no section of ${key}` });
      }
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

/** Parses what the one remote read printed after the marker (src/transport/read-files.ts): one answer per request, in order. */
export function parseRemoteAnswers(stdout: string, marker: string, requests: readonly FileRequest[], runId = ""): Map<string, FileAnswer> {
  return toFileAnswers(parseRemoteRead(stdout, marker, requests, badOutput(runId)));
}

function badOutput(runId: string): (why: string) => never {
  return (why) => {
    throw new RunStateError(`run ${runId}: reading the report's files on the cluster: unexpected output (${why})`, runId);
  };
}

function toFileAnswers(answers: Map<string, { status: FileStatus; size: number | null; data: Buffer | null }>): Map<string, FileAnswer> {
  return new Map([...answers].map(([path, a]) => [path, { status: a.status, size: a.size, data: a.data }]));
}

/** Reads the requested files of a cluster run directory in ONE exec, through the transport's one remote read. */
export async function readRemoteFiles(
  transport: Transport,
  remoteDir: string,
  requests: readonly FileRequest[],
  options: { runId?: string; limits?: ReportLimits } = {},
): Promise<Map<string, FileAnswer>> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const runId = options.runId ?? "";
  const answers = await readFilesOnCluster(transport, remoteDir, requests, limits, {
    fail: (why, exit) => {
      if (exit) throw new RunStateError(`run ${runId}: cannot read its run directory ${remoteDir} on the cluster (${why}`, runId);
      return badOutput(runId)(why);
    },
  });
  return toFileAnswers(answers);
}
