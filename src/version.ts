import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The package's own directory (holding package.json, templates/, cluster-configs/), found from this file in src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown };
      if (pkg.name === "hpcpipe") return dir;
    } catch {
      // not here; look one level up
    }
    dir = dirname(dir);
  }
  throw new Error("hpcpipe: cannot find the package's package.json");
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "0.0.0";
}

/**
 * The compiled file of one of the package's own programs that run as separate processes (the local
 * supervisor, the connection holder), given by its path under src/ (e.g. "app/local-supervisor-main.js").
 * `here` is the calling module's import.meta.url and `self` that module's own path under src/: in the
 * tsc build the module is where `self` says and the program sits beside it; in the bundled CLI
 * (dist/cli/main.js and its chunks, scripts/bundle-cli.mjs) the module's code is in a bundle file,
 * and the program is the package's unbundled dist/src/ copy (or src/ of a build compiled without dist/).
 */
export function programPath(here: string, self: string, program: string): string {
  const file = fileURLToPath(here);
  const own = join(sep, "src", self).replace(/\.js$/, "");
  if (file.replace(/\.[jt]s$/, "").endsWith(own)) return join(dirname(file), relative(dirname(self), program));
  const root = packageRoot();
  const candidates = [join(root, "dist", "src", program), join(root, "src", program)];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}
