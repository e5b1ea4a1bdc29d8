// Remote commands are built from argv with POSIX single-quote quoting: these tests run the
// built command lines through the real bash and dash and check every word arrives as exact bytes.
import { existsSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { argvToCommand, describeArgv, remotePath, RemoteGlob, sh, shQuote, ShellQuoteError } from "../../src/transport/quote.js";
import { HOSTILE_WORDS, run, runOk, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let marker: string;

beforeEach(() => {
  ({ dir, cleanup } = tempDir("quote"));
  marker = path.join(dir, "pwned");
});
afterEach(() => cleanup());

const words = (): string[] => [...HOSTILE_WORDS.map((w) => w.replaceAll("MARKER", marker)), "\u0001\u007f"];

/** Runs the built command with `shell -c` and splits printf's NUL-terminated output. */
function echoThrough(shell: string, argv: string[], options: { loginShell?: boolean } = {}): string[] {
  const command = argvToCommand(["printf", "%s\\0", ...argv], options);
  const out = run(shell, ["-c", command], { cwd: dir });
  expect(out.stderr).toBe("");
  expect(out.code).toBe(0);
  return out.stdout.toString("utf8").split("\0").slice(0, -1);
}

describe("shQuote", () => {
  it("leaves safe words bare and single-quotes everything else", () => {
    expect(shQuote("abc-1.2_x/y:z=w@h%p+q,r")).toBe("abc-1.2_x/y:z=w@h%p+q,r");
    expect(shQuote("")).toBe("''");
    expect(shQuote("a b")).toBe("'a b'");
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
  });

  it("refuses a NUL byte, which no shell word can carry", () => {
    expect(() => shQuote("a\0b")).toThrow(ShellQuoteError);
  });
});

describe("argvToCommand", () => {
  for (const shell of ["bash", "sh"]) {
    it(`delivers hostile words to ${shell} as exact bytes and executes none of them`, () => {
      expect(echoThrough(shell, words())).toEqual(words());
      expect(existsSync(marker)).toBe(false);
    });
  }

  it("keeps the words exact through the login-shell wrapper `bash -lc`", () => {
    const command = argvToCommand(["printf", "%s\\0", "x"], { loginShell: true });
    expect(command).toBe(`bash -lc 'printf '\\''%s\\0'\\'' x'`);
    expect(echoThrough("bash", words(), { loginShell: true })).toEqual(words());
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses an empty argv", () => {
    expect(() => argvToCommand([])).toThrow(ShellQuoteError);
  });
});

describe("remotePath", () => {
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/home/someone", ...extra });

  it("expands a leading $HOME/ or $SCRATCH/ on the remote side and keeps the rest literal", () => {
    const argv = ["printf", "%s\\0", remotePath("$HOME/runs/a b/$(touch x)"), remotePath("$SCRATCH/it's"), remotePath("$HOME")];
    const out = runOk("bash", ["-c", argvToCommand(argv)], { env: env({ SCRATCH: "/scratch/me" }) });
    expect(out.split("\0").slice(0, -1)).toEqual(["/home/someone/runs/a b/$(touch x)", "/scratch/me/it's", "/home/someone"]);
  });

  it("quotes every other $ form literally ($HOMEX, ${HOME}, $HOME in the middle, $USER)", () => {
    const paths = ["$HOMEX/a", "${HOME}/a", "a/$HOME/b", "$USER/x", "~/x"];
    const out = runOk("bash", ["-c", argvToCommand(["printf", "%s\\0", ...paths.map(remotePath)])], { env: env() });
    expect(out.split("\0").slice(0, -1)).toEqual(paths);
  });

  it("refuses to run the command when $SCRATCH is unset instead of using a path under /", () => {
    const target = path.join(dir, "created");
    const result = run("bash", ["-c", argvToCommand(["touch", remotePath(`$SCRATCH${target}`)])], { env: env() });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("SCRATCH is not set on the remote host");
    expect(existsSync(target)).toBe(false);
  });
});

describe("RemoteGlob", () => {
  it("expands only * and ? on the remote side; quotes, spaces and $(...) in the pattern stay literal", () => {
    for (const name of ["a b.json", "it's.json", "$(touch x).json", "c.txt", "q1.json"]) runOk("touch", [path.join(dir, name)]);
    const list = (pattern: string): string[] =>
      runOk("bash", ["-c", `cd ${shQuote(dir)} && printf '%s\\0' ${RemoteGlob.of(pattern).toShell()}`]).split("\0").slice(0, -1).sort();
    expect(list("*.json")).toEqual(["$(touch x).json", "a b.json", "it's.json", "q1.json"]);
    expect(list("it's*")).toEqual(["it's.json"]);
    expect(list("q?.json")).toEqual(["q1.json"]);
    expect(list("$(touch x)*")).toEqual(["$(touch x).json"]);
    expect(existsSync(path.join(dir, "x"))).toBe(false);
  });

  it("refuses absolute patterns, '..', empty segments and control characters", () => {
    for (const bad of ["", "/etc/*", "../*", "a/../b", "a//b", "./a", "a\nb"]) expect(() => RemoteGlob.of(bad), bad).toThrow(ShellQuoteError);
  });
});

describe("sh template", () => {
  it("quotes every interpolated value (arrays as several words) and keeps the literal text as code", () => {
    const name = "a b; touch x";
    const command = sh`printf '%s\\0' ${name} ${["c d", "e"]} ${remotePath("$HOME/f")}`;
    const out = runOk("bash", ["-c", command], { cwd: dir, env: { PATH: process.env.PATH ?? "", HOME: "/h" } });
    expect(out.split("\0").slice(0, -1)).toEqual(["a b; touch x", "c d", "e", "/h/f"]);
    expect(existsSync(path.join(dir, "x"))).toBe(false);
  });

  it("describes an argv for messages, JSON-quoting unsafe words and cutting long ones", () => {
    expect(describeArgv(["ls", "a b"])).toBe('ls "a b"');
    expect(describeArgv(["x".repeat(300)]).length).toBeLessThanOrEqual(203);
  });
});
