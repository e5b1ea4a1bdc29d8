import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The hpcpipe checkout this file belongs to (from the source or from dist/examples/batch-validate/). */
function repoRoot(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const up = resolve(here, "../..");
  return up.endsWith(`${"/"}dist`) ? resolve(up, "..") : up;
}

/** What the steps load from a toolkit (see bin/toolkit.mjs). */
export const TOOLKIT_ENTRIES = ["examples/mini-inspector/inspector.ts", "examples/mini-inspector/command.ts"] as const;

/**
 * Compiles just what the batch validator's steps load (the mini inspector and
 * the hpcpipe core it imports) into `<outDir>/dist`, and links
 * `<outDir>/node_modules` to the checkout's: a directory to pass as
 * `hpcpipe_dist` without building (or racing a build of) the whole dist/.
 * The tests use it. Directories are made world-readable (0755) so another
 * user (the test cluster's) can load it. Returns the dist directory.
 */
export async function buildToolkit(outDir: string): Promise<string> {
  const root = repoRoot();
  const out = resolve(outDir);
  const dist = join(out, "dist");
  mkdirSync(out, { recursive: true });
  const config = {
    extends: join(root, "tsconfig.build.json"),
    compilerOptions: {
      outDir: dist,
      rootDir: root,
      typeRoots: [join(root, "node_modules/@types")],
      declaration: false,
      sourceMap: false,
    },
    include: [],
    files: TOOLKIT_ENTRIES.map((f) => join(root, f)),
  };
  const tsconfig = join(out, "tsconfig.toolkit.json");
  writeFileSync(tsconfig, JSON.stringify(config));
  try {
    await promisify(execFile)(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", tsconfig], { cwd: root, timeout: 300_000 });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`tsc failed: ${e.stdout ?? ""}${e.stderr ?? ""}${e.stdout || e.stderr ? "" : e.message}`, { cause: error });
  }
  writeFileSync(join(dist, "package.json"), '{"type":"module"}\n');
  symlinkSync(join(root, "node_modules"), join(out, "node_modules"), "dir");
  chmodSync(out, 0o755);
  return dist;
}
