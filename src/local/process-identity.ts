/**
 * Telling a live process from a reused pid: a process is named by its pid
 * AND its start time (Linux: field 22 of /proc/<pid>/stat, in clock ticks
 * since boot; elsewhere `ps -o lstart=`), as a run record keeps them.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export interface ProcessIdentity {
  pid: number;
  /** Opaque: equal for the same process, different for another one with the same pid. */
  started: string;
}

/** The start time of a live process, or null when there is no such process. */
export function processStartTime(pid: number): string | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    if (state === "Z" || state === "X") return null; // exited, waiting to be reaped
    return fields[19] ?? null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && process.platform === "linux") return null;
  }
  try {
    const out = execFileSync("ps", ["-o", "lstart=", "-p", String(pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    return out === "" ? null : out;
  } catch {
    return null;
  }
}

export function identityOf(pid: number): ProcessIdentity | null {
  const started = processStartTime(pid);
  return started === null ? null : { pid, started };
}

/** The process is still the one recorded (same pid, same start time). */
export function isAlive(identity: ProcessIdentity): boolean {
  return processStartTime(identity.pid) === identity.started;
}
