/**
 * Checks of a command step's text against what it will see at run time,
 * made at compile time so a mistake is named before anything runs:
 * - a step sees a value another step published only when it lists the key
 *   in `requires` (the exact list of what it sees), so `$scene` without
 *   `requires: [scene]` would silently be empty;
 * - per-item output patterns (`{i}`, `{item}`) exist only in a map's steps.
 */
import type { CommandStep } from "../spec/command-step.js";
import { ITEM_PATTERN_TOKENS } from "../spec/output-patterns.js";
import { preview } from "../core/preview.js";

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;

/**
 * The variable names a bash command expands (`$name`, `${name}`, `${name:-x}`,
 * `${#name}`), outside single quotes and not escaped with a backslash.
 */
export function expandedNames(command: string): Set<string> {
  const names = new Set<string>();
  let inDouble = false;
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "'" && !inDouble) {
      const end = command.indexOf("'", i + 1);
      i = end < 0 ? command.length : end;
      continue;
    }
    if (c === '"') {
      inDouble = !inDouble;
      continue;
    }
    if (c === "#" && !inDouble && (i === 0 || /[\s;&|()]/.test(command[i - 1] ?? ""))) {
      // A comment, to the end of its line.
      const end = command.indexOf("\n", i);
      i = end < 0 ? command.length : end;
      continue;
    }
    if (c !== "$") continue;
    let at = i + 1;
    if (command[at] === "'" && !inDouble) {
      // $'...': ANSI-C quoting, no expansion inside (backslash escapes a quote).
      let j = at + 1;
      while (j < command.length && command[j] !== "'") j += command[j] === "\\" ? 2 : 1;
      i = j;
      continue;
    }
    if (command[at] === "{") {
      at++;
      if (command[at] === "#" || command[at] === "!") at++;
    }
    NAME.lastIndex = at;
    const m = NAME.exec(command);
    if (m !== null) names.add(m[0]);
  }
  return names;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** True when the command gives the variable a value itself (assignment, `for`, `read`, `local`/`declare`/`export`, `mapfile`). */
export function setsItself(command: string, name: string): boolean {
  const n = escapeRe(name);
  return [
    new RegExp(`(?:^|[\\s;&|(])${n}(?:\\[[^\\]]*\\])?\\+?=`, "m"),
    new RegExp(`\\b(?:for|select)\\s+${n}\\b`),
    new RegExp(`\\b(?:read|local|declare|typeset|export|readonly|mapfile|readarray|getopts)\\b[^;&|\\n]*[\\s]${n}\\b`),
  ].some((re) => re.test(command));
}

/** Problems of one command step at `key`; `providers` maps each key published upstream to the step that publishes it. */
export function commandStepProblems(step: CommandStep, key: string, providers: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  const requires = new Set(step.requires);
  for (const name of expandedNames(step.command)) {
    const from = providers.get(name);
    if (from === undefined || requires.has(name) || Object.prototype.hasOwnProperty.call(step.env, name) || setsItself(step.command, name)) continue;
    problems.push(
      `step ${key} uses $${name}, which ${from} publishes, but does not list '${name}' in requires: ` +
        `a step sees only the values it requires, so it would be empty; add requires: [${name}]`,
    );
  }
  const inMap = key.includes(".{i}.");
  if (!inMap) {
    for (const out of step.outputs) {
      const token = ITEM_PATTERN_TOKENS.find((t) => out.includes(t));
      if (token !== undefined) {
        problems.push(`step ${key}: output ${preview(out)} uses ${token}, which only the steps of a map have (one value per item)`);
      }
    }
  }
  return problems;
}
