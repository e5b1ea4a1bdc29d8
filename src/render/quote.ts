/**
 * Quoting for the two languages a job script speaks: bash (POSIX single
 * quotes) and the `#SBATCH` line parser of sbatch, which has its own rules
 * (backslash escapes even inside quotes, an unquoted `#` starts a comment).
 */

import { preview } from "../core/preview.js";
import { splitPathVariable } from "../shell/path-variable.js";
import { SAFE_WORD, shQuote as shellQuote, ShellQuoteError } from "../shell/quote.js";

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Thrown when a value cannot be rendered safely; names the field it came from. */
export class RenderValueError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RenderValueError";
  }
}

// The one preview of a value in an error message lives in the core (src/core/preview.ts); re-exported for render's users.
export { preview };

/** Quotes a string as one bash word (see src/shell/quote.ts); a value that cannot be quoted is a RenderValueError. */
export function shQuote(value: string): string {
  try {
    return shellQuote(value);
  } catch (err) {
    if (!(err instanceof ShellQuoteError)) throw err;
    throw new RenderValueError(typeof value === "string" ? `cannot shell-quote a value containing NUL: ${preview(value)}` : err.message, { cause: err });
  }
}

/**
 * Quotes a path for bash, except for a leading `$HOME` or `$SCRATCH` (the one
 * rule, src/shell/path-variable.ts), left for the job's shell to expand.
 */
export function shQuotePath(value: string): string {
  const { variable, rest } = splitPathVariable(value);
  if (variable === null) return shQuote(value);
  return rest === "" ? `"\${${variable}}"` : `"\${${variable}}"${shQuote(rest)}`;
}

/** Whether a path starts with a variable the job's shell expands ($HOME or $SCRATCH). */
export function startsWithVariable(value: string): boolean {
  return splitPathVariable(value).variable !== null;
}

/**
 * Validates and quotes a value for an `#SBATCH` line. sbatch reads these
 * lines itself (not bash): no newline or control character can be carried,
 * and quoting follows its parser: double quotes with `\` and `"` escaped.
 */
export function sbatchLineValue(value: string | number, field: string): string {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new RenderValueError(`#SBATCH ${field}: not a finite number: ${value}`);
    return String(value);
  }
  if (typeof value !== "string") throw new RenderValueError(`#SBATCH ${field}: expected a string, got ${typeof value}`);
  if (value === "") throw new RenderValueError(`#SBATCH ${field}: must not be empty`);
  if (CONTROL.test(value)) {
    throw new RenderValueError(`#SBATCH ${field}: must not contain a newline or control character: ${preview(value)}`);
  }
  if (SAFE_WORD.test(value)) return value;
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
