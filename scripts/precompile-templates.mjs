// Run by `npm run build` after tsc: precompiles the package's own Handlebars templates (templates/*.hbs
// and partials/) into dist/templates.precompiled.json, so that `submit` and `plan` need not parse and
// compile them on every start (src/render/environment.ts uses an entry only while its file's text still
// has the SHA-256 it was made from, and compiles the file otherwise). Every template is checked first,
// as at run time: an unsafe one fails the build.
import { renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { PRECOMPILED_FILE, precompileTemplates } from "../dist/src/render/environment.js";

const out = precompileTemplates();
const target = path.resolve("dist", PRECOMPILED_FILE);
writeFileSync(`${target}.tmp`, JSON.stringify(out));
renameSync(`${target}.tmp`, target);
process.stdout.write(`precompile-templates: ${Object.keys(out).length} template(s) into ${path.relative(process.cwd(), target)}\n`);
