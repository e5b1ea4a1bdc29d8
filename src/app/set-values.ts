import { contextKeyProblem } from "../spec/context-keys.js";

/** Parses repeated `--set key=value` options; the value is taken literally (it may contain '=' and anything else). */
export function parseSetValues(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--set ${JSON.stringify(pair)}: expected key=value`);
    const key = pair.slice(0, eq);
    const problem = contextKeyProblem(key);
    if (problem) throw new Error(`--set ${key}: ${problem}`);
    const value = pair.slice(eq + 1);
    if (value.includes("\0")) throw new Error(`--set ${key}: the value contains a NUL byte`);
    out[key] = value;
  }
  return out;
}
