// The pull script (src/store/pull.ts) run by real bash through a transport that runs the command line
// locally, exactly as the remote shell gets it (the SSH path: test/e2e/pull.test.ts). More files than
// one `stat`/`sha256sum` call takes (500), names a shell or sha256sum treats specially, files already
// here, and refusals, all in one pull: every file comes home byte for byte or is refused for its reason.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pullOutputs } from "../../src/store/pull.js";
import { argvToCommand } from "../../src/transport/index.js";
import type { ExecOptions, ExecResult, ShellWord, Transport } from "../../src/transport/index.js";

/** Runs the command line in a local bash, with the call's stdin and stdout sink. */
class LocalBashTransport implements Transport {
  roundTrips = 0;
  async exec(argv: readonly ShellWord[], opts?: ExecOptions): Promise<ExecResult> {
    this.roundTrips += 1;
    const sink = opts?.stdoutSink?.();
    return new Promise((resolve, reject) => {
      const child = spawn("bash", ["-c", argvToCommand(argv)], { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (sink ? sink.write(d) : (stdout += d.toString("utf8"))));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
      child.stdin.end(typeof opts?.stdin === "string" || Buffer.isBuffer(opts?.stdin) ? opts.stdin : "");
    });
  }
  async putFiles(): Promise<void> {
    throw new Error("not used");
  }
  async getFiles(): Promise<Map<string, Buffer | { error: string }>> {
    throw new Error("not used");
  }
  async close(): Promise<void> {}
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let root: string;
let runDir: string;
const many = Array.from({ length: 1203 }, (_, i) => `out/many/${Math.floor(i / 10)}/f${i}.bin`);
const odd = ["out/odd/with space.png", "out/odd/back\\slash.png", "out/odd/new\nline.png", "out/odd/-dash.png", "out/odd/ünïcödé €.png", "out/odd/quote'\"$(x).png"];

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), "hpcpipe-pull-script-"));
  runDir = path.join(root, "run dir 'q' $(x)");
  for (const [i, p] of [...many, ...odd].entries()) {
    mkdirSync(path.join(runDir, "work", path.dirname(p)), { recursive: true });
    writeFileSync(path.join(runDir, "work", p), `content of ${i}\n`.repeat((i % 7) + 1));
  }
  mkdirSync(path.join(root, "outside"));
  writeFileSync(path.join(root, "outside", "secret.png"), "secret");
  symlinkSync(path.join(root, "outside"), path.join(runDir, "work", "out", "away"));
  symlinkSync(path.join(runDir, "work", "out", "many", "0", "f0.bin"), path.join(runDir, "work", "out", "link.bin"));
  mkdirSync(path.join(runDir, "work", "out", "dir.bin"));
  writeFileSync(path.join(runDir, "work", "out", "big.bin"), Buffer.alloc(2000));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the pull script (real bash)", () => {
  it("1,209 files in one pull (three stat/sha256sum calls), odd names, a file already here skipped; links, directories, missing, outside and over-cap files refused", async () => {
    const to = path.join(root, "home");
    // One file is already here with the same bytes, one with other bytes.
    mkdirSync(path.join(to, "out/many/0"), { recursive: true });
    writeFileSync(path.join(to, "out/many/0/f0.bin"), readFileSync(path.join(runDir, "work", "out/many/0/f0.bin")));
    writeFileSync(path.join(to, "out/many/0/f1.bin"), "stale");
    const refusedPaths = ["out/away/secret.png", "out/link.bin", "out/dir.bin", "out/missing.bin", "out/big.bin"];
    const transport = new LocalBashTransport();
    const outcome = await pullOutputs(transport, runDir, [...many, ...odd, ...refusedPaths], { to, maxFileBytes: 1000 });
    expect(transport.roundTrips).toBe(1);
    expect(outcome.skipped).toEqual(["out/many/0/f0.bin"]);
    expect(outcome.fetched.length).toBe(many.length + odd.length - 1);
    for (const p of [...many, ...odd]) {
      expect(sha(readFileSync(path.join(to, p))), p).toBe(sha(readFileSync(path.join(runDir, "work", p))));
    }
    expect(Object.fromEntries(outcome.refused.map((r) => [r.path, r.reason]))).toEqual({
      "out/away/secret.png": "outside the run directory",
      "out/link.bin": "a symlink",
      "out/dir.bin": "not a regular file",
      "out/missing.bin": "missing",
      "out/big.bin": "over the size cap of one file (2000 bytes)",
    });
  });

  it("the size cap of one pull refuses what comes after the cap, in the order asked", async () => {
    const to = path.join(root, "home-capped");
    const wanted = many.slice(0, 20);
    const sizes = wanted.map((p) => readFileSync(path.join(runDir, "work", p)).length);
    const cap = sizes.slice(0, 10).reduce((a, b) => a + b, 0);
    const outcome = await pullOutputs(new LocalBashTransport(), runDir, wanted, { to, maxTotalBytes: cap });
    expect(outcome.fetched).toEqual(wanted.slice(0, 10));
    expect(outcome.refused.map((r) => r.reason)).toEqual(Array.from({ length: 10 }, () => "over the size cap of one pull"));
  });
});
