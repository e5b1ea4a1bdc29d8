import { mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** The hpcpipe checkout this file belongs to (from the source or from dist/examples/batch-validate/). */
function repoRoot(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const up = resolve(here, "../..");
  return up.endsWith(`${"/"}dist`) ? resolve(up, "..") : up;
}

/** Where the steps expect the toolkit, relative to the example's directory (and so to the run's work/ directory). */
export const TOOLKIT_BUNDLE = "toolkit/toolkit.bundle.mjs";

/** The oldest Node the bundle is built for, and that `bin/check-toolkit.mjs` accepts on the machine running the steps. */
export const TOOLKIT_NODE_MAJOR = 18;

/** What the bundle exports: the mini inspector (and the hpcpipe core it imports) and gltf-validator. */
const ENTRY = `export { runMiniInspector } from "./examples/mini-inspector/inspector.ts";
export { failureLine } from "./examples/mini-inspector/command.ts";
import validator from "gltf-validator";
export { validator };
`;

/**
 * Builds the batch validator's toolkit: ONE self-contained ESM file holding
 * the mini inspector (from the TypeScript sources, with the hpcpipe core it
 * imports and @gltf-transform/core) and gltf-validator. The steps import it
 * from the run's own `work/toolkit/`, so a cluster needs nothing but Node (18 or
 * newer): no hpcpipe checkout, no node_modules, no path of the client.
 * Written atomically (temp file + rename), so concurrent builds of the same
 * file never leave a half-written bundle. Returns the file written.
 */
export async function buildToolkit(outFile: string = join(repoRoot(), "examples/batch-validate", TOOLKIT_BUNDLE)): Promise<string> {
  const root = repoRoot();
  const out = resolve(outFile);
  mkdirSync(dirname(out), { recursive: true });
  const temp = `${out}.${process.pid}.${Date.now()}.tmp`;
  try {
    await build({
      stdin: { contents: ENTRY, resolveDir: root, loader: "ts", sourcefile: "batch-validate-toolkit.ts" },
      bundle: true,
      platform: "node",
      format: "esm",
      target: `node${TOOLKIT_NODE_MAJOR}`,
      outfile: temp,
      // gltf-validator is CommonJS and calls require(): give the ES module one.
      banner: {
        js: [
          "// Built by examples/batch-validate/build-toolkit.ts (npm run build): the mini inspector and gltf-validator in one file.",
          "import { createRequire as __hpcpipeCreateRequire } from 'node:module';",
          "const require = __hpcpipeCreateRequire(import.meta.url);",
        ].join("\n"),
      },
      legalComments: "eof",
      logLevel: "silent",
      // The mini inspector imports the package root, as a user's code would; the steps need only its core
      // (the root also exports the cluster API, with ssh2 and its native addons, which no step uses).
      plugins: [
        {
          name: "hpcpipe-core-only",
          setup(b) {
            b.onResolve({ filter: /(^|\/)src\/index\.js$/ }, (args) => ({ path: resolve(args.resolveDir, args.path.replace(/index\.js$/, "core/index.ts")) }));
          },
        },
      ],
    });
    renameSync(temp, out);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new Error(`building the batch-validate toolkit (${out}) failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return out;
}

// `node dist/examples/batch-validate/build-toolkit.js [OUTFILE]` (part of `npm run build`).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildToolkit(process.argv[2])
    .then((file) => process.stdout.write(`batch-validate toolkit: ${file}\n`))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    });
}
