/**
 * result.json and, for a result with large maps, its lines file beside it
 * (src/core/item-lines.ts): written lines first, then result.json, each
 * atomically; read back with the lines file known to the iterator.
 */
import { readFile } from "node:fs/promises";
import { CompletedState } from "./completed-state.js";
import { writeJsonAtomic } from "./atomic-json.js";
import type { WriteJsonOptions } from "./atomic-json.js";
import { attachItemsFile, itemLinesOf, itemsFileBeside, placeItemsFile } from "./item-lines.js";

/** Writes a merged result to `path` (result.json) with its lines file beside it. */
export async function writeResultFile(path: string, result: unknown, options: WriteJsonOptions = {}): Promise<void> {
  if (typeof result === "object" && result !== null) placeItemsFile(result, path);
  await writeJsonAtomic(path, result, options);
}

/** Attaches the lines file beside `path` to a result read from it, when a map of it keeps its items there. */
export function withItemsBeside(result: CompletedState, path: string): CompletedState {
  for (const state of Object.values(result.step_states ?? {})) {
    const lines = itemLinesOf(state);
    if (lines !== null) {
      attachItemsFile(result, itemsFileBeside(path, lines));
      break;
    }
  }
  return result;
}

/** Reads result.json (validated) with its lines file known to mapItemStates. */
export async function readResultFile(path: string): Promise<CompletedState> {
  return withItemsBeside(CompletedState.fromJSON(JSON.parse(await readFile(path, "utf8"))), path);
}
