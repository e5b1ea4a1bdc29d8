/**
 * ONE rule for the variables a path may start with: `$HOME` and `$SCRATCH`,
 * alone or followed by `/`, are left for the shell on the cluster to expand
 * (a cluster workdir, a run directory, a remote path); every other `$` is a
 * literal character (`$HOMEX`, `${HOME}`, `$USER`, a `$HOME` in the middle).
 */
export const PATH_VARIABLES = ["HOME", "SCRATCH"] as const;
export type PathVariable = (typeof PATH_VARIABLES)[number];

/** `$SCRATCH/runs` → `{ variable: "SCRATCH", rest: "/runs" }`; `$HOME` → rest `""`; anything else → variable null. */
export function splitPathVariable(path: string): { variable: PathVariable | null; rest: string } {
  for (const name of PATH_VARIABLES) {
    const prefix = `$${name}`;
    if (path === prefix || path.startsWith(`${prefix}/`)) return { variable: name, rest: path.slice(prefix.length) };
  }
  return { variable: null, rest: path };
}
