import Handlebars from "handlebars";

/** Helpers whose output is quoted for its destination; the only ones allowed to print a value. */
export const PRINTING_HELPERS: readonly string[] = ["q", "q-path", "sbatch", "join-q"];

/** Block helpers that only choose or repeat template text. */
export const BLOCK_HELPERS: readonly string[] = ["if", "unless", "each", "with"];

export interface TemplateProblem {
  line: number;
  message: string;
}

interface AnyNode {
  type: string;
  loc?: { start: { line: number } } | null;
  [k: string]: unknown;
}

function lineOf(node: AnyNode): number {
  return node.loc?.start.line ?? 0;
}

function pathName(node: unknown): string | null {
  const n = node as AnyNode | undefined;
  return n?.type === "PathExpression" && typeof n.original === "string" ? n.original : null;
}

/**
 * Every place in a parsed template that could print a value without a
 * quoting helper: bare `{{value}}`, any triple-stash or `{{& value}}`,
 * unknown block helpers, dynamic partials and decorators.
 */
export function findUnquotedOutput(program: hbs.AST.Program): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  const walk = (body: readonly unknown[] | undefined): void => {
    for (const raw of body ?? []) {
      const node = raw as AnyNode;
      switch (node.type) {
        case "ContentStatement":
        case "CommentStatement":
          break;
        case "MustacheStatement": {
          const name = pathName(node.path);
          const params = Array.isArray(node.params) ? node.params : [];
          if (node.escaped !== true) {
            problems.push({ line: lineOf(node), message: `triple-stash (unescaped) output of '${name ?? "?"}' is not allowed; use {{q ...}}` });
          } else if (name === null || !PRINTING_HELPERS.includes(name)) {
            problems.push({
              line: lineOf(node),
              message: `'{{${name ?? "literal"}}}' prints a value without a quoting helper; use one of ${PRINTING_HELPERS.join(", ")}`,
            });
          } else if (params.length === 0) {
            problems.push({ line: lineOf(node), message: `'{{${name}}}' needs a value to quote` });
          }
          break;
        }
        case "BlockStatement": {
          const name = pathName(node.path);
          if (name === null || !BLOCK_HELPERS.includes(name)) {
            problems.push({ line: lineOf(node), message: `block '{{#${name ?? "?"}}}' is not allowed; use ${BLOCK_HELPERS.join(", ")}` });
          }
          walk((node.program as AnyNode | undefined)?.body as unknown[] | undefined);
          walk((node.inverse as AnyNode | undefined)?.body as unknown[] | undefined);
          break;
        }
        case "PartialStatement":
        case "PartialBlockStatement": {
          if (pathName(node.name) === null) problems.push({ line: lineOf(node), message: "dynamic partial names are not allowed" });
          if (node.type === "PartialBlockStatement") walk((node.program as AnyNode | undefined)?.body as unknown[] | undefined);
          break;
        }
        default:
          problems.push({ line: lineOf(node), message: `${node.type} is not allowed in hpcpipe templates` });
      }
    }
  };
  walk(program.body);
  return problems;
}

/** Parses a template source and lists its unquoted outputs. */
export function checkTemplateSource(source: string): TemplateProblem[] {
  return findUnquotedOutput(Handlebars.parse(source));
}
