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
