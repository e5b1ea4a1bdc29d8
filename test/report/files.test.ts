// Reading a report's files (src/report/files.ts): the local reader, and the one-round-trip remote
// script run by real bash (the transport's own quoting, without ssh; the SSH path is covered by
// test/e2e/report.test.ts). Both refuse links, non-files and paths leaving the run directory, and cap sizes.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { interpretAnswers, parseRemoteAnswers, readLocalFiles, readRemoteFiles, reportRequests } from "../../src/report/files.js";
import { readRemoteFiles as readFilesOnCluster } from "../../src/transport/index.js";
import type { FileAnswer, FileRequest, ReportLimits } from "../../src/report/files.js";
import { RunStateError } from "../../src/runs/index.js";
import { argvToCommand } from "../../src/transport/index.js";
import type { ExecOptions, ExecResult, ShellWord, Transport } from "../../src/transport/index.js";
import { solidPng } from "./helpers.js";

/** A Transport whose exec runs the command line in a local bash, exactly as the remote shell would get it. */
class LocalBashTransport implements Transport {
  roundTrips = 0;
  readonly commands: string[] = [];
  async exec(argv: readonly ShellWord[], _opts?: ExecOptions): Promise<ExecResult> {
    this.roundTrips += 1;
    const command = argvToCommand(argv);
    this.commands.push(command);
    return new Promise((resolve, reject) => {
      const child = spawn("bash", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
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

const LIMITS: ReportLimits = { tailBytes: 200, fileMaxBytes: 300, totalMaxBytes: 500 };
const png = solidPng(2, 2, [0, 128, 255]);
const lines = Array.from({ length: 100 }, (_, i) => `log line ${i + 1}`);

let root: string;
let runDir: string;
let outside: string;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), "hpcpipe-report-files-"));
  runDir = path.join(root, "run dir 'quoted' $(x)");
  outside = path.join(root, "outside");
  mkdirSync(path.join(runDir, "logs"), { recursive: true });
  mkdirSync(path.join(runDir, "work", "out", "dir.png"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, "secret.png"), png);
  writeFileSync(path.join(runDir, "logs", "p.a.out"), `${lines.join("\n")}\n`);
  writeFileSync(path.join(runDir, "logs", "p.a.err"), "short\n");
  writeFileSync(path.join(runDir, "work", "out", "one.png"), png);
  writeFileSync(path.join(runDir, "work", "out", "two.png"), Buffer.concat([png, Buffer.alloc(200)]));
  writeFileSync(path.join(runDir, "work", "out", "three.png"), Buffer.concat([png, Buffer.alloc(200)]));
  writeFileSync(path.join(runDir, "work", "out", "big.png"), Buffer.alloc(301));
  symlinkSync(path.join(runDir, "work", "out", "one.png"), path.join(runDir, "work", "out", "link.png"));
  symlinkSync(outside, path.join(runDir, "work", "away"));
  symlinkSync("/etc/hostname", path.join(runDir, "logs", "p.b.out"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const REQUESTS: FileRequest[] = [
  { kind: "tail", path: "logs/p.a.out" },
  { kind: "tail", path: "logs/p.a.err" },
  { kind: "tail", path: "logs/p.b.out" },
  { kind: "tail", path: "logs/p.c.out" },
  { kind: "file", path: "work/out/one.png" },
  { kind: "file", path: "work/out/link.png" },
  { kind: "file", path: "work/away/secret.png" },
  { kind: "file", path: "work/out/dir.png" },
  { kind: "file", path: "work/out/big.png" },
  { kind: "file", path: "work/out/two.png" },
  { kind: "file", path: "work/out/three.png" },
];

function summary(answers: ReadonlyMap<string, FileAnswer>): Record<string, string> {
  return Object.fromEntries([...answers].map(([p, a]) => [p, `${a.status}${a.size !== null ? ` ${a.size}` : ""}${a.data !== null ? ` ${a.data.length}B` : ""}`]));
}

const EXPECTED = {
  "logs/p.a.out": `ok ${`${lines.join("\n")}\n`.length} 200B`,
  "logs/p.a.err": "ok 6 6B",
  "logs/p.b.out": "symlink",
  "logs/p.c.out": "absent",
  "work/out/one.png": `ok ${png.length} ${png.length}B`,
  "work/out/link.png": "symlink",
  "work/away/secret.png": "outside",
  "work/out/dir.png": "notfile",
  "work/out/big.png": "toolarge 301",
  "work/out/two.png": `ok ${png.length + 200} ${png.length + 200}B`,
  "work/out/three.png": `overtotal ${png.length + 200}`,
};

describe("reading a local run directory", () => {
  it("reads log ends and images; refuses links, directories and escapes; caps each file and the total", async () => {
    const answers = await readLocalFiles(runDir, REQUESTS, LIMITS);
    expect(summary(answers)).toEqual(EXPECTED);
    expect(answers.get("logs/p.a.out")?.data?.toString()).toBe(`${lines.join("\n")}\n`.slice(-200));
    expect(answers.get("work/out/one.png")?.data?.equals(png)).toBe(true);
  });
});

describe("reading a cluster run directory in one round trip", () => {
  it("gives the same answers as the local reader, with one exec, whatever the path holds", async () => {
    const transport = new LocalBashTransport();
    const answers = await readRemoteFiles(transport, runDir, REQUESTS, { limits: LIMITS, runId: "r1" });
    expect(transport.roundTrips).toBe(1);
    expect(summary(answers)).toEqual(EXPECTED);
    const local = await readLocalFiles(runDir, REQUESTS, LIMITS);
    for (const [p, a] of answers) expect(a.data?.equals(local.get(p)?.data ?? Buffer.alloc(0)) ?? local.get(p)?.data === null, p).toBe(true);
  });

  it("a run directory that is gone is a clear error naming it", async () => {
    const missing = path.join(root, "gone");
    await expect(readRemoteFiles(new LocalBashTransport(), missing, REQUESTS, { runId: "r9" })).rejects.toThrow(
      new RegExp(`run r9: cannot read its run directory ${missing.replace(/[/$]/g, "\\$&")} on the cluster \\(exit 3\\)`),
    );
  });

  it("nothing to read costs no round trip", async () => {
    const transport = new LocalBashTransport();
    expect((await readRemoteFiles(transport, runDir, [])).size).toBe(0);
    expect(transport.roundTrips).toBe(0);
  });

  it("parses only what the script prints after its marker, and refuses anything else", () => {
    const req: FileRequest[] = [{ kind: "tail", path: "logs/x.out" }, { kind: "file", path: "work/y.png" }];
    const good = `Welcome to the login node\nm1\nhpcpipe-report ok 3\n${Buffer.from("abc").toString("base64")}\nhpcpipe-report absent\n`;
    expect(summary(parseRemoteAnswers(good, "m1", req))).toEqual({ "logs/x.out": "ok 3 3B", "work/y.png": "absent" });
    expect(() => parseRemoteAnswers("hpcpipe-report ok 3\nYWJj\n", "m1", req)).toThrow(/start marker is missing/);
    expect(() => parseRemoteAnswers("m1\nhpcpipe-report maybe\n", "m1", req, "r2")).toThrow(RunStateError);
    expect(() => parseRemoteAnswers("m1\nhpcpipe-report ok 3\n<script>\n", "m1", req)).toThrow(/not base64/);
    expect(() => parseRemoteAnswers("m1\nhpcpipe-report ok 3\nYWJj\n", "m1", req)).toThrow(/status line for "work\/y.png"/);
  });
});

describe("from answers to the model's inputs", () => {
  it("asks for both logs of each failed step and each safe image path; never a path built from a bad key", () => {
    expect(reportRequests(["p.a", "../x", "p.b"], ["out/one.png", "../../etc/passwd.png", "/abs.png"])).toEqual([
      { kind: "tail", path: "logs/p.a.out" },
      { kind: "tail", path: "logs/p.a.err" },
      { kind: "tail", path: "logs/p.b.out" },
      { kind: "tail", path: "logs/p.b.err" },
      { kind: "file", path: "work/out/one.png" },
    ]);
  });

  it("tails cut at the start drop their partial first line; refusals become readable reasons", async () => {
    const answers = await readLocalFiles(runDir, reportRequests(["p.a", "p.b"], ["out/one.png", "out/big.png", "away/secret.png"]), LIMITS);
    const { logs, images } = interpretAnswers(["p.a", "p.b"], ["out/one.png", "out/big.png", "away/secret.png"], answers);
    const [out, err] = logs.get("p.a") ?? [];
    expect(out?.truncated).toBe(true);
    expect(out?.lines.at(-1)).toBe("log line 100");
    expect(out?.lines[0]).toMatch(/^log line \d+$/);
    expect(err).toMatchObject({ lines: ["short"], truncated: false, missing: null });
    expect(logs.get("p.b")?.map((t) => t.missing)).toEqual(["a symbolic link: not read", "no such file"]);
    expect("bytes" in (images.get("out/one.png") ?? {})).toBe(true);
    expect(images.get("out/big.png")).toEqual({ note: expect.stringMatching(/over the 5 MiB limit per image/) });
    expect(images.get("away/secret.png")).toEqual({ note: "resolves outside the run directory: not read" });
  });
});

describe("the transport's one remote read, kind from (a followed log), in real bash", () => {
  it("reads from an offset at most the chunk size, nothing past the end, and from the start when the file shrank", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hp-from-"));
    try {
      writeFileSync(path.join(dir, "log"), "0123456789");
      const read = async (offset: number) =>
        (await readFilesOnCluster(new LocalBashTransport(), dir, [{ path: "log", kind: "from", offset }], { tailBytes: 4, fileMaxBytes: 0, totalMaxBytes: 0 })).get("log");
      expect(await read(3)).toMatchObject({ status: "ok", size: 10, restarted: false, data: Buffer.from("3456") });
      expect((await read(10))?.data?.length).toBe(0);
      writeFileSync(path.join(dir, "log"), "ab");
      expect(await read(8)).toMatchObject({ status: "ok", size: 2, restarted: true, data: Buffer.from("ab") });
      rmSync(path.join(dir, "log"));
      expect(await read(0)).toMatchObject({ status: "absent", data: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
