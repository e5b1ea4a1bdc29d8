import { vi } from "vitest";
import type { CliOptions } from "../../cli/connect-options.js";
import { runCli } from "../../cli/run-cli.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in this process with its output captured (commands are thin, so this exercises the real code paths). */
export function cli(...args: string[]): Promise<CliResult> {
  return cliWith({}, ...args);
}

/** Like `cli`, with what main.ts would pass in (a passphrase prompt on a terminal). */
export async function cliWith(options: CliOptions, ...args: string[]): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  try {
    const code = await runCli(["node", "hpcpipe", ...args], options);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
