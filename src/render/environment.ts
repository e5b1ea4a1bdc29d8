import { createHash } from "node:crypto";
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

function readSource(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read template ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Refuses a template that does not parse or prints a value without a quoting helper. */
export function checkTemplate(path: string, source: string): void {
  let problems;
  try {
    problems = checkTemplateSource(source);
  } catch (err) {
    throw new Error(`template ${path} does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (problems.length > 0) {
    throw new Error(`template ${path} is unsafe:\n${problems.map((p) => `  line ${p.line}: ${p.message}`).join("\n")}`);
  }
}

/** The SHA-256 of a template's text, which names its precompiled form. */
export function templateHash(source: string): string {
  return createHash("sha256").update(source).digest("hex");
}

/**
 * The package's own templates precompiled by `npm run build` (scripts/precompile-templates.mjs): for
 * each file of templates/ (relative path), the SHA-256 of the text it was made from, and Handlebars'
 * precompiled template (JavaScript source of the template's object, with COMPILE_OPTIONS), made only
 * from text that passed checkTemplate. Parsing and compiling the templates is most of what `submit`
 * does before it can connect; a file whose text no longer has that hash is compiled (and checked) as
 * before, so an edited templates/ never runs stale.
 */
export const PRECOMPILED_FILE = "templates.precompiled.json";
export type Precompiled = Record<string, { sha256: string; spec: string }>;

/** Precompiles every template of a directory (for dist/templates.precompiled.json); refuses an unsafe one. */
export function precompileTemplates(dir: string = defaultTemplatesDir()): Precompiled {
  const out: Precompiled = {};
  for (const { file, source } of templateFiles(dir)) {
    checkTemplate(join(dir, file), source);
    out[file] = { sha256: templateHash(source), spec: Handlebars.precompile(source, COMPILE_OPTIONS) as string };
  }
  return out;
}

function readPrecompiled(root: string): Precompiled {
  if (root !== defaultTemplatesDir()) return {};
  try {
    const data = JSON.parse(readFileSync(join(packageRoot(), "dist", PRECOMPILED_FILE), "utf8")) as unknown;
    if (typeof data !== "object" || data === null) return {};
    const out: Precompiled = {};
    for (const [file, entry] of Object.entries(data as Record<string, unknown>)) {
      const e = entry as { sha256?: unknown; spec?: unknown } | null;
      if (typeof e?.sha256 === "string" && typeof e.spec === "string") out[file] = { sha256: e.sha256, spec: e.spec };
    }
    return out;
  } catch {
    return {}; // not built (tests run the sources), or unreadable: compile
  }
}

function templateOf(env: HandlebarsEnv, root: string, file: string, precompiled: Precompiled): Template {
  const path = join(root, file);
  const source = readSource(path);
  const entry = precompiled[file];
  if (entry !== undefined && entry.sha256 === templateHash(source)) {
    // Build output of the package itself, like its JavaScript (Handlebars.compile makes the same function).
    const spec = new Function(`return ${entry.spec};`)() as TemplateSpecification;
    return env.template(spec) as Template;
  }
  checkTemplate(path, source);
  return env.compile(source, COMPILE_OPTIONS);
}

let defaultTemplates: Templates | undefined;

/**
 * Loads `sbatch.hbs`, `submit.hbs` and `partials/*.hbs` from a directory
 * (default: the package's `templates/`) into an isolated environment.
 * A template that prints any value without a quoting helper is refused.
 */
export function loadTemplates(dir?: string, precompiledTemplates?: Precompiled): Templates {
  if (dir === undefined && precompiledTemplates === undefined && defaultTemplates !== undefined) return defaultTemplates;
  const root = dir ?? defaultTemplatesDir();
  const precompiled = precompiledTemplates ?? readPrecompiled(root);
  const env = createEnvironment();
  const partialsDir = join(root, "partials");
  if (existsSync(partialsDir)) {
    for (const file of readdirSync(partialsDir).filter((f) => f.endsWith(".hbs")).sort()) {
      env.registerPartial(basename(file, ".hbs"), templateOf(env, root, `partials/${file}`, precompiled));
    }
  }
  const templates: Templates = {
    dir: root,
    sbatch: templateOf(env, root, "sbatch.hbs", precompiled),
    submit: templateOf(env, root, "submit.hbs", precompiled),
    // A templates directory of the user's own made before retries existed: the package's controller.
    retry: existsSync(join(root, "retry.hbs")) ? templateOf(env, root, "retry.hbs", precompiled) : templateOf(env, defaultTemplatesDir(), "retry.hbs", readPrecompiled(defaultTemplatesDir())),
  };
  if (dir === undefined && precompiledTemplates === undefined) defaultTemplates = templates;
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
