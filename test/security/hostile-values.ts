// The one table of hostile strings the security suite (test/security/, test/e2e/hostile-input.test.ts,
// test/e2e/secrets.test.ts) and bench/faults.ts feed to every input of hpcpipe. Each value would run
// `touch <canary>`, split words, break quoting, forge an #SBATCH line, escape a directory or blow a
// size limit if it were ever handled as shell text, a path or a line. Pure data: no vitest here (the
// bench imports it).
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface HostileValue {
  /** A plain identifier for the value (used in file names, context keys and test titles). */
  id: string;
  value: string;
  /** What it attacks. */
  why: string;
}

/**
 * A canary: a file that appears only if a hostile value was executed. It lives directly in the
 * OS temp directory (/tmp: sticky and world-writable), so a command run as any user, by this
 * process, a local job or a job of the cluster user on this machine, could create it.
 */
export interface Canary {
  /** Absolute path of the file that must never exist. */
  path: string;
  /** Every file in the temp directory whose name starts with the canary's prefix (what a mangled `touch` might create). */
  traces(): string[];
  /** True when neither the canary nor any trace of it exists. */
  untouched(): boolean;
}

export function newCanary(tag = "hpcpipe-canary"): Canary {
  const name = `${tag}-${process.pid}-${randomBytes(5).toString("hex")}`;
  const file = path.join(tmpdir(), name);
  const traces = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith(name));
  return { path: file, traces, untouched: () => !existsSync(file) && traces().length === 0 };
}

export const KIB64 = 64 * 1024;
export const MIB = 1024 * 1024;

/** Every hostile value, with the canary's path spliced into those that try to run a command. */
export function hostileValues(canary: string): HostileValue[] {
  const tail = `$(touch ${canary})`;
  return [
    { id: "subst", value: `$(touch ${canary})`, why: "command substitution" },
    { id: "backticks", value: `\`touch ${canary}\``, why: "backtick substitution" },
    { id: "semicolon", value: `; touch ${canary}`, why: "command separator" },
    { id: "andor", value: `x && touch ${canary} || touch ${canary} | tee ${canary}`, why: "&&, || and a pipe" },
    { id: "squote", value: "'", why: "a lone single quote" },
    { id: "dquote", value: '"', why: "a lone double quote" },
    { id: "backslash", value: "\\", why: "a lone backslash" },
    { id: "squote_break", value: `'; touch ${canary}; echo '`, why: "breaking out of single quotes" },
    { id: "dquote_break", value: `"; touch ${canary}; echo "`, why: "breaking out of double quotes" },
    { id: "dollar", value: "$HOME ${PATH} $1 $$ $(( 1 + 1 )) !!", why: "expansions and history" },
    { id: "sbatch_newline", value: `x\n#SBATCH --wrap="touch ${canary}"\ntouch ${canary}`, why: "a newline forging an #SBATCH line and a command" },
    { id: "cr", value: `x\rtouch ${canary}`, why: "a carriage return" },
    { id: "nul", value: `x\0touch ${canary}`, why: "a NUL byte (truncates C strings, splits NUL records)" },
    { id: "kib64", value: padTo(KIB64, "a", tail), why: "64 KiB ending in a command substitution" },
    { id: "mib1", value: padTo(MIB, "b", tail), why: "1 MiB (over the environment string limit)" },
    { id: "unicode", value: "naïve → 模型 🧊 e\u0301\u0301 \u202Egnp.exe\u202C", why: "unicode: RTL override, combining marks, emoji, CJK" },
    { id: "dotdot", value: "../../etc", why: "escaping a directory" },
    { id: "dash", value: `--output=${canary}`, why: "a leading '-' (an option to whatever reads it)" },
    { id: "glob", value: "*", why: "a glob" },
    { id: "smuggled", value: "x --output=logs/smuggled.out --time=0:01 #", why: "sbatch options hidden after a space, and a comment" },
    { id: "percent", value: "%j %x %A_%a %%", why: "sbatch file name patterns" },
    { id: "empty", value: "", why: "the empty string" },
  ];
}

/** `fill` repeated, then `tail`: exactly `bytes` bytes (ASCII). */
function padTo(bytes: number, fill: string, tail: string): string {
  return fill.repeat(bytes - tail.length) + tail;
}

/** Values that fit on one line (no newline, carriage return or NUL), as map items and published values must. */
export function isOneLine(v: string): boolean {
  return !/[\n\r\0]/.test(v);
}

/** A short printable description of a value for titles and tables. */
export function describeHostile(h: HostileValue): string {
  return h.value.length > 40 ? `${h.id} (${h.value.length} chars)` : `${h.id} ${JSON.stringify(h.value)}`;
}
