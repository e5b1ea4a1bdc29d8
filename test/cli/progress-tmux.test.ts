/**
 * The live progress view read through a real terminal: the CLI (compiled, a real child process) runs
 * in a tmux session of a fixed size and the test reads the screen with `tmux capture-pane -p`, while
 * the run is held half-way by a gate file and after it ended. `hpcpipe run` on the local executor
 * (the view on stderr), and `status RUN --watch` of a run submitted in the background (on stdout).
 *
 * tmux is installed by scripts/install-test-tools.sh (vitest global setup). Without it these tests
 * skip with a loud notice; under CI=true they run (and fail without tmux).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli } from "../support/build-cli.js";

const ci = process.env.CI?.toLowerCase();
const inCI = ci === "true" || ci === "1";
const tmuxVersion = spawnSync("tmux", ["-V"], { encoding: "utf8", timeout: 30_000 });
const available = tmuxVersion.status === 0;
if (!available && !inCI) {
  console.warn(
    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n" +
      "!! tmux is not installed: the live progress view is NOT checked in a terminal.\n" +
      "!! Install with scripts/install-test-tools.sh (apt-get install -y --no-install-recommends\n" +
      "!! tmux). Under CI=true this fails.\n" +
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
  );
}

const WIDTH = 100;
const HEIGHT = 40;
const ITEMS = 8;
/** Items after this one wait for the gate file: the run holds with 3 done, 2 running, 3 pending. */
const BEFORE_GATE = 3;

let dir: string;
let main: string;
const socket = `hpcpipe-test-${process.pid}`;

function tmux(...args: string[]): string {
  const r = spawnSync("tmux", ["-L", socket, ...args], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`tmux ${args.join(" ")} failed (${String(r.status ?? r.signal)}): ${r.stderr}`);
  return r.stdout;
}

/** The screen of a session; with history, every line it scrolled off too. */
function screen(session: string, history = false): string {
  return tmux("capture-pane", "-p", "-t", session, ...(history ? ["-S", "-"] : []));
}

async function until(session: string, what: string, check: (text: string) => boolean, timeoutMs = 90_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = screen(session);
    if (check(text)) return text;
    if (Date.now() > end) throw new Error(`the screen never showed ${what}; it shows:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts `command` (a bash script) in a new session of WIDTH x HEIGHT; it prints EXIT:<status> when done. */
function startSession(name: string, command: string): void {
  const script = path.join(dir, `${name}.sh`);
  writeFileSync(script, `cd ${JSON.stringify(dir)}\nexport HPCPIPE_HOME=${JSON.stringify(path.join(dir, "home"))} LANG=C.UTF-8\n${command}\necho "EXIT:$?"\nsleep 600\n`);
  tmux("-u", "new-session", "-d", "-s", name, "-x", String(WIDTH), "-y", String(HEIGHT), `bash ${JSON.stringify(script)}`);
}

function spec(name: string, gate: string): string {
  writeFileSync(path.join(dir, `${name}-frames.txt`), Array.from({ length: ITEMS }, (_, i) => `${i + 1}`).join("\n") + "\n");
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      "defaults: { cpus: 1, mem: 100M, time: \"5:00\" }",
      "steps:",
      "  - step: setup",
      "    run: mkdir -p out/frames",
      "  - map: render",
      `    items_file: ${name}-frames.txt`,
      "    as: frame",
      "    throttle: 2",
      "    steps:",
      "      - step: draw",
      "        run: |",
      "          sleep 0.3",
      `          if [ "$frame" -gt ${BEFORE_GATE} ]; then while [ ! -e ${JSON.stringify(gate)} ]; do sleep 0.1; done; fi`,
      "          printf 'frame %s\\n' \"$frame\" > \"out/frames/frame_$frame.png\"",
      "        requires: [frame]",
      '        outputs: ["out/frames/frame_{item}.png"]',
      "  - step: count",
      "    run: ls out/frames | wc -l > out/count.txt",
      "",
    ].join("\n"),
  );
  return file;
}

/** What the screen shows while the run is held: a bar per row, the map's counts, an ETA from the items seen, the latest frame. */
function expectHalfWay(text: string, name: string): void {
  const lines = text.split("\n");
  for (const line of lines) expect(line.length).toBeLessThanOrEqual(WIDTH);
  const row = lines.find((l) => l.startsWith(`${name}.render [${ITEMS} tasks]`)) ?? "";
  expect(row, text).toMatch(/\[#+>+\.+\] {2}3\/8 {2}3 done, 0 failed, 2 running, 3 pending .*ETA \d+s/);
  expect(lines.find((l) => l.startsWith(`${name}.setup`)) ?? "", text).toMatch(/\[#+\] {2}1\/1 {2}1 done, 0 failed, 0 running, 0 pending {2}ended/);
  expect(lines.find((l) => l.startsWith(`${name}.count`)) ?? "", text).toMatch(/\[\.+\] {2}0\/1 .*ETA \?/);
  expect(text).toMatch(new RegExp(`latest image: \\S*/work/out/frames/frame_[1-${BEFORE_GATE}]\\.png`));
  expect(text).toContain("(Ctrl-C stops watching)");
}

/** The final frame: everything done, the latest frame, the result; the frame was redrawn in place (its headline once in the whole history). */
function expectFinal(history: string, name: string): void {
  const lines = history.split("\n");
  for (const line of lines) expect(line.length).toBeLessThanOrEqual(WIDTH);
  expect(lines.filter((l) => /^run \S+ \(.* on local\) \[/.test(l)), history).toHaveLength(1);
  expect(history).toMatch(/^run \S+ \(\S+ on local\) \[finished: ok\]: 10\/10 tasks ended, 0 failed$/m);
  expect(lines.find((l) => l.startsWith(`${name}.render [${ITEMS} tasks]`)) ?? "", history).toMatch(/\[#+\] {2}8\/8 {2}8 done, 0 failed, 0 running, 0 pending .*ended/);
  expect(lines.find((l) => l.startsWith(`${name}.count`)) ?? "", history).toMatch(/\[#+\] {2}1\/1 {2}1 done/);
  const image = /latest image: (\S+\/work\/out\/frames\/frame_\d\.png)/.exec(history)?.[1];
  expect(image, history).toBeDefined();
  // A local run's directory is shown relative to the current one (the session's, `dir`).
  expect(existsSync(path.resolve(dir, image as string)), image).toBe(true);
  expect(history).not.toContain("Ctrl-C stops watching");
}

describe("tmux is installed (required under CI)", () => {
  it("`tmux -V` works", () => {
    if (inCI) expect(tmuxVersion.status, `tmux: ${tmuxVersion.stderr}; install it with scripts/install-test-tools.sh`).toBe(0);
  });
});

describe.skipIf(!available && !inCI)("the live progress view in a real terminal (tmux capture-pane)", { timeout: 300_000 }, () => {
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-tmux-"));
    mkdirSync(path.join(dir, "home"));
    main = await buildCli(dir);
  }, 300_000);

  afterAll(() => {
    spawnSync("tmux", ["-L", socket, "kill-server"], { timeout: 30_000 });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("hpcpipe run: bars, counts, an ETA and the latest image while it runs; the final frame stays, everything done, then the result", async () => {
    const gate = path.join(dir, "gate-run");
    const file = spec("tmuxrun", gate);
    startSession("run", `node ${JSON.stringify(main)} run ${JSON.stringify(file)} --runs-dir runs`);
    const half = await until("run", "the run held half-way", (t) => /3 done, 0 failed, 2 running, 3 pending .*ETA \d/.test(t) && t.includes("latest image:"));
    expectHalfWay(half, "tmuxrun");
    writeFileSync(gate, "");
    await until("run", "the exit status", (t) => t.includes("EXIT:"));
    const history = screen("run", true);
    expectFinal(history, "tmuxrun");
    expect(history).toContain("result: ok, exit 0");
    expect(history).toContain("EXIT:0");
  });

  it("status RUN --watch of a run in the background: the same view on stdout, the final frame, then the steps' results", async () => {
    const gate = path.join(dir, "gate-status");
    const file = spec("tmuxstatus", gate);
    const submitted = spawnSync(process.execPath, [main, "submit", file, "--cluster", "local", "--runs-dir", "runs"], { cwd: dir, env: { ...process.env, HPCPIPE_HOME: path.join(dir, "home") }, encoding: "utf8", timeout: 120_000 });
    expect(submitted.status, submitted.stderr).toBe(0);
    const runId = /submitted run (\S+):/.exec(submitted.stdout)?.[1] ?? "";
    expect(runId).not.toBe("");
    startSession("status", `node ${JSON.stringify(main)} status ${runId} --watch`);
    const half = await until("status", "the run held half-way", (t) => /3 done, 0 failed, 2 running, 3 pending .*ETA \d/.test(t) && t.includes("latest image:"));
    expectHalfWay(half, "tmuxstatus");
    writeFileSync(gate, "");
    await until("status", "the exit status", (t) => t.includes("EXIT:"));
    const history = screen("status", true);
    expectFinal(history, "tmuxstatus");
    expect(history).toMatch(/^tmuxstatus\.render +ok/m);
    expect(history).toContain("EXIT:0");
  });
});
