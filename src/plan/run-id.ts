/**
 * ONE rule for run ids: a run id is also a directory name, locally (the run
 * store, the local runs directory) and on the cluster (the run directory),
 * and a job comment (`hpcpipe:<run id>`): letters, digits, `_`, `.`, `-`, at
 * most 64, not starting with `.`, `_` or `-`.
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Why a run id cannot be used, or null. */
export function runIdProblem(id: unknown): string | null {
  if (typeof id !== "string") return "must be a string";
  return RUN_ID_PATTERN.test(id) ? null : "must be letters, digits, '_', '.', '-' (at most 64), not starting with '.', '_' or '-'";
}
