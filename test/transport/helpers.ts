// Shared helpers for the transport tests: temp directories and running real local programs.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a program synchronously (no shell), feeding `input` to stdin. */
export function run(file: string, args: readonly string[], options: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): RunResult {
  const result = spawnSync(file, args, { input: options.input, cwd: options.cwd, env: options.env, maxBuffer: 512 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr.toString("utf8") };
}

/** Like run, but throws unless the program exits 0; returns stdout as text. */
export function runOk(file: string, args: readonly string[], options: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = run(file, args, options);
  if (result.code !== 0) throw new Error(`${file} ${args.join(" ")} exited ${String(result.code)}: ${result.stderr}`);
  return result.stdout.toString("utf8");
}

/** A fresh temp directory and a function that removes it. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `hpcpipe-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Strings that break naive command building. */
export const HOSTILE_WORDS: readonly string[] = [
  "",
  " ",
  "plain",
  "two words",
  "$(touch MARKER)",
  "`touch MARKER`",
  "'; touch MARKER; echo '",
  '"; touch MARKER; echo "',
  "it's",
  "''",
  "\\",
  "\\'",
  "a\nb\n",
  "; touch MARKER",
  "&& touch MARKER",
  "| touch MARKER",
  "> MARKER",
  "$HOME",
  "${HOME}",
  "$((1+1))",
  "!!",
  "~",
  "*",
  "?",
  "[a-z]",
  "-n",
  "--",
  "#comment",
  "tab\there",
  "\r\n",
  "ünïcødé ✓ 日本語 🚀",
  "\u202e reversed",
  "x".repeat(10_000),
];
