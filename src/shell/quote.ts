/**
 * POSIX single-quote quoting, shared by the job script renderer and the SSH
 * transport: one bash word per value, nothing ever spliced unquoted.
 */

/** Words made only of these characters mean the same to every POSIX shell unquoted. */
export const SAFE_WORD = /^[A-Za-z0-9_./:=@%+,-]+$/;

/** A value that cannot be carried in a shell word (NUL) or is not a string at all. */
export class ShellQuoteError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "ShellQuoteError";
  }
}

/** Quotes one word for a POSIX shell: bare when safe, else in single quotes with `'` written `'\''`. */
export function shQuote(word: string): string {
  if (typeof word !== "string") throw new ShellQuoteError(`cannot shell-quote a ${typeof word}`);
  if (word.includes("\0")) throw new ShellQuoteError("cannot pass a NUL byte in a shell word");
  if (word === "") return "''";
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
