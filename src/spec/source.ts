/**
 * Shared by the pipeline spec and the cluster configs: reading a YAML file,
 * locating a field in it, and turning zod issues into "path: expected ..."
 * problems that name the field a user has to fix.
 */
import { readFileSync, statSync } from "node:fs";
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Node as YamlNode } from "yaml";
import type { z } from "zod";
import { preview } from "../core/preview.js";

export type PathSegment = string | number;

export interface SourceLocation {
  line: number;
  column: number;
}

/** One thing wrong with an input file: where, and what was expected there. */
export interface FieldProblem {
  /** Dotted path of the field, e.g. `steps[2].steps[0].run`; empty for the whole document. */
  path: string;
  /** What was expected (or what is wrong), e.g. `expected a non-empty string`. */
  expected: string;
  location?: SourceLocation | undefined;
}

/** `file:line:col: path: expected` (each part only when known). */
export function formatProblem(file: string, problem: FieldProblem): string {
  const where = problem.location ? `${file}:${problem.location.line}:${problem.location.column}` : file;
  return problem.path === "" ? `${where}: ${problem.expected}` : `${where}: ${problem.path}: ${problem.expected}`;
}

/** The base of SpecError and ConfigError: names the file, the field and the expectation; lists every problem found. */
export class FieldError extends Error {
  readonly file: string;
  readonly path: string;
  readonly expected: string;
  readonly location: SourceLocation | undefined;
  readonly problems: readonly FieldProblem[];

  constructor(file: string, problems: readonly FieldProblem[]) {
    const list = problems.length > 0 ? problems : [{ path: "", expected: "invalid" }];
    super(list.map((p) => formatProblem(file, p)).join("\n"));
    const first = list[0] as FieldProblem;
    this.file = file;
    this.path = first.path;
    this.expected = first.expected;
    this.location = first.location;
    this.problems = list;
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `["steps", 2, "run"]` → `steps[2].run`; odd keys are quoted: `context["a-b"]`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = "";
  for (const seg of segments) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${preview(seg)}]`;
  }
  return out;
}

/** A parsed YAML file that can point at the line and column of a field. */
export interface YamlSource {
  file: string;
  value: unknown;
  locate(path: readonly PathSegment[]): SourceLocation | undefined;
}

/** Largest input file read; a spec or config beyond this is refused rather than parsed. */
export const MAX_SOURCE_BYTES = 16 * 1024 * 1024;

/**
 * Reads and parses a YAML file (YAML 1.2 core schema, unique keys). Problems
 * (unreadable file, syntax error with its line and column) are handed to `fail`,
 * which must return the error to throw.
 */
export function readYamlFile(file: string, fail: (problems: FieldProblem[]) => Error): YamlSource {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > MAX_SOURCE_BYTES) throw new Error(`file is larger than ${MAX_SOURCE_BYTES} bytes`);
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw fail([{ path: "", expected: `cannot read the file: ${errorText(err)}` }]);
  }
  return parseYamlText(text, file, fail);
}

export function parseYamlText(text: string, file: string, fail: (problems: FieldProblem[]) => Error): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, schema: "core" });
  if (doc.errors.length > 0) {
    throw fail(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: "", expected: `YAML syntax error: ${e.message.split("\n")[0] ?? e.code}`, location: { line: pos.line, column: pos.col } };
      }),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw fail([{ path: "", expected: `YAML error: ${errorText(err)}` }]);
  }
  const locate = (path: readonly PathSegment[]): SourceLocation | undefined => {
    let node: unknown = doc.contents;
    let found: YamlNode | undefined = isNode(node) ? node : undefined;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if (isNode(pair.key)) found = pair.key;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number") {
        const item: unknown = node.items[seg];
        if (!isNode(item)) break;
        found = item;
        node = item;
      } else {
        break;
      }
    }
    const start = found?.range?.[0];
    if (start === undefined) return undefined;
    const pos = lineCounter.linePos(start);
    return { line: pos.line, column: pos.col };
  };
  return { file, value, locate };
}

function isNode(value: unknown): value is YamlNode {
  return typeof value === "object" && value !== null && "range" in value;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "no such file" : err.message;
  }
  return String(err);
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "a mapping (key: value)",
  record: "a mapping (key: value)",
  null: "null",
};

/** How a YAML value looks to a user, for "got ..." messages. */
export function describeValue(value: unknown): string {
  if (value === null) return "null (an empty value)";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return `the string ${preview(value, 40)}`;
  if (typeof value === "number") return `the number ${value}`;
  if (typeof value === "boolean") return `${value}`;
  return typeof value;
}

type RawIssue = Parameters<z.core.$ZodErrorMap>[0];

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * A zod error map that phrases every issue as what was expected. Messages a
 * schema sets itself take precedence over it.
 */
export const expectationMap: z.core.$ZodErrorMap = (issue: RawIssue) => {
  switch (issue.code) {
    case "invalid_type": {
      const want = TYPE_NAMES[issue.expected] ?? issue.expected;
      return issue.input === undefined ? `expected ${want}, but it is missing` : `expected ${want}, got ${describeValue(issue.input)}`;
    }
    case "too_small": {
      const min = Number(issue.minimum);
      if (issue.origin === "string") return min <= 1 ? "expected a non-empty string" : `expected at least ${plural(min, "character")}`;
      if (issue.origin === "array") return min <= 1 ? "expected a non-empty list" : `expected a list of at least ${plural(min, "entry")}`;
      return `expected a number ${issue.inclusive === false ? ">" : ">="} ${min}`;
    }
    case "too_big": {
      const max = Number(issue.maximum);
      if (issue.origin === "string") return `expected at most ${plural(max, "character")}`;
      if (issue.origin === "array") return `expected a list of at most ${plural(max, "entry")}`;
      return `expected a number ${issue.inclusive === false ? "<" : "<="} ${max}`;
    }
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => preview(v)).join(", ")}`;
    case "unrecognized_keys": {
      const shape = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      const allowed = shape ? `; allowed keys: ${Object.keys(shape).join(", ")}` : "";
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => preview(k)).join(", ")}${allowed}`;
    }
    case "invalid_format":
      return issue.format === "regex" ? `expected text matching ${String(issue.pattern ?? "the required pattern")}` : `expected ${issue.format}`;
    case "invalid_key":
      return `invalid key: ${issue.issues.map((i) => i.message).join("; ") || "not allowed"}`;
    case "invalid_union":
      return "expected one of the allowed forms";
    default:
      return undefined;
  }
};

/**
 * Parses `value` with `schema`; on failure returns the problems with paths
 * prefixed by `prefix` and located in the source when one is given.
 */
export function parseWith<T extends z.ZodType>(
  schema: T,
  value: unknown,
  prefix: readonly PathSegment[],
  problems: FieldProblem[],
  source?: YamlSource,
): z.output<T> | undefined {
  const result = schema.safeParse(value, { error: expectationMap });
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    const segments: PathSegment[] = [...prefix, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys" && issue.keys[0] !== undefined) segments.push(issue.keys[0]);
    let expected = issue.message;
    if (issue.code === "invalid_format" && !/^(expected|must|unknown)\b/.test(expected)) expected = `expected ${expected}`;
    problems.push({ path: formatPath(segments), expected, location: source?.locate(segments) });
  }
  return undefined;
}

/** A problem at `segments`, located in the source when one is given. */
export function problemAt(segments: readonly PathSegment[], expected: string, source?: YamlSource): FieldProblem {
  return { path: formatPath(segments), expected, location: source?.locate(segments) };
}

/** True when `text` has a control character (newline, carriage return, NUL, escape, DEL ...); a tab only counts unless `allowTab`. */
export function hasControlChar(text: string, allowTab = true): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && !(allowTab && c === 0x09)) || c === 0x7f) return true;
  }
  return false;
}
