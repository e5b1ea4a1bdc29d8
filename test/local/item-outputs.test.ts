/**
 * Per-item output patterns in a map, run for real (the compiled job scripts
 * with bash on the local executor, packed and unpacked, and in-process):
 * `{i}` is the item's index, `{item}` its value; each item's outputs are
 * checked for that item alone, and recorded as concrete paths.
 */
import { mkdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { loadSpec } from "../../src/spec/index.js";
import { cli } from "../cli/helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-item-outputs-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

type States = Record<string, { success: boolean; error: string | null; outputs: { files?: string[] } }>;

async function itemSpec(packed: boolean): Promise<string> {
  const path = join(dir, "items.yaml");
  await writeFile(
    path,
    [
      "name: per_item",
      "steps:",
      "  - map: each",
      '    items: ["a b", "x&y", skip, "sub/dir"]',
      "    as: thing",
      "    continue_on_item_error: true",
      ...(packed ? ["    items_per_task: 4"] : []),
      "    steps:",
      "      - step: write",
      "        run: |",
      '          [ "$thing" = skip ] && exit 0',
      '          mkdir -p "out/$(dirname "$thing")" out/n',
      '          echo "$thing" > "out/$thing.txt"',
      '          echo "$HPCPIPE_TASK" > "out/n/$HPCPIPE_TASK.idx"',
      "        requires: [thing]",
      "        outputs:",
      '          - "out/{item}.txt"',
      '          - "out/n/{i}.idx"',
      "",
    ].join("\n"),
  );
  return path;
}

function checkItems(states: States): void {
  expect(states["per_item.each.0.write"]).toMatchObject({ success: true, outputs: { files: ["out/a b.txt", "out/n/0.idx"] } });
  expect(states["per_item.each.1.write"]).toMatchObject({ success: true, outputs: { files: ["out/x&y.txt", "out/n/1.idx"] } });
  expect(states["per_item.each.3.write"]).toMatchObject({ success: true, outputs: { files: ["out/sub/dir.txt", "out/n/3.idx"] } });
  const skipped = states["per_item.each.2.write"];
  expect(skipped?.success).toBe(false);
  expect(skipped?.error).toContain("out/skip.txt");
  expect(skipped?.error).toContain("out/n/2.idx");
}

describe("per-item outputs of a map", () => {
  for (const packed of [false, true]) {
    test(`are checked per item on the local executor${packed ? " (packed task)" : ""}: a missing one fails only its own item`, async () => {
      const result = await cli("run", await itemSpec(packed), "--runs-dir", join(dir, "runs"), "--json", "-q");
      const state = JSON.parse(result.stdout) as { success: boolean; step_states: States };
      checkItems(state.step_states);
      expect(state.success).toBe(true);
      expect(result.code).toBe(0);
    }, 30_000);
  }

  test("are checked per item in-process too", async () => {
    const loaded = loadSpec(await itemSpec(false));
    const work = join(dir, "work");
    mkdirSync(work);
    const state = await loaded.pipeline.run({ ...loaded.context }, { workDir: work });
    checkItems(state.step_states as unknown as States);
  }, 30_000);

  test("an item whose value would take its output out of the working directory fails that item, naming the path", async () => {
    const path = join(dir, "escape.yaml");
    await writeFile(
      path,
      ["name: esc", "steps:", "  - map: each", '    items: ["../../evil", ok]', "    continue_on_item_error: true", "    steps:", "      - step: w", '        run: mkdir -p out && touch "out/$HPCPIPE_TASK"', '        outputs: ["out/{item}"]', ""].join("\n"),
    );
    const result = await cli("run", path, "--runs-dir", join(dir, "runs"), "--json", "-q");
    const state = JSON.parse(result.stdout) as { step_states: States };
    expect(state.step_states["esc.each.0.w"]?.success).toBe(false);
    expect(state.step_states["esc.each.0.w"]?.error).toContain("out/../../evil");
  }, 30_000);
});
