/**
 * `hpcpipe report` of a REAL local run (a small spec: a step that writes a PNG, a parallel group
 * with a failing step whose log holds hostile text, a step that never runs), opened in headless
 * Chromium (Debian's `chromium`): the parsed DOM has the tree, the timeline bars, the error with
 * its log tail as text and the embedded image; the screenshot has the page's size, is not blank,
 * and shows the badge colours and the image's own pixels.
 *
 * Chromium is installed by scripts/install-test-tools.sh (vitest global setup). Without it these
 * tests skip with a loud notice; under CI=true that is a failure.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "../cli/helpers.js";
import { countColour, decodePng, demoSpec, solidPng } from "./helpers.js";
import type { DecodedPng } from "./helpers.js";

const ci = process.env.CI?.toLowerCase();
const inCI = ci === "true" || ci === "1";
const chromiumVersion = spawnSync("chromium", ["--version"], { encoding: "utf8", timeout: 60_000 });
const available = chromiumVersion.status === 0;
if (!available && !inCI) {
  console.warn(
    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n" +
      "!! chromium is not installed: the HTML run report is NOT checked in a browser.\n" +
      "!! Install with scripts/install-test-tools.sh (apt-get install -y --no-install-recommends\n" +
      "!! chromium). Under CI=true this fails.\n" +
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
  );
}

const WIDTH = 1200;
const HEIGHT = 3000;
const MAGENTA: [number, number, number] = [255, 0, 255];
const IMAGE_SIDE = 48;
/** The badge colours of the page's stylesheet (ok, failed, not run). */
const OK: [number, number, number] = [0x1a, 0x7f, 0x37];
const FAILED: [number, number, number] = [0xcf, 0x22, 0x2e];
const NOT_RUN: [number, number, number] = [0x9a, 0x67, 0x00];
const HOSTILE_ERR = `<script>document.title='pwned'</script>"><img src=x onerror=alert(1)>`;

const SPEC = demoSpec("report_demo", solidPng(IMAGE_SIDE, IMAGE_SIDE, MAGENTA), HOSTILE_ERR, 'defaults: { cpus: 1, time: "5:00" }\n');

function chromium(args: string[], profile: string): { stdout: string; stderr: string } {
  const r = spawnSync(
    "chromium",
    ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", `--user-data-dir=${profile}`, ...args],
    { encoding: "utf8", timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`chromium ${args.join(" ")} failed (${String(r.status ?? r.signal)}): ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

describe("chromium is installed (required under CI)", () => {
  it("`chromium --version` works", () => {
    if (inCI) expect(chromiumVersion.status, `chromium: ${chromiumVersion.stderr}; install it with scripts/install-test-tools.sh`).toBe(0);
  });
});

describe.skipIf(!available)("a report of a real local run, in headless Chromium", { timeout: 240_000 }, () => {
  let dir: string;
  let report: string;
  let dom: string;
  let shot: DecodedPng;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-report-chromium-"));
    const spec = path.join(dir, "spec.yaml");
    writeFileSync(spec, SPEC);
    const run = await cli("run", spec, "--runs-dir", path.join(dir, "runs"), "-q");
    expect(run.code, run.stderr).toBe(4);
    const runDir = /run directory (\S+) \(/.exec(run.stderr)?.[1];
    if (runDir === undefined) throw new Error(`no run directory in: ${run.stderr}`);
    report = path.join(dir, "out", "report.html");
    mkdirSync(path.dirname(report));
    const made = await cli("report", runDir, "--out", report);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toBe(`${report}\n`);
    expect(made.stderr).toMatch(/report of run \S+ \(STEP_FAILED, exit 4\): 2 ok, 1 failed, 1 not run; 2 error\(s\), 1 image\(s\)/);

    const url = pathToFileURL(report).href;
    dom = chromium(["--dump-dom", url], path.join(dir, "profile-dom")).stdout;
    const png = path.join(dir, "shot.png");
    chromium([`--screenshot=${png}`, `--window-size=${WIDTH},${HEIGHT}`, url], path.join(dir, "profile-shot"));
    expect(existsSync(png)).toBe(true);
    shot = decodePng(readFileSync(png));
    if (process.env.HPCPIPE_KEEP_REPORT_SHOT) writeFileSync(process.env.HPCPIPE_KEEP_REPORT_SHOT, readFileSync(png));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the parsed DOM has the tree (every node with its outcome badge), the timeline bars, the error block and the image", () => {
    const count = (re: RegExp): number => (dom.match(re) ?? []).length;
    // report_demo, draw, checks, good, bad, after
    expect(count(/<li class="node /g)).toBe(6);
    expect(count(/<span class="badge ok">ok<\/span>/g)).toBe(2);
    expect(count(/<span class="badge not_run">not run<\/span>/g)).toBe(2); // the tree and the error
    // One bar per step that ran (draw, good, bad); the group's two tasks waited for draw.
    expect(count(/<span class="tl-run (ok|failed)" style="left:[\d.]+%;width:[\d.]+%"><\/span>/g)).toBe(3);
    expect(count(/<span class="tl-wait" /g)).toBeGreaterThanOrEqual(2);
    expect(count(/<article class="error" data-key="report_demo\.checks\.bad">/g)).toBe(1);
    expect(dom).toContain("progress line 50");
    expect(dom).toContain("progress line 11");
    expect(dom).not.toContain("progress line 10\n");
    expect(count(/<img /g)).toBe(1);
    expect(dom).toMatch(/<img src="data:image\/png;base64,[A-Za-z0-9+/=]+" alt="out\/dot\.png">/);
  });

  it("a local run is also found by its id (--runs-dir), with the same page", async () => {
    const runId = /run (\d{8}-\d{6}-[0-9a-f]{6})/.exec(dom)?.[1];
    if (runId === undefined) throw new Error("no run id in the page");
    const again = path.join(dir, "out", "again.html");
    const made = await cli("report", runId, "--runs-dir", path.join(dir, "runs"), "--out", again);
    expect(made.code, made.stderr).toBe(0);
    const strip = (text: string): string => text.replace(/at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\.<\/footer>/, "");
    expect(strip(readFileSync(again, "utf8"))).toBe(strip(readFileSync(report, "utf8")));
  });

  it("hostile log text stayed text: no element came from it, and it did not run", () => {
    expect(dom).toContain("&lt;script&gt;document.title='pwned'&lt;/script&gt;\"&gt;&lt;img src=x onerror=alert(1)&gt;");
    expect(dom.toLowerCase()).not.toContain("<script");
    expect(dom).not.toContain("<title>pwned</title>");
    expect(dom).not.toMatch(/<img src="x"/);
  });

  it("the screenshot has the window's size and is not blank", () => {
    expect([shot.width, shot.height]).toEqual([WIDTH, HEIGHT]);
    const white = countColour(shot, [255, 255, 255], 2);
    const pixels = shot.width * shot.height;
    expect(white / pixels).toBeLessThan(0.97);
    expect(white / pixels).toBeGreaterThan(0.3);
  });

  it("the screenshot shows the badge colours and the embedded image's own pixels", () => {
    expect(countColour(shot, OK, 3)).toBeGreaterThan(500);
    expect(countColour(shot, FAILED, 3)).toBeGreaterThan(500);
    expect(countColour(shot, NOT_RUN, 3)).toBeGreaterThan(300);
    // The 48x48 magenta PNG, drawn at its own size.
    const magenta = countColour(shot, MAGENTA, 2);
    expect(magenta).toBeGreaterThanOrEqual(IMAGE_SIDE * IMAGE_SIDE * 0.95);
    expect(magenta).toBeLessThanOrEqual(IMAGE_SIDE * IMAGE_SIDE * 1.05);
  });
});
