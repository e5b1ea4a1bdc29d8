/**
 * Per-item output patterns: in a map's steps an output path may name the
 * item's index (`{i}`) and value (`{item}`): `out/items/{item}.txt`,
 * `frames/{i}.png`. Nothing else in a path is special (no globs, no `$`); a
 * path is literal once the tokens are replaced, and must stay inside the
 * working directory. templates/lib.sh does the same on a cluster.
 */
import { outputPathProblem } from "./command-step.js";
import { preview } from "../core/preview.js";

export const ITEM_PATTERN_TOKENS = ["{i}", "{item}"] as const;

/** The concrete output path of an item, or the reason it cannot be used. */
export function itemOutputPath(pattern: string, index: number, item: string): { path: string } | { problem: string } {
  const path = pattern.split("{i}").map((part) => part.split("{item}").join(item)).join(String(index));
  if (path === pattern) return { path };
  const problem = outputPathProblem(path);
  return problem === null ? { path } : { problem: `output ${preview(pattern)} for item ${index} is ${preview(path)}, which ${problem}` };
}
