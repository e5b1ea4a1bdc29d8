// The report's data model (src/report/model.ts): pure, so every rule is checked on exact inputs —
// plans compiled by the real compiler, results shaped like the merger's.
import { describe, expect, it } from "vitest";
import {
  buildReportModel,
  IMAGE_MAX_BYTES,
  IMAGES_TOTAL_MAX_BYTES,
  imageMime,
  imageTargets,
  LOG_LINE_MAX_CHARS,
  LOG_TAIL_LINES,
  logPaths,
  logTargets,
  MAX_LOG_TAILS,
  MAX_MAP_ITEMS_SHOWN,
  safeOutputPath,
  tailLines,
} from "../../src/report/model.js";
import type { FetchedImage, ReportInput, RunFacts, TaskTimes, TreeNode } from "../../src/report/model.js";
import type { CompletedStateJson } from "../../src/core/completed-state.js";
import { compileSpec, failed, result, solidPng, state } from "./helpers.js";

const SPEC = `
name: shop
steps:
  - step: prep
    run: "true"
    outputs: [out/a.png, out/b.svg]
  - group: renders
    parallel: true
    steps:
      - step: front
        run: "true"
      - step: side
        run: "true"
        continue_on_error: true
  - map: checks
    items: [a.glb, b.glb, c.glb]
    as: model
    continue_on_item_error: true
    steps:
      - step: check
        run: "true"
        requires: [model]
  - step: final
    run: "true"
`;
const plan = compileSpec(SPEC);
const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();

function steps(): Record<string, CompletedStateJson> {
  return {
    "shop.prep": state({
      timestamp: at(1),
      duration_s: 2,
      outputs: { files: ["out/a.png", "out/b.svg", "../escape.png", "/etc/passwd.png", "out/a.png"] },
      meta: { host: "n1", slurm: { job_id: "10", task: 0 }, attempt: 1 },
    }),
    "shop.renders.front": state({ timestamp: at(5), duration_s: 1, meta: { host: "n2", slurm: { job_id: "12", array_job_id: "11", array_task_id: "0", task: 0 } } }),
    "shop.renders.side": failed("command exited with status 3", {
      timestamp: at(5.5),
      duration_s: 0.5,
      meta: { host: "n2", exit_code: 3, slurm: { job_id: "13", array_job_id: "11", array_task_id: "1", task: 1 } },
    }),
    "shop.renders": state({ timestamp: at(5), duration_s: 1, meta: { failed_allowed: ["shop.renders.side"] } }),
    "shop.checks.0.check": state({ timestamp: at(7), duration_s: 1, meta: { host: "n1", item: "a.glb", slurm: { job_id: "15", array_job_id: "14", array_task_id: "0", task: 0 } } }),
    "shop.checks.0": state({ timestamp: at(7), duration_s: 1, meta: { item: "a.glb" } }),
    "shop.checks.1.check": failed("command exited with status 1", {
      timestamp: at(7),
      duration_s: 1,
      meta: { host: "n1", item: "b.glb", exit_code: 1, slurm: { job_id: "16", array_job_id: "14", array_task_id: "1", task: 1 } },
    }),
    "shop.checks.1": failed("shop.checks.1.check: command exited with status 1", { timestamp: at(7), duration_s: 1, meta: { item: "b.glb", failed_step: "shop.checks.1.check" } }),
    "shop.checks.2.check": failed("job j002 task 2 (SLURM 14) ended TIMEOUT (TimeLimit) before this step wrote its state", {
      timestamp: at(20),
      duration_s: 0,
      meta: { not_run: true, slurm_state: "TIMEOUT", slurm_reason: "TimeLimit", job: "j002", slurm_job_id: "14", task: 2 },
    }),
    "shop.checks.2": failed("shop.checks.2.check: ended TIMEOUT", { timestamp: at(20), meta: { not_run: true, slurm_state: "TIMEOUT", slurm_reason: "TimeLimit" } }),
    "shop.checks": state({ timestamp: at(7), duration_s: 13, meta: { failed_allowed: ["shop.checks.1", "shop.checks.2"] } }),
    "shop.final": failed("job j003 (SLURM 17) ended CANCELLED (DependencyNeverSatisfied) before this step wrote its state", {
      timestamp: at(20),
      duration_s: 0,
      meta: { not_run: true, slurm_state: "CANCELLED", slurm_reason: "DependencyNeverSatisfied", job: "j003", slurm_job_id: "17" },
    }),
  };
}

const RUN: RunFacts = {
  kind: "cluster",
  runId: "20260101-000000-abcdef",
  pipeline: "shop",
  cluster: "testcluster",
  attempt: 1,
  started: at(0),
  location: "$HOME/runs/shop/20260101-000000-abcdef",
  phase: "collected",
};

function input(over: Partial<ReportInput> = {}): ReportInput {
  return {
    plan,
    result: result({ success: false, failure: "STEP_FAILED", error: "shop.final: job j003 ended CANCELLED", timestamp: at(1), duration_s: 19 }, steps()),
    run: RUN,
    scheduler: null,
    logs: new Map(),
    images: new Map(),
    generated: "2026-01-02T00:00:00.000Z",
    ...over,
  };
}

function flatten(node: TreeNode): TreeNode[] {
  return [node, ...node.children.flatMap(flatten)];
}

describe("the tree", () => {
  it("follows the plan: every node with its concrete key, kind, outcome and facts; map items carry their values", () => {
    const m = buildReportModel(input());
    const nodes = flatten(m.tree);
    expect(nodes.map((n) => `${n.key}:${n.kind}:${n.outcome}`)).toEqual([
      "shop:pipeline:failed",
      "shop.prep:step:ok",
      "shop.renders:group:ok",
      "shop.renders.front:step:ok",
      "shop.renders.side:step:failed",
      "shop.checks:map:ok",
      "shop.checks.0:item:ok",
      "shop.checks.0.check:step:ok",
      "shop.checks.1:item:failed",
      "shop.checks.1.check:step:failed",
      "shop.checks.2:item:not_run",
      "shop.checks.2.check:step:not_run",
      "shop.final:step:not_run",
    ]);
    const byKey = new Map(nodes.map((n) => [n.key, n]));
    expect(byKey.get("shop.renders.side")).toMatchObject({ allowed: true, host: "n2", slurmId: "11_1", duration_s: 0.5, failure: "STEP_FAILED" });
    expect(byKey.get("shop.prep")).toMatchObject({ allowed: false, slurmId: "10", host: "n1" });
    expect(byKey.get("shop.checks.1")).toMatchObject({ allowed: true, item: "b.glb", name: "1" });
    expect(byKey.get("shop.checks.2")?.item).toBe("c.glb"); // from the plan's items when the state has none
    expect(byKey.get("shop.final")).toMatchObject({ outcome: "not_run", reason: "CANCELLED (DependencyNeverSatisfied)", duration_s: null, slurmId: "17", allowed: false });
    expect(m.counts).toEqual({ ok: 3, failed: 2, skipped: 0, not_run: 2 });
  });

  it("a step the plan has but the result does not is 'not run' (never started)", () => {
    const s = steps();
    delete s["shop.renders.front"];
    const m = buildReportModel(input({ result: result({ success: false }, s) }));
    expect(flatten(m.tree).find((n) => n.key === "shop.renders.front")).toMatchObject({ outcome: "not_run", error: "no result: it was not started" });
  });

  it("a success from an earlier attempt is 'skipped' (reused by a resume), and is not drawn on the timeline", () => {
    const m = buildReportModel(input({ run: { ...RUN, attempt: 2 } }));
    expect(flatten(m.tree).find((n) => n.key === "shop.prep")).toMatchObject({ outcome: "skipped", fromAttempt: 1 });
    expect(m.counts.skipped).toBe(1);
    expect(m.timeline.rows.map((r) => r.key)).not.toContain("shop.prep");
    expect(m.timeline.skipped).toBe(1);
  });

  it("a large map shows its failed items first and counts the rest", () => {
    const n = MAX_MAP_ITEMS_SHOWN + 50;
    const items = Array.from({ length: n }, (_, i) => `m${i}.glb`);
    const big = compileSpec(`
name: big
steps:
  - map: all
    items: [${items.join(", ")}]
    continue_on_item_error: true
    steps:
      - step: check
        run: "true"
`);
    const s: Record<string, CompletedStateJson> = {};
    for (let i = 0; i < n; i++) {
      const bad = i % 40 === 39;
      s[`big.all.${i}.check`] = bad ? failed("boom") : state();
      s[`big.all.${i}`] = bad ? failed("big.all.check: boom") : state();
    }
    const m = buildReportModel(input({ plan: big, result: result({}, s), run: { ...RUN, pipeline: "big" } }));
    const map = m.tree.children[0] as TreeNode;
    expect(map.children).toHaveLength(MAX_MAP_ITEMS_SHOWN);
    const failedShown = map.children.filter((c) => c.outcome === "failed").map((c) => c.key);
    expect(failedShown).toEqual(["big.all.39", "big.all.79", "big.all.119"]);
    expect(map.omitted).toEqual({ count: 50, byOutcome: { ok: 50, failed: 0, skipped: 0, not_run: 0 } });
    // Counting is over every step, shown or not.
    expect(m.counts).toEqual({ ok: n - 3, failed: 3, skipped: 0, not_run: 0 });
  });

  it("items left out of the tree still count as allowed failures in the errors list", () => {
    const n = MAX_MAP_ITEMS_SHOWN + 20;
    const big = compileSpec(`
name: big
steps:
  - map: all
    items: [${Array.from({ length: n }, (_, i) => `m${i}`).join(", ")}]
    continue_on_item_error: true
    steps:
      - step: check
        run: "true"
`);
    const s: Record<string, CompletedStateJson> = {};
    for (let i = 0; i < n; i++) {
      s[`big.all.${i}.check`] = failed("boom");
      s[`big.all.${i}`] = failed("big.all.check: boom");
    }
    const m = buildReportModel(input({ plan: big, result: result({}, s), run: { ...RUN, pipeline: "big" } }));
    expect(m.tree.children[0]?.omitted?.count).toBe(20);
    expect(m.errors).toHaveLength(n);
    expect(m.errors.every((e) => e.allowed)).toBe(true);
  });

  it("without a plan (an old run directory) the tree is rebuilt from the keys, maps recognised by their indices", () => {
    const m = buildReportModel(input({ plan: null }));
    const nodes = flatten(m.tree);
    expect(m.tree).toMatchObject({ key: "shop", kind: "pipeline", outcome: "failed" });
    expect(nodes.find((n) => n.key === "shop.checks")?.kind).toBe("map");
    expect(nodes.find((n) => n.key === "shop.checks.1")).toMatchObject({ kind: "item", allowed: true, item: "b.glb" });
    expect(nodes.find((n) => n.key === "shop.renders")?.kind).toBe("composite");
    expect(nodes.find((n) => n.key === "shop.renders.side")).toMatchObject({ kind: "step", allowed: true });
    expect(nodes.find((n) => n.key === "shop.prep")).toMatchObject({ kind: "step", allowed: false });
    expect(m.notes.join(" ")).toMatch(/no plan\.json/);
    expect(m.counts).toEqual({ ok: 3, failed: 2, skipped: 0, not_run: 2 });
  });
});

describe("the timeline", () => {
  const times = new Map<string, TaskTimes>([
    ["10", { submit: T0, eligible: T0, start: T0 + 1000, end: T0 + 3000, nodes: "n1" }],
    ["12", { submit: T0, eligible: T0 + 3000, start: T0 + 5000, end: T0 + 6000, nodes: "n2" }],
    ["13", { submit: T0, eligible: T0 + 3000, start: T0 + 5000, end: T0 + 6000, nodes: "n2" }],
    ["15", { submit: T0, eligible: T0 + 6000, start: T0 + 7000, end: T0 + 8000, nodes: "n1" }],
  ]);

  it("one row per step that ran: start = the state's timestamp, end = start + duration, the host", () => {
    const m = buildReportModel(input({ scheduler: { available: true, byJobId: times } }));
    expect(m.timeline.rows.map((r) => [r.key, r.start - T0, r.end - T0, r.host, r.slurmId, r.outcome])).toEqual([
      ["shop.prep", 1000, 3000, "n1", "10", "ok"],
      ["shop.renders.front", 5000, 6000, "n2", "11_0", "ok"],
      ["shop.renders.side", 5500, 6000, "n2", "11_1", "failed"],
      ["shop.checks.0.check", 7000, 8000, "n1", "14_0", "ok"],
      ["shop.checks.1.check", 7000, 8000, "n1", "14_1", "failed"],
    ]);
    expect(m.timeline.from).toBe(T0);
    expect(m.timeline.to).toBe(T0 + 8000);
  });

  it("queue waits from the scheduler: submit to start, with the part spent on dependencies", () => {
    const m = buildReportModel(input({ scheduler: { available: true, byJobId: times } }));
    const row = (key: string) => m.timeline.rows.find((r) => r.key === key);
    expect(row("shop.prep")).toMatchObject({ waitFrom: T0, wait_s: 1, dependency_s: 0 });
    expect(row("shop.renders.front")).toMatchObject({ waitFrom: T0, wait_s: 5, dependency_s: 3 });
    expect(row("shop.renders.side")).toMatchObject({ waitFrom: T0, wait_s: 5, dependency_s: 3 });
    // Task 16 has no scheduler record: measured from the run's submission, and the page says so.
    expect(row("shop.checks.1.check")).toMatchObject({ waitFrom: T0, wait_s: 7 });
    expect(m.timeline.approximate).toBe(true);
    expect(m.timeline.waitNote).toMatch(/sacct.*no scheduler record/s);
  });

  it("the wait belongs to the first step of a task; later steps of the same task (a fused job) carry none", () => {
    const s = steps();
    s["shop.renders.front"] = state({ timestamp: at(3.2), duration_s: 1, meta: { host: "n1", slurm: { job_id: "10", task: 0 } } });
    const m = buildReportModel(input({ result: result({}, s), scheduler: { available: true, byJobId: times } }));
    expect(m.timeline.rows.find((r) => r.key === "shop.prep")?.wait_s).toBe(1);
    expect(m.timeline.rows.find((r) => r.key === "shop.renders.front")).toMatchObject({ waitFrom: null, wait_s: null });
  });

  it("without the scheduler's times (offline, no accounting) the waits are approximate and the page says why", () => {
    const m = buildReportModel(input({ scheduler: { available: false, why: "SLURM accounting storage is disabled on this cluster" } }));
    expect(m.timeline.approximate).toBe(true);
    expect(m.timeline.rows.find((r) => r.key === "shop.renders.front")).toMatchObject({ waitFrom: T0, wait_s: 5, dependency_s: null });
    expect(m.notes.join(" ")).toMatch(/Queue waits are approximate.*accounting storage is disabled/);
  });

  it("a resumed attempt without the scheduler's times shows no waits rather than wrong ones", () => {
    const m = buildReportModel(input({ run: { ...RUN, attempt: 2, started: null }, scheduler: { available: false, why: "--offline" } }));
    expect(m.timeline.rows.every((r) => r.wait_s === null && r.waitFrom === null)).toBe(true);
    expect(m.timeline.waitNote).toMatch(/^Queue waits are not shown/);
    expect(m.notes.join(" ")).toMatch(/Queue waits are not shown/);
  });

  it("a local run measures waits from the run's start, and says so", () => {
    const m = buildReportModel(input({ run: { ...RUN, kind: "local", cluster: "local", started: at(0.5) } }));
    expect(m.timeline.approximate).toBe(false);
    expect(m.timeline.waitNote).toMatch(/^Local run/);
    expect(m.timeline.rows.find((r) => r.key === "shop.prep")).toMatchObject({ waitFrom: T0 + 500, wait_s: 0.5 });
    expect(m.started).toBe(at(0.5));
    expect(m.finished).toBe(at(8));
    expect(m.wall_s).toBe(7.5);
  });
});

describe("errors and logs", () => {
  it("lists every failed step in tree order with its facts; not-run steps say why", () => {
    const m = buildReportModel(input());
    expect(m.errors.map((e) => [e.key, e.notRun, e.allowed, e.exitCode])).toEqual([
      ["shop.renders.side", false, true, 3],
      ["shop.checks.1.check", false, true, 1], // its map item may fail
      ["shop.checks.2.check", true, false, null],
      ["shop.final", true, false, null],
    ]);
    expect(m.errors[3]).toMatchObject({ reason: "CANCELLED (DependencyNeverSatisfied)", slurmId: "17" });
    expect(m.exitCode).toBe(4);
  });

  it("fetches logs for failed steps that may have run (not for jobs that never started), at most MAX_LOG_TAILS", () => {
    expect(logTargets(plan, input().result)).toEqual(["shop.renders.side", "shop.checks.1.check", "shop.checks.2.check"]);
    const many: Record<string, CompletedStateJson> = {};
    for (let i = 0; i < MAX_LOG_TAILS + 10; i++) many[`p.s${i}`] = failed("x");
    expect(logTargets(null, result({ success: false }, many))).toHaveLength(MAX_LOG_TAILS);
  });

  it("attaches the tails it is given; a failure no step explains is reported on the root", () => {
    const tail = { stream: "stderr" as const, path: "logs/shop.final.err", lines: ["oops"], truncated: false, missing: null };
    const m = buildReportModel(input({ logs: new Map([["shop.renders.side", [tail]]]) }));
    expect(m.errors[0]?.logs).toEqual([tail]);
    const lonely = buildReportModel(input({ plan: null, result: result({ success: false, failure: "STEP_FAILED", error: "states/x.json is unusable" }, {}) }));
    expect(lonely.errors).toMatchObject([{ key: "shop", error: "states/x.json is unusable" }]);
  });

  it("log paths only for real step keys", () => {
    expect(logPaths("shop.checks.1.check")).toEqual({ stdout: "logs/shop.checks.1.check.out", stderr: "logs/shop.checks.1.check.err" });
    expect(logPaths("../../etc/passwd")).toBeNull();
    expect(logPaths("a..b")).toBeNull();
    expect(logPaths("a/b")).toBeNull();
  });

  it("tailLines: the last lines, a partial first line dropped, escapes and control characters removed, long lines cut", () => {
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i + 1}`);
    const full = tailLines(Buffer.from(`${lines.join("\n")}\n`), false, "stdout", "logs/x.out");
    expect(full.lines).toEqual(lines.slice(-LOG_TAIL_LINES));
    expect(full.truncated).toBe(true);
    const short = tailLines(Buffer.from("a\r\nb\n"), false, "stdout", "logs/x.out");
    expect(short).toMatchObject({ lines: ["a", "b"], truncated: false });
    const cut = tailLines(Buffer.from("rtial line\nwhole\n"), true, "stderr", "logs/x.err");
    expect(cut).toMatchObject({ lines: ["whole"], truncated: true });
    const dirty = tailLines(Buffer.from("\u001b[31mred\u001b[0m \u0007bell\u0000nul\ttab\n"), false, "stdout", "l");
    expect(dirty.lines).toEqual(["red \uFFFDbell\uFFFDnul\ttab"]);
    const long = tailLines(Buffer.from("x".repeat(LOG_LINE_MAX_CHARS + 5)), false, "stdout", "l");
    expect(long.lines[0]).toBe(`${"x".repeat(LOG_LINE_MAX_CHARS)}… (5 more characters)`);
  });
});

describe("images", () => {
  const png = solidPng(4, 4, [255, 0, 255]);

  it("declared image outputs that existed, once each, in tree order", () => {
    expect(imageTargets(plan, input().result)).toEqual([
      { key: "shop.prep", path: "out/a.png" },
      { key: "shop.prep", path: "out/b.svg" },
      { key: "shop.prep", path: "../escape.png" },
      { key: "shop.prep", path: "/etc/passwd.png" },
    ]);
  });

  it("embeds raster images as data: URIs by their signature; refuses SVG, paths outside the work directory and non-images", () => {
    const images = new Map<string, FetchedImage>([
      ["out/a.png", { bytes: png }],
      ["out/b.svg", { bytes: Buffer.from("<svg onload='alert(1)'/>") }],
      ["../escape.png", { bytes: png }],
    ]);
    const m = buildReportModel(input({ images }));
    const byPath = new Map(m.images.map((i) => [i.path, i]));
    expect(byPath.get("out/a.png")).toMatchObject({ mime: "image/png", bytes: png.length, note: null, dataUri: `data:image/png;base64,${png.toString("base64")}` });
    expect(byPath.get("out/b.svg")).toMatchObject({ dataUri: null, note: expect.stringMatching(/SVG.*scripts/) });
    expect(byPath.get("../escape.png")).toMatchObject({ dataUri: null, note: expect.stringMatching(/outside/) });
    expect(byPath.get("/etc/passwd.png")).toMatchObject({ dataUri: null, note: expect.stringMatching(/outside/) });

    const fake = buildReportModel(input({ images: new Map([["out/a.png", { bytes: Buffer.from("<html>not a png</html>") }]]) }));
    expect(fake.images[0]).toMatchObject({ dataUri: null, note: expect.stringMatching(/not a PNG, JPEG, GIF or WebP/) });
  });

  it("caps each image and all of them together; what is over becomes a note", () => {
    const big = Buffer.concat([png, Buffer.alloc(IMAGE_MAX_BYTES)]);
    const files = Array.from({ length: 12 }, (_, i) => `out/${i}.png`);
    const s = steps();
    (s["shop.prep"] as CompletedStateJson).outputs = { files: ["out/big.png", ...files] };
    const each = Buffer.concat([png, Buffer.alloc(IMAGE_MAX_BYTES - png.length - 10)]);
    const images = new Map<string, FetchedImage>([["out/big.png", { bytes: big }], ...files.map((f): [string, FetchedImage] => [f, { bytes: each }])]);
    const m = buildReportModel(input({ result: result({}, s), images }));
    expect(m.images[0]).toMatchObject({ path: "out/big.png", dataUri: null, note: expect.stringMatching(/over the 5\.0 MiB limit per image/) });
    const embedded = m.images.filter((i) => i.dataUri !== null);
    expect(embedded).toHaveLength(Math.floor(IMAGES_TOTAL_MAX_BYTES / each.length));
    expect(embedded.reduce((n, i) => n + (i.bytes ?? 0), 0)).toBeLessThanOrEqual(IMAGES_TOTAL_MAX_BYTES);
    expect(m.images.at(-1)).toMatchObject({ dataUri: null, note: expect.stringMatching(/already holds .* of images/) });
  });

  it("signatures and output paths", () => {
    expect(imageMime(png)).toBe("image/png");
    expect(imageMime(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe("image/jpeg");
    expect(imageMime(Buffer.from("GIF89a..."))).toBe("image/gif");
    expect(imageMime(Buffer.from("RIFF\0\0\0\0WEBPVP8 "))).toBe("image/webp");
    expect(imageMime(Buffer.from("<svg/>"))).toBeNull();
    expect(safeOutputPath("./out//a.png")).toBe("out/a.png");
    for (const bad of ["", "/abs.png", "~/x.png", "a/../../b.png", "..", "a\\b.png", "a\nb.png"]) expect(safeOutputPath(bad), bad).toBeNull();
  });

  it("offline: images and logs are not fetched and the page says so", () => {
    const m = buildReportModel(input({ notFetched: "Log tails and images were not fetched (--offline)." }));
    expect(m.images[0]).toMatchObject({ path: "out/a.png", dataUri: null, note: "Log tails and images were not fetched (--offline)." });
    expect(m.notes).toContain("Log tails and images were not fetched (--offline).");
  });
});

describe("the header", () => {
  it("outcome, exit code and the run's facts", () => {
    const m = buildReportModel(input({ run: { ...RUN, partial: "1 job(s) had not ended" } }));
    expect(m).toMatchObject({ runId: RUN.runId, pipeline: "shop", cluster: "testcluster", kind: "cluster", success: false, failure: "STEP_FAILED", exitCode: 4, phase: "collected" });
    expect(m.notes[0]).toBe("This result is partial: 1 job(s) had not ended.");
    const ok = buildReportModel(input({ result: result({ success: true }, { "shop.prep": state() }) }));
    expect(ok).toMatchObject({ success: true, exitCode: 0, errors: [] });
    const missing = buildReportModel(input({ result: result({ success: false, failure: "MISSING_REQUIREMENT", error: "x" }, {}) }));
    expect(missing.exitCode).toBe(1);
  });
});
