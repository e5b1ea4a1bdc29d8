import { preview } from "../core/preview.js";
import { CONTEXT_KEY_PATTERN, contextKeyProblem } from "../spec/context-keys.js";

/** Parses repeated `--set key=value` options; the value is taken literally (it may contain '=' and anything else). */
export function parseSetValues(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--set ${preview(pair)}: expected key=value`);
    const key = pair.slice(0, eq);
    // Named as typed only when it is a plain name: a hostile key is shown escaped and cut short.
    const shown = CONTEXT_KEY_PATTERN.test(key) ? key : preview(key);
    const problem = contextKeyProblem(key);
    if (problem) throw new Error(`--set ${shown}: ${problem}`);
    const value = pair.slice(eq + 1);
    if (value.includes("\0")) throw new Error(`--set ${shown}: the value contains a NUL byte`);
    out[key] = value;
  }
  return out;
}
