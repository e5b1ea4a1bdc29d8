/**
 * The rows of a result summary with each map's items collapsed into counts:
 * a map of 100,000 items is one row ("99,999 ok, 1 failed (item 23)"), not
 * 200,000. One pass over the step states, no spreads over them, so any
 * number of items fits (a spread into Math.max overflows the stack).
 */

/** What a row needs to know of a step's state. */
export interface OutcomeView {
  success: boolean;
  notRun: boolean;
  /** How long it took (seconds), when known: a map's slowest items are named by their own state's. */
  durationS?: number;
}

/** A map's items by outcome; `failedItems` holds the first failed (or not run) item indices. */
export interface ItemTally {
  total: number;
  ok: number;
  failed: number;
  notRun: number;
  failedItems: number[];
  /** The slowest items by their own state's duration, slowest first (at most SLOWEST_ITEMS_SHOWN). */
  slowest: Array<{ index: number; durationS: number }>;
}

/** How many of a map's slowest items a tally names. */
export const SLOWEST_ITEMS_SHOWN = 3;

export type SummaryRow<S> = { kind: "step"; key: string; state: S } | { kind: "map"; key: string; state: S; items: ItemTally };

/** How many failed item indices a tally keeps (the rest are counted). */
export const FAILED_ITEMS_SHOWN = 5;

const DIGITS = /^\d+$/;

/** `<map>.<index>` or `<map>.<index>.<more>` where `<map>` is a recorded step: the map and the index. */
function itemOf(key: string, has: (k: string) => boolean): { map: string; index: number; unit: boolean } | null {
  let dot = key.indexOf(".");
  while (dot >= 0) {
    const next = key.indexOf(".", dot + 1);
    const segment = next < 0 ? key.slice(dot + 1) : key.slice(dot + 1, next);
    if (DIGITS.test(segment)) {
      const map = key.slice(0, dot);
      if (has(map)) return { map, index: Number(segment), unit: next < 0 };
    }
    dot = next;
  }
  return null;
}

interface ItemFacts {
  unit: OutcomeView | null;
  failedRan: boolean;
  failedNotRun: boolean;
}

/**
 * The summary rows in the states' own order; a map's row stands where the map's own key is.
 * `tallyOf`: a map's counts kept with its state (a large map whose items are in the result's
 * lines file, src/core/item-lines.ts); its items in `states` are then not counted again.
 */
export function summaryRows<S>(states: Record<string, S>, view: (s: S) => OutcomeView, tallyOf: (s: S) => ItemTally | null = () => null): Array<SummaryRow<S>> {
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(states, k);
  const rows: Array<SummaryRow<S>> = [];
  const maps = new Map<string, { row: Extract<SummaryRow<S>, { kind: "map" }>; items: Map<number, ItemFacts>; kept?: ItemTally }>();
  const itemsOf = (map: string): Map<number, ItemFacts> => {
    let entry = maps.get(map);
    if (entry === undefined) {
      const state = states[map] as S;
      entry = { row: { kind: "map", key: map, state, items: { total: 0, ok: 0, failed: 0, notRun: 0, failedItems: [], slowest: [] } }, items: new Map() };
      maps.set(map, entry);
    }
    return entry.items;
  };
  const order: string[] = [];
  for (const key of Object.keys(states)) {
    const kept = tallyOf(states[key] as S);
    if (kept !== null) {
      itemsOf(key);
      (maps.get(key) as { kept?: ItemTally }).kept = kept;
    }
    const item = itemOf(key, has);
    if (item === null) {
      order.push(key);
      continue;
    }
    if (maps.get(item.map)?.kept !== undefined) continue;
    const items = itemsOf(item.map);
    let facts = items.get(item.index);
    if (facts === undefined) {
      facts = { unit: null, failedRan: false, failedNotRun: false };
      items.set(item.index, facts);
    }
    const v = view(states[key] as S);
    if (item.unit) facts.unit = v;
    else if (!v.success) {
      if (v.notRun) facts.failedNotRun = true;
      else facts.failedRan = true;
    }
  }
  for (const key of order) {
    const entry = maps.get(key);
    if (entry === undefined) {
      rows.push({ kind: "step", key, state: states[key] as S });
      continue;
    }
    if (entry.kept !== undefined) {
      entry.row.items = entry.kept;
      rows.push(entry.row);
      continue;
    }
    const tally = entry.row.items;
    const indices = [...entry.items.keys()].sort((a, b) => a - b);
    for (const index of indices) {
      const f = entry.items.get(index) as ItemFacts;
      const outcome = f.unit !== null ? (f.unit.success ? "ok" : f.unit.notRun ? "notRun" : "failed") : f.failedRan ? "failed" : f.failedNotRun ? "notRun" : "ok";
      tally.total++;
      tally[outcome]++;
      if (outcome !== "ok" && tally.failedItems.length < FAILED_ITEMS_SHOWN) tally.failedItems.push(index);
      const d = f.unit?.durationS;
      if (d !== undefined && Number.isFinite(d)) keepSlowest(tally.slowest, index, d);
    }
    rows.push(entry.row);
  }
  return rows;
}

/** Keeps the SLOWEST_ITEMS_SHOWN slowest in `list` (slowest first): a few comparisons per item, no sort of all items. */
function keepSlowest(list: Array<{ index: number; durationS: number }>, index: number, durationS: number): void {
  if (list.length === SLOWEST_ITEMS_SHOWN && durationS <= (list.at(-1)?.durationS ?? -Infinity)) return;
  let at = list.length;
  while (at > 0 && (list[at - 1]?.durationS ?? Infinity) < durationS) at--;
  list.splice(at, 0, { index, durationS });
  if (list.length > SLOWEST_ITEMS_SHOWN) list.pop();
}

/** A map with fewer items shows them all anyway: its summary names no slowest ones. */
const SLOWEST_FROM_ITEMS = 10;

/** `slowest: item 12 (3.20 s), item 9 (2.91 s)`; empty when no item's duration is known or the map is small. */
export function slowestText(t: ItemTally): string {
  if (t.slowest.length === 0 || t.total < SLOWEST_FROM_ITEMS) return "";
  return `slowest: ${t.slowest.map((s) => `item ${s.index} (${s.durationS.toFixed(2)} s)`).join(", ")}`;
}

const n = (x: number): string => x.toLocaleString("en-US");

/** `49,999 ok, 1 failed (item 23)`; `2 ok, 3 failed (items 4, 7 and 1 more), 5 not run`. */
export function itemTallyText(t: ItemTally): string {
  const parts = [`${n(t.ok)} ok`];
  const bad = t.failed + t.notRun;
  const shown = t.failedItems;
  const which =
    bad === 0
      ? ""
      : ` (item${bad > 1 ? "s" : ""} ${shown.join(", ")}${bad > shown.length ? ` and ${n(bad - shown.length)} more` : ""})`;
  if (t.failed > 0) parts.push(`${n(t.failed)} failed${t.notRun === 0 ? which : ""}`);
  if (t.notRun > 0) parts.push(`${n(t.notRun)} not run${which}`);
  return `${n(t.total)} item${t.total === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

/**
 * Failures that did not stop the run (continue_on_error, continue_on_item_error):
 * each failed map item once, and each failed step outside a map that is not
 * just the parent of another failure.
 */
export function countFailures<S>(rows: ReadonlyArray<SummaryRow<S>>, view: (s: S) => OutcomeView): number {
  let count = 0;
  const failedKeys: string[] = [];
  for (const row of rows) {
    if (row.kind === "map") count += row.items.failed + row.items.notRun;
    else if (!view(row.state).success) failedKeys.push(row.key);
  }
  const parents = new Set<string>();
  for (const row of rows) {
    if (row.kind === "map" ? row.items.failed + row.items.notRun === 0 : view(row.state).success) continue;
    for (let dot = row.key.lastIndexOf("."); dot > 0; dot = row.key.lastIndexOf(".", dot - 1)) parents.add(row.key.slice(0, dot));
  }
  for (const key of failedKeys) if (!parents.has(key)) count++;
  return count;
}
