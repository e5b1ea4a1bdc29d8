// The CLI compiled into a private directory for tests that run it as a real child process, so they
// test the current sources without building (or racing a build of) the shared dist/.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Compiles cli/main.ts (and what it imports) into `<dir>/pkg`, with the package's templates,
 * cluster configs and node_modules linked beside it; returns its main.js (with `bundle`, bundled
 * as the package's build bundles it). Type checking is
 * `npm run typecheck`'s job, not this build's (noCheck).
 */
export async function buildCli(dir: string, options: { bundle?: boolean } = {}): Promise<string> {
  const out = path.join(dir, "pkg");
  const tsconfig = path.join(dir, "tsconfig.json");
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(REPO, "tsconfig.build.json"),
      compilerOptions: { outDir: out, rootDir: REPO, typeRoots: [path.join(REPO, "node_modules/@types")], declaration: false, sourceMap: false, noCheck: true },
      include: [],
      // The local supervisor is started by its own path, not imported: compile it too.
      files: [path.join(REPO, "cli/main.ts"), path.join(REPO, "src/app/local-supervisor-main.ts")],
    }),
  );
  await promisify(execFile)(process.execPath, [path.join(REPO, "node_modules/typescript/bin/tsc"), "-p", tsconfig], { cwd: REPO, timeout: 300_000 });
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, "package.json"), JSON.stringify({ name: "hpcpipe", version: "0.0.0-test", type: "module" }));
  for (const name of ["templates", "cluster-configs", "node_modules"]) symlinkSync(path.join(REPO, name), path.join(out, name), "dir");
  const main = path.join(out, "cli", "main.js");
  if (!existsSync(main)) throw new Error(`tsc wrote no ${main}`);
  // As `npm run build` does: the CLI bundled into main.js and chunks/ (scripts/bundle-cli.mjs).
  if (options.bundle) await promisify(execFile)(process.execPath, [path.join(REPO, "scripts/bundle-cli.mjs"), main], { cwd: REPO, timeout: 300_000 });
  return main;
}
