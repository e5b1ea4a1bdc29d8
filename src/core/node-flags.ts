/**
 * V8 flags for hpcpipe's own processes (the CLI, the local supervisor): set
 * on the command line of a process it starts, or by applyNodeFlags() as the
 * first thing the CLI does. Not set by the library (a program that imports
 * hpcpipe keeps its own).
 *
 * --no-allocation-site-pretenuring: V8 allocates the objects of a code site
 * straight in the old heap once most of them outlived a scavenge. The merge
 * of a large map keeps each pack file's states while it merges its 100 items,
 * long enough for that to happen to some site early on; from then on each
 * state line's object, allocated old and dead an item later, kept the young
 * objects it points to alive until a full collection. For the 1,000,000-item
 * collect of bench:scale that was 1.5-2.1 GB promoted and 5 s of scavenges;
 * without pretenuring 0.3 GB and 1.3 s, and 690 MiB at peak instead of 880.
 */
import { setFlagsFromString } from "node:v8";

export const NODE_FLAGS: readonly string[] = ["--no-allocation-site-pretenuring"];

/** Sets NODE_FLAGS in this process: before the code they concern has run (no decision is undone). */
export function applyNodeFlags(): void {
  for (const flag of NODE_FLAGS) setFlagsFromString(flag);
}
