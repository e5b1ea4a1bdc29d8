// Run by `npm run build` after tsc: bundles the CLI (dist/cli/main.js and the modules it imports) into
// dist/cli/main.js plus dist/cli/chunks/, so that starting `hpcpipe` reads a handful of files instead of
// about 260 (node resolves, reads and compiles each ESM module on its own: most of the CLI's start).
// What the CLI imports lazily (the report, the inspector, the glTF libraries) stays in chunks of its own,
// loaded only by the commands that use them. ssh2 (a native addon beside its JavaScript) and pino (which
// starts worker files by path) are loaded from node_modules as they are. The programs the CLI starts as
// separate processes (the local supervisor, the connection holder) stay unbundled in dist/src/
// (src/version.ts programPath finds them).
//
//   node scripts/bundle-cli.mjs [MAIN_JS]    (default dist/cli/main.js, as tsc wrote it)
import { build } from "esbuild";
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import process from "node:process";

const main = path.resolve(process.argv[2] ?? "dist/cli/main.js");
const dir = path.dirname(main);
if (!existsSync(main)) throw new Error(`bundle-cli: no ${main}: run tsc first`);
if (readFileSync(main, "utf8").includes("hpcpipe-bundle")) throw new Error(`bundle-cli: ${main} is already a bundle: run tsc first`);
const tmp = path.join(dir, ".bundle-tmp");
rmSync(tmp, { recursive: true, force: true });

// zod's namespace export `z.locales` holds every language's error messages (about 360 KB, a quarter of
// what the CLI loads at start); hpcpipe never uses it (English stays zod's default, set by zod itself).
const noZodLocales = {
  name: "no-zod-locales",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => (/[\\/]zod[\\/]v4[\\/]classic[\\/]external\.js$/.test(args.importer) ? { path: "zod-locales", namespace: "hpcpipe-empty" } : undefined));
    b.onLoad({ filter: /.*/, namespace: "hpcpipe-empty" }, () => ({ contents: "export {};", loader: "js" }));
  },
};

const result = await build({
  entryPoints: [main],
  outdir: tmp,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "chunks/[name]-[hash]",
  external: ["ssh2", "pino", "cpu-features", "*.node"],
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "// hpcpipe-bundle\nimport { createRequire as __hpcpipeCreateRequire } from 'node:module';\nconst require = __hpcpipeCreateRequire(import.meta.url);" },
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
  minify: process.env.HPCPIPE_BUNDLE_MINIFY === "1",
  plugins: [noZodLocales],
});

const files = Object.keys(result.metafile.outputs).filter((f) => f.endsWith(".js"));
rmSync(path.join(dir, "chunks"), { recursive: true, force: true });
renameSync(path.join(tmp, "chunks"), path.join(dir, "chunks"));
renameSync(path.join(tmp, "main.js"), main);
renameSync(path.join(tmp, "main.js.map"), `${main}.map`);
rmSync(tmp, { recursive: true, force: true });
const head = readFileSync(main, "utf8").split("\n", 1)[0];
if (head !== "#!/usr/bin/env node") throw new Error(`bundle-cli: ${main} lost its #! line (starts with ${JSON.stringify(head)})`);
process.stdout.write(`bundle-cli: ${path.relative(process.cwd(), main)} and ${files.length - 1} chunk(s)\n`);
