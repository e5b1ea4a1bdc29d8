/**
 * `JSON.stringify(value, null, indent)` produced in pieces, byte for byte
 * the same text, so a merged result of a million items is written without
 * building one string over V8's string limit (about 512 MiB) and without a
 * copy of every step state (a CompletedState's step_states are serialized one
 * by one instead of through its toJSON()).
 */
import { CompletedState } from "./completed-state.js";

/** Objects and arrays with more entries than this are written entry by entry. */
const SMALL_ENTRIES = 64;
/** Pieces are handed out in strings of about this many characters. */
const PIECE_CHARS = 1 << 20;

function isBig(value: unknown): boolean {
  if (value instanceof CompletedState) return value.step_states !== undefined;
  if (Array.isArray(value)) return value.length > SMALL_ENTRIES;
  if (value === null || typeof value !== "object" || typeof (value as { toJSON?: unknown }).toJSON === "function") return false;
  let n = 0;
  for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key) && ++n > SMALL_ENTRIES) return true;
  return false;
}

/** A CompletedState as its toJSON() shows it, with step_states left as they are (serialized entry by entry). */
function shallowState(state: CompletedState): Record<string, unknown> {
  const json: Record<string, unknown> = {
    success: state.success,
    timestamp: state.timestamp,
    duration_s: state.duration_s,
    provides: state.provides,
    outputs: state.outputs,
    error: state.error,
    meta: state.meta,
    signature: state.signature,
    failure: state.failure,
  };
  if (state.step_states !== undefined) json.step_states = state.step_states;
  return json;
}

const omitted = (v: unknown): boolean => v === undefined || typeof v === "function" || typeof v === "symbol";

function* pieces(value: unknown, indent: string, level: string): Generator<string> {
  if (!isBig(value)) {
    const text = JSON.stringify(value, null, indent);
    yield text === undefined ? "null" : level === "" ? text : text.replaceAll("\n", `\n${level}`);
    return;
  }
  const inner = level + indent;
  const open = indent === "" ? "" : `\n${inner}`;
  const sep = indent === "" ? ":" : ": ";
  if (Array.isArray(value)) {
    yield "[";
    for (let i = 0; i < value.length; i++) {
      yield i === 0 ? open : `,${open}`;
      const v: unknown = value[i];
      if (omitted(v)) yield "null";
      else yield* pieces(v, indent, inner);
    }
    yield indent === "" ? "]" : `\n${level}]`;
    return;
  }
  const object = value instanceof CompletedState ? shallowState(value) : (value as Record<string, unknown>);
  let first = true;
  yield "{";
  for (const key of Object.keys(object)) {
    const v = object[key];
    if (omitted(v)) continue;
    // eslint-disable-next-line no-restricted-syntax -- JSON text being written (a key), not a message
    yield `${first ? "" : ","}${open}${JSON.stringify(key)}${sep}`;
    first = false;
    yield* pieces(v, indent, inner);
  }
  yield first ? "}" : indent === "" ? "}" : `\n${level}}`;
}

/**
 * The text of `JSON.stringify(value, null, indent)` in strings of about
 * 1 MiB (the last one shorter), plus nothing else: no trailing newline.
 */
export function* jsonChunks(value: unknown, indent = 2): Generator<string> {
  let buffer: string[] = [];
  let size = 0;
  for (const piece of pieces(value, " ".repeat(indent), "")) {
    buffer.push(piece);
    size += piece.length;
    if (size >= PIECE_CHARS) {
      yield buffer.join("");
      buffer = [];
      size = 0;
    }
  }
  if (buffer.length > 0) yield buffer.join("");
}

/** Writes `value` as indented JSON and a newline to a stream (stdout), waiting whenever the stream is full. */
export async function writeJsonTo(stream: NodeJS.WritableStream, value: unknown, indent = 2): Promise<void> {
  for (const chunk of jsonChunks(value, indent)) {
    if (!stream.write(chunk)) await new Promise<void>((resolve) => stream.once("drain", resolve));
  }
  if (!stream.write("\n")) await new Promise<void>((resolve) => stream.once("drain", resolve));
}
