/**
 * The items of a map in a merged result, one at a time: what code that
 * walks a map's outcome uses, so it never depends on how the result keeps
 * them (`<map>.<i>` for the item's pipeline, `<map>.<i>.<step>` for its steps).
 */
import type { CompletedState } from "./completed-state.js";
import { itemLineStates, itemLinesOf, itemsFileOf, ItemLinesError, readItemLines } from "./item-lines.js";
import { preview } from "./preview.js";

/** One item of a map: its index, the item text when recorded, its pipeline's state and its steps' states. */
export interface MapItemState {
  index: number;
  /** The item (the item pipeline's `meta.item`), or null when the result does not say. */
  item: string | null;
  /** The item's own state (`<map>.<index>`), or null when it was not recorded (never ran). */
  state: CompletedState | null;
  /** Its steps by the key after the item: `render`, `check.inner`. */
  steps: Record<string, CompletedState>;
}

const DIGITS = /^\d+$/;

/**
 * Every recorded item of the map `mapKey` (a full step key, `pipeline.each`)
 * in index order. Throws when the result has no step of that key. A large
 * map's items are read from the result's lines file (src/core/item-lines.ts)
 * one line at a time; a small map's from `step_states`.
 */
export function* mapItemStates(result: CompletedState, mapKey: string): Generator<MapItemState, void, undefined> {
  const states = result.step_states ?? {};
  if (!Object.prototype.hasOwnProperty.call(states, mapKey)) throw new RangeError(`the result has no step ${preview(mapKey)}`);
  const lines = itemLinesOf(states[mapKey]);
  if (lines !== null) {
    const path = itemsFileOf(result);
    if (path === undefined) throw new ItemLinesError(`the items of map ${preview(mapKey)} are in ${lines.file} beside the result's result.json, and this result was not read from one (read it with readResultFile)`);
    for (const line of readItemLines(path, mapKey)) yield { index: line.index, item: line.item, ...itemLineStates(line) };
    return;
  }
  const prefix = `${mapKey}.`;
  const items = new Map<number, MapItemState>();
  for (const key of Object.keys(states)) {
    if (!key.startsWith(prefix)) continue;
    const dot = key.indexOf(".", prefix.length);
    const segment = dot === -1 ? key.slice(prefix.length) : key.slice(prefix.length, dot);
    if (!DIGITS.test(segment)) continue;
    const index = Number(segment);
    let entry = items.get(index);
    if (entry === undefined) {
      entry = { index, item: null, state: null, steps: {} };
      items.set(index, entry);
    }
    const state = states[key] as CompletedState;
    if (dot === -1) {
      entry.state = state;
      if (typeof state.meta.item === "string") entry.item = state.meta.item;
    } else {
      entry.steps[key.slice(dot + 1)] = state;
      if (entry.item === null && typeof state.meta.item === "string") entry.item = state.meta.item;
    }
  }
  const order = [...items.keys()].sort((a, b) => a - b);
  for (const index of order) yield items.get(index) as MapItemState;
}
