import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import Handlebars from "handlebars";
import { packageRoot } from "../version.js";
import { RenderValueError, sbatchLineValue, shQuote, shQuotePath } from "./quote.js";
import { checkTemplateSource } from "./template-check.js";

type HandlebarsEnv = typeof Handlebars;
export type Template = HandlebarsTemplateDelegate<unknown>;

/** Shell is not HTML: no escaping, and a missing value is an error, not an empty string. */
export const COMPILE_OPTIONS: CompileOptions = { noEscape: true, strict: true, preventIndent: true };

/** A loaded template directory: the job script and submit script templates and where they came from. */
export interface Templates {
  dir: string;
  sbatch: Template;
  submit: Template;
  /** A retry controller job (retry.hbs; the package's own when the directory has none). */
  retry: Template;
}

interface HelperCall {
  values: unknown[];
  where: string;
}

function helperArgs(name: string, args: unknown[], count: number): HelperCall {
  // Handlebars appends its options object (with the call's location); anything else is a template mistake.
  const options = args[args.length - 1] as { loc?: { start?: { line?: number } } } | undefined;
  const line = options?.loc?.start?.line;
  const where = line === undefined ? `{{${name}}}` : `{{${name}}} (template line ${line})`;
  const values = args.slice(0, -1);
  if (values.length !== count) throw new RenderValueError(`${where} takes ${count} value(s), got ${values.length}`);
  return { values, where };
}

function describeType(value: unknown): string {
  if (value === undefined) return "undefined (a value missing from the view?)";
  if (value === null) return "null";
  return Array.isArray(value) ? "a list" : typeof value;
}

function quoteOne(value: unknown, where: string): string {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new RenderValueError(`${where}: not a finite number: ${value}`);
    return String(value);
  }
  if (typeof value === "string") return shQuote(value);
  throw new RenderValueError(`${where}: expected a string or a number, got ${describeType(value)}`);
}

/** A Handlebars environment of its own (helpers registered here do not leak) with the quoting helpers. */
export function createEnvironment(): HandlebarsEnv {
  const env = Handlebars.create();
  env.registerHelper("q", (...args: unknown[]) => {
    const { values, where } = helperArgs("q", args, 1);
    return quoteOne(values[0], where);
  });
  env.registerHelper("q-path", (...args: unknown[]) => {
    const { values, where } = helperArgs("q-path", args, 1);
    const value = values[0];
    if (typeof value !== "string") throw new RenderValueError(`${where}: expected a string, got ${describeType(value)}`);
    return shQuotePath(value);
  });
  env.registerHelper("join-q", (...args: unknown[]) => {
    const { values, where } = helperArgs("join-q", args, 1);
    const list = values[0];
    if (!Array.isArray(list)) throw new RenderValueError(`${where}: expected a list, got ${describeType(list)}`);
    return list.map((v: unknown) => quoteOne(v, where)).join(" ");
  });
  env.registerHelper("sbatch", (...args: unknown[]) => {
    const { values, where } = helperArgs("sbatch", args, 2);
    const [value, field] = values;
    if (typeof field !== "string") throw new RenderValueError(`${where}: the second argument must name the field`);
    if (typeof value !== "string" && typeof value !== "number") {
      throw new RenderValueError(`#SBATCH ${field}: expected a string or a number, got ${describeType(value)}`);
    }
    return sbatchLineValue(value, field);
  });
  return env;
}

/** The package's own templates directory. */
export function defaultTemplatesDir(): string {
  return join(packageRoot(), "templates");
}

function readTemplate(dir: string, file: string): string {
  const path = join(dir, file);
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read template ${path}: ${(err as Error).message}`, { cause: err });
  }
  let problems;
  try {
    problems = checkTemplateSource(source);
  } catch (err) {
    throw new Error(`template ${path} does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (problems.length > 0) {
    throw new Error(`template ${path} is unsafe:\n${problems.map((p) => `  line ${p.line}: ${p.message}`).join("\n")}`);
  }
  return source;
}

let defaultTemplates: Templates | undefined;

/**
 * Loads `sbatch.hbs`, `submit.hbs` and `partials/*.hbs` from a directory
 * (default: the package's `templates/`) into an isolated environment.
 * A template that prints any value without a quoting helper is refused.
 */
export function loadTemplates(dir?: string): Templates {
  if (dir === undefined && defaultTemplates !== undefined) return defaultTemplates;
  const root = dir ?? defaultTemplatesDir();
  const env = createEnvironment();
  const partialsDir = join(root, "partials");
  if (existsSync(partialsDir)) {
    for (const file of readdirSync(partialsDir).filter((f) => f.endsWith(".hbs")).sort()) {
      env.registerPartial(basename(file, ".hbs"), env.compile(readTemplate(partialsDir, file), COMPILE_OPTIONS));
    }
  }
  const templates: Templates = {
    dir: root,
    sbatch: env.compile(readTemplate(root, "sbatch.hbs"), COMPILE_OPTIONS),
    submit: env.compile(readTemplate(root, "submit.hbs"), COMPILE_OPTIONS),
    retry: env.compile(readTemplate(existsSync(join(root, "retry.hbs")) ? root : defaultTemplatesDir(), "retry.hbs"), COMPILE_OPTIONS),
  };
  if (dir === undefined) defaultTemplates = templates;
  return templates;
}

/** Every template file of a directory (for checks): path relative to the directory and source. */
export function templateFiles(dir: string = defaultTemplatesDir()): { file: string; source: string }[] {
  const out = ["sbatch.hbs", "submit.hbs", "retry.hbs"].filter((f) => f !== "retry.hbs" || existsSync(join(dir, f))).map((file) => ({ file, source: readFileSync(join(dir, file), "utf8") }));
  const partialsDir = join(dir, "partials");
  if (existsSync(partialsDir)) {
    for (const f of readdirSync(partialsDir).filter((x) => x.endsWith(".hbs")).sort()) {
      out.push({ file: `partials/${f}`, source: readFileSync(join(partialsDir, f), "utf8") });
    }
  }
  return out;
}
