// `hpcpipe run --json` on this machine: stdout is the merged result alone (scripts parse it whole, as
// before); stderr carries the watch's events, one JSON object per line by the declared schema: start
// first, a state event for every item of the map with its declared image output, end last.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { watchEventSchema } from "../../src/app/progress-events.js";
import { cli } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hpcpipe-run-events-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("hpcpipe run --json", () => {
  test("stdout is the merged result; stderr has the events by the schema, the end last", async () => {
    await writeFile(join(dir, "items.txt"), "1\n2\n3\n4\n");
    const spec = join(dir, "ev.yaml");
    await writeFile(
      spec,
      [
        "name: ev",
        "steps:",
        "  - step: setup",
        "    run: mkdir -p out",
        "  - map: draw",
        "    items_file: items.txt",
        "    as: n",
        // One item at a time, half a second each: the feed (a scan every 0.25 s) sees the first items' states
        // well before the run ends.
        "    throttle: 1",
        "    steps:",
        "      - step: png",
        "        run: sleep 0.5; echo \"$n\" > \"out/f$n.png\"",
        "        requires: [n]",
        '        outputs: ["out/f{item}.png"]',
        "",
      ].join("\n"),
    );
    const result = await cli("run", spec, "--runs-dir", join(dir, "runs"), "--json");
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { success: boolean }).success).toBe(true);
    const lines = result.stderr.split("\n").filter((l) => l.startsWith("{"));
    const events = lines.map((l) => watchEventSchema.parse(JSON.parse(l)));
    expect(events[0]?.type).toBe("start");
    expect(events.at(-1)).toMatchObject({ type: "end", final: true, aborted: false, result: { success: true, exit_code: 0 } });
    const last = events.filter((e) => e.type === "progress").at(-1);
    const map = last?.type === "progress" ? last.rows.find((r) => r.key === "map:ev.draw") : undefined;
    expect(map).toMatchObject({ label: "ev.draw [4 tasks]", final: true, counts: { done: 4, failed: 0, running: 0, pending: 0 }, eta_s: 0 });
    expect(map?.latest_image).toMatch(/\/work\/out\/f[1-4]\.png$/);
    // The live feed brings the items' states (a local run's last ones may come after its end: the first ones).
    const pngs = events.filter((e) => e.type === "state" && e.step.endsWith(".png"));
    expect(pngs.length).toBeGreaterThan(0);
    for (const e of pngs) expect(e).toMatchObject({ job: "j001", status: "ok", outputs: [expect.stringMatching(/^out\/f[1-4]\.png$/)] });
  });
});
