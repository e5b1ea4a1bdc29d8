// A module-resolution hook for a real CLI child process: `node --import <register> main.js ...` prints
// `LOADED <url>` on stderr for every module it resolves, so a test can see what a command loads.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Writes the hook into `dir`; returns the file to pass to `node --import`. */
export function writeLoadHook(dir: string): string {
  const resolver = path.join(dir, "hook.mjs");
  writeFileSync(resolver, "export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write(`LOADED ${r.url}\\n`); return r; }\n");
  const register = path.join(dir, "register.mjs");
  writeFileSync(register, `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(resolver).href)});\n`);
  return register;
}
