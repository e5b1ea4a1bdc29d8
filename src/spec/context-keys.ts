import { preview } from "../core/preview.js";

/**
 * Context keys that reach a job become environment variable names, so they
 * must be valid shell identifiers and must not shadow what the shell, SLURM
 * or hpcpipe itself relies on.
 */
export const CONTEXT_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Names a context key may not have (also in templates/lib.sh, `_HP_RESERVED`: tested to agree). */
export const RESERVED_CONTEXT_KEYS: ReadonlySet<string> = new Set([
  "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "IFS", "PS1", "PS2", "PS4", "ENV", "CDPATH",
  "TMPDIR", "LANG", "TERM", "HOSTNAME", "UID", "EUID", "PPID", "RANDOM", "SECONDS", "LINENO", "OPTIND", "OPTARG",
  "SHELLOPTS", "BASHOPTS", "GLOBIGNORE", "PROMPT_COMMAND", "step_states",
]);
/** Prefixes a context key may not start with (also in templates/lib.sh: tested to agree). */
export const RESERVED_CONTEXT_PREFIXES: readonly string[] = ["SLURM_", "HPCPIPE_", "_HP_", "BASH", "LD_", "SBATCH_", "SSH_", "LC_"];

/** Why a context key cannot be used in a cluster job, or null when it can. */
export function contextKeyProblem(key: string): string | null {
  if (!CONTEXT_KEY_PATTERN.test(key)) {
    return `context key ${preview(key)} must be a shell identifier (letters, digits, '_', not starting with a digit, at most 64 characters)`;
  }
  if (RESERVED_CONTEXT_KEYS.has(key) || RESERVED_CONTEXT_PREFIXES.some((p) => key.startsWith(p))) {
    return `context key '${key}' is reserved (it would shadow a shell, SLURM or hpcpipe variable)`;
  }
  return null;
}
