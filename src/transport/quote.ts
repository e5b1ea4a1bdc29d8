/**
 * POSIX shell quoting for remote commands. Every remote command is built
 * from an argv (or from a `sh` template whose interpolations are quoted):
 * nothing is ever spliced into a command unquoted.
 */

import { splitPathVariable } from "../shell/path-variable.js";
import { SAFE_WORD, shQuote, ShellQuoteError } from "../shell/quote.js";
import { preview } from "../core/preview.js";

export { SAFE_WORD, shQuote, ShellQuoteError } from "../shell/quote.js";


/**
 * A path on the remote host. A leading `$HOME` or `$SCRATCH` (alone or
 * followed by `/`) is expanded by the remote shell, and refused there when the
 * variable is unset; every other character is literal.
 */
export class RemotePath {
  private constructor(readonly path: string) {}

  static of(path: string): RemotePath {
    if (path === "") throw new ShellQuoteError("a remote path must not be empty");
    if (path.includes("\0")) throw new ShellQuoteError("a remote path must not contain NUL");
    return new RemotePath(path);
  }

  /** The path as one shell word. */
  toShell(): string {
    // The one rule for a leading $HOME / $SCRATCH (src/shell/path-variable.ts).
    const { variable, rest } = splitPathVariable(this.path);
    if (variable === null) return shQuote(this.path);
    const expanded = `"\${${variable}:?${variable} is not set on the remote host}"`;
    return rest === "" ? expanded : `${expanded}${shQuote(rest)}`;
  }

  toString(): string {
    return this.path;
  }
}

/** Shorthand for `RemotePath.of`. */
export function remotePath(path: string): RemotePath {
  return RemotePath.of(path);
}

/**
 * A relative glob the remote shell expands: only `*` and `?` are special
 * (they do not cross `/`), every other character is literal.
 */
export class RemoteGlob {
  private constructor(readonly pattern: string) {}

  static of(pattern: string): RemoteGlob {
    const problem = globProblem(pattern);
    if (problem) throw new ShellQuoteError(`invalid file pattern ${preview(pattern)}: ${problem}`);
    return new RemoteGlob(pattern);
  }

  toShell(): string {
    return this.pattern
      .split(/([*?]+)/)
      .filter((part) => part !== "")
      .map((part) => (/^[*?]+$/.test(part) ? part : shQuote(part)))
      .join("");
  }

  toString(): string {
    return this.pattern;
  }
}

function globProblem(pattern: string): string | null {
  if (pattern === "") return "empty";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(pattern)) return "contains a control character";
  if (pattern.startsWith("/")) return "must be relative to the remote directory";
  const segments = pattern.split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) return "empty, '.' or '..' path segment";
  return null;
}

/** One argv element: a literal string, a remote path whose `$HOME`/`$SCRATCH` prefix is expanded, or a glob. */
export type ShellWord = string | RemotePath | RemoteGlob;

function wordToShell(word: ShellWord): string {
  return typeof word === "string" ? shQuote(word) : word.toShell();
}

function wordText(word: ShellWord): string {
  return typeof word === "string" ? word : word.toString();
}

export interface CommandOptions {
  /** Wrap as `bash -lc <command>` so login profiles (module systems) are read first. */
  loginShell?: boolean;
}

/** Builds the command line a remote shell runs from an argv, each element one quoted word. */
export function argvToCommand(argv: readonly ShellWord[], options: CommandOptions = {}): string {
  if (argv.length === 0) throw new ShellQuoteError("cannot run an empty argv");
  const command = argv.map(wordToShell).join(" ");
  return options.loginShell ? `bash -lc ${shQuote(command)}` : command;
}

/**
 * Tagged template for fixed shell snippets written in this module: the
 * literal text is code, every interpolated value is quoted as one word (an
 * array as several words).
 */
export function sh(strings: TemplateStringsArray, ...values: (ShellWord | readonly ShellWord[])[]): string {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += Array.isArray(value) ? (value as readonly ShellWord[]).map(wordToShell).join(" ") : wordToShell(value as ShellWord);
    out += strings[i + 1] ?? "";
  });
  return out;
}

/** A short printable form of an argv for error messages. */
export function describeArgv(argv: readonly ShellWord[], max = 200): string {
  const text = argv.map(wordText).map((w) => (SAFE_WORD.test(w) ? w : preview(w, max))).join(" ");
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
