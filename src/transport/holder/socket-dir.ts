/**
 * Where connection holders listen: one unix socket per login target in a
 * directory the user owns with mode 700. Node cannot read a socket peer's
 * credentials, so the directory is the guard: it is checked (not a symlink,
 * ours, no group or other bits) before a socket in it is used or made.
 */
import { createHash } from "node:crypto";
import { lstat, mkdir } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import { TransportError } from "../errors.js";

/** Environment variable naming the socket directory (default $XDG_RUNTIME_DIR/hpcpipe, else /tmp/hpcpipe-<uid>). */
export const SOCKET_DIR_ENV = "HPCPIPE_SOCKET_DIR";

/** sun_path holds 108 bytes on Linux and 104 on macOS. */
const MAX_SOCKET_PATH = 104;

/** The socket directory is unsafe or unusable; the message names it and the fix. */
export class HolderDirError extends TransportError {
  constructor(message: string, readonly dir: string) {
    super(message);
    this.name = "HolderDirError";
  }
}

function uid(): number {
  return process.getuid?.() ?? userInfo().uid;
}

export function holderDir(env: NodeJS.ProcessEnv = process.env): string {
  const named = env[SOCKET_DIR_ENV];
  if (named) return path.resolve(named);
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && path.isAbsolute(runtime)) return path.join(runtime, "hpcpipe");
  return `/tmp/hpcpipe-${uid()}`;
}

/** Why `dir` must not hold our sockets, or null when it is fine; "missing" when it does not exist. */
export async function dirProblem(dir: string): Promise<string | null> {
  let stat;
  try {
    stat = await lstat(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    return `cannot inspect it: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
  if (stat.isSymbolicLink()) return "it is a symbolic link";
  if (!stat.isDirectory()) return "it is not a directory";
  if (stat.uid !== uid()) return `it is owned by uid ${stat.uid}, not by you (uid ${uid()})`;
  if ((stat.mode & 0o077) !== 0) return `its mode is ${(stat.mode & 0o777).toString(8).padStart(3, "0")}; it must be 700 (no access for group or others)`;
  return null;
}

function unsafe(dir: string, problem: string): HolderDirError {
  return new HolderDirError(
    `refusing the connection-holder directory ${dir}: ${problem}. ` +
      `Remove it (or fix it: chown to you, chmod 700), or set ${SOCKET_DIR_ENV} to a directory of your own.`,
    dir,
  );
}

/** Throws HolderDirError unless `dir` exists and is safe. */
export async function checkHolderDir(dir: string): Promise<void> {
  const problem = await dirProblem(dir);
  if (problem === "missing") throw new HolderDirError(`the connection-holder directory ${dir} does not exist`, dir);
  if (problem) throw unsafe(dir, problem);
}

/** Creates the directory with mode 700 when missing, then checks it. */
export async function ensureHolderDir(dir: string): Promise<void> {
  if ((await dirProblem(dir)) === "missing") {
    await mkdir(path.dirname(dir), { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw new HolderDirError(`cannot create ${dir}: ${(error as Error).message}`, dir);
    }
  }
  await checkHolderDir(dir);
}

/** Names a login target: the hops from the first jump host to the target, `user@host:port` each. */
export function holderKey(chain: readonly string[]): string {
  return createHash("sha256").update(chain.join("\n")).digest("hex").slice(0, 16);
}

/** The socket of the holder for `chain`, checked to fit in a unix socket address. */
export function socketPathFor(dir: string, chain: readonly string[]): string {
  const file = path.join(dir, `${holderKey(chain)}.sock`);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) {
    throw new HolderDirError(`the connection-holder socket path ${file} is longer than ${MAX_SOCKET_PATH} bytes (a unix socket limit): set ${SOCKET_DIR_ENV} to a shorter directory`, dir);
  }
  return file;
}
