/**
 * The one way an error message shows a value it was given (a spec field, a
 * config value, a CLI argument, a state file, a line the cluster printed):
 * bounded, quoted, and with nothing that could act on a terminal or hide
 * text. The lint rule in eslint.config.js refuses `JSON.stringify` inside
 * message text, so new messages come through here.
 */

/** How many characters of a value a message shows unless told otherwise. */
export const PREVIEW_CHARS = 60;

// C0 and C1 controls and DEL; line and paragraph separators; the bidi, zero-width and BOM marks that reorder or hide text.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

const escapeUnsafe = (text: string): string => text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** The first `max` UTF-16 units of `text`, without leaving half of a surrogate pair at the end. */
function cut(text: string, max: number): string {
  const head = text.slice(0, max);
  const last = head.charCodeAt(head.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? head.slice(0, -1) : head;
}

/**
 * A short, printable preview of a value for an error message: a string as a
 * JSON string of at most `max` characters (then `...` inside the quotes),
 * anything else as its JSON text, cut the same way. Control, bidi and
 * separator characters come out as `\uXXXX`. For a short ordinary value
 * this is exactly `JSON.stringify(value)`.
 */
export function preview(value: unknown, max: number = PREVIEW_CHARS): string {
  if (typeof value === "string") return escapeUnsafe(JSON.stringify(value.length > max ? `${cut(value, max)}...` : value));
  let text: string;
  try {
    text = typeof value === "bigint" ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value); // a cycle, or an object without toString
  }
  return escapeUnsafe(text.length > max ? `${cut(text, max)}...` : text);
}

/** A failed parse's issue as a message shows it (structural, so the core needs no zod). */
export interface IssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  readonly keys?: readonly string[];
}

const PLAIN_SEGMENT = /^[A-Za-z0-9_-]{1,60}$/;

/** Text already written for people (an issue's message): bounded and escaped, not quoted. */
function printable(text: string, max: number): string {
  return escapeUnsafe(text.length > max ? `${cut(text, max)}...` : text);
}

/** A path into a parsed document, `jobs.j000.state`; a key that came from input is previewed (`outputs."\u001b"`). */
function issuePath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  return path.map((seg) => (typeof seg === "number" || (typeof seg === "string" && PLAIN_SEGMENT.test(seg)) ? String(seg) : preview(String(seg)))).join(".");
}

function issueMessage(issue: IssueLike): string {
  // zod's own message for unknown keys quotes them raw and whole: a hostile document's keys would reach the terminal.
  if (issue.code === "unrecognized_keys" && issue.keys) {
    const keys = issue.keys.slice(0, 5).map((k) => preview(k));
    const more = issue.keys.length > 5 ? ` and ${issue.keys.length - 5} more` : "";
    return `Unrecognized key${issue.keys.length > 1 ? "s" : ""}: ${keys.join(", ")}${more}`;
  }
  return printable(issue.message, 300);
}

/** The first `limit` issues of a failed parse as `path: message; ...` (then `; and N more`), each bounded and escaped. */
export function issuesText(issues: readonly IssueLike[], limit = 5): string {
  const shown = issues.slice(0, limit).map((issue) => `${issuePath(issue.path)}: ${issueMessage(issue)}`);
  return `${shown.join("; ")}${issues.length > limit ? `; and ${issues.length - limit} more` : ""}`;
}
