/**
 * Items files have no byte cap (issue 16): they are read line by line, so a
 * file over 16 MiB loads, multi-byte characters split across read chunks
 * survive, and the first bad line or the 1,000,001st item stops the reading
 * with the file, the line and the reason.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { forEachItemLine } from "../../src/spec/items-file.js";
import { MAX_MAP_ITEMS } from "../../src/spec/load.js";
import { MapStep } from "../../src/spec/map-step.js";
import { HEAD, loadText, specErrorOf, tempDir } from "./helpers.js";

const tmp = tempDir("hpcpipe-items-large-");
afterAll(() => tmp.cleanup());

const SPEC = `${HEAD}  - map: m\n    items_file: items.txt\n    items_per_task: 100\n    steps:\n      - step: s\n        run: x\n        requires: [item]\n`;

/** 300,000 items of 60 bytes: an 18 MB file, over the old 16 MiB cap. */
function bigItems(n = 300_000): string[] {
  return Array.from({ length: n }, (_, i) => `objaverse/glbs/000-${String(i % 160).padStart(3, "0")}/${i.toString(16).padStart(32, "0")}.glb`);
}

describe("items files without a size cap", () => {
  it("loads an 18 MB items file of 300,000 items, every item in order", () => {
    const items = bigItems();
    const text = `# objects\n${items.join("\n")}\n`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(16 * 1024 * 1024);
    const loaded = loadText(SPEC, { "items.txt": text });
    const map = loaded.pipeline.children[0] as MapStep;
    expect(map).toBeInstanceOf(MapStep);
    expect(map.items).toHaveLength(items.length);
    expect(map.items[0]).toBe(items[0]);
    expect(map.items[299_999]).toBe(items[299_999]);
  });

  it("keeps multi-byte characters that straddle a read chunk, and a last line without a newline", () => {
    const file = join(tmp.dir, "utf8.txt");
    // 1 MiB - 1 bytes of ASCII, then a 3-byte character across the chunk boundary.
    const first = "a".repeat(1024 * 1024 - 1);
    writeFileSync(file, `${first}€b\r\n\n# note\nlast`);
    const seen: Array<[string, number]> = [];
    forEachItemLine(file, (item, line) => void seen.push([item.length > 20 ? `${item.slice(-3)}:${item.length}` : item, line]));
    expect(seen).toEqual([
      [`a€b:${1024 * 1024 + 1}`, 1],
      ["last", 4],
    ]);
  });

  it("stops at the first bad line of a big file, naming the file and the line", () => {
    const items = bigItems(200_000);
    items[150_000] = "bad\titem";
    const err = specErrorOf(SPEC, { "items.txt": `${items.join("\n")}\n` });
    expect(err.path).toBe("steps[0].items_file");
    expect(err.expected).toBe("items.txt line 150001: item must not contain a control character");
  });

  it("refuses more than MAX_MAP_ITEMS items, naming the first line over", () => {
    const text = "x\n".repeat(MAX_MAP_ITEMS + 1);
    const err = specErrorOf(SPEC, { "items.txt": text });
    expect(err.expected).toBe(`items.txt has more than ${MAX_MAP_ITEMS} items (line ${MAX_MAP_ITEMS + 1} is item ${MAX_MAP_ITEMS + 1}); at most ${MAX_MAP_ITEMS} are allowed`);
  });

  it("refuses an items file that is not a regular file", () => {
    const err = specErrorOf(`${HEAD}  - map: m\n    items_file: ${JSON.stringify(tmp.dir)}\n    steps:\n      - step: s\n        run: x\n`);
    expect(err.expected).toMatch(/expected a readable file of items .*(not a regular file|EISDIR)/);
  });
});
