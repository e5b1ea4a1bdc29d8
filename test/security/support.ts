// Helpers of the security suite (test/security/*.test.ts, test/e2e/hostile-input.test.ts,
// test/e2e/secrets.test.ts) and bench/faults.ts. No vitest here.
//  - ConnectionTrap: a TCP listener that counts every connection made to it, so a cluster config
//    pointing at it proves whether hpcpipe tried to connect (it closes each one at once).
//  - sbatchArguments: how sbatch splits an `#SBATCH` line (SLURM's _get_argument; the local
//    executor's reader, checked against the real sbatch end to end), to decode rendered lines.
//  - fileTree: a snapshot of every path under a directory, to prove nothing was written elsewhere.
//  - findMarkers: every place a secret marker occurs in a set of files and texts.
//  - buildPrivateCli / runChild: the real CLI as a child process, with exactly the environment given.
//  - wrongModes: permission bits under a directory that are not the expected ones.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sbatchLineWords } from "../../src/local/sbatch-directives.js";

export class ConnectionTrap {
  #accepts = 0;
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<ConnectionTrap> {
    let trap: ConnectionTrap | null = null;
    const server = net.createServer((socket) => {
      if (trap) trap.#accepts += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    trap = new ConnectionTrap(server, (server.address() as net.AddressInfo).port);
    return trap;
  }

  /** Connections accepted so far. */
  get accepts(): number {
    return this.#accepts;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A cluster config (YAML text) for a SLURM cluster at 127.0.0.1:`port`, with `extra` top-level lines. */
export function trapConfigYaml(port: number, knownHosts: string, identityFile: string, extra: string[] = []): string {
  return [
    "name: trap",
    "executor: slurm",
    "connection:",
    "  host: 127.0.0.1",
    `  port: ${port}`,
    "  user: nobody",
    `  known_hosts: ${JSON.stringify(knownHosts)}`,
    `  identity_file: ${JSON.stringify(identityFile)}`,
    "  connect_timeout_s: 5",
    'workdir: "$HOME/hpcpipe-trap"',
    ...extra,
    "",
  ].join("\n");
}

/**
 * The arguments sbatch reads from the text after `#SBATCH` (SLURM's `_get_argument`,
 * src/sbatch/opt.c): hpcpipe's own reader, which the local executor uses. That it
 * matches the real sbatch is proven end to end (test/e2e/hostile-input.test.ts reads
 * back what sbatch stored for every hostile value).
 */
export const sbatchArguments = sbatchLineWords;

/** Every `#SBATCH` argument of a job script's header (up to the first command), in order. */
export function sbatchHeaderArguments(script: string): string[] {
  const args: string[] = [];
  for (const [n, line] of script.split("\n").entries()) {
    if (n === 0 && line.startsWith("#!")) continue;
    if (line.startsWith("#SBATCH")) {
      args.push(...sbatchArguments(line.slice("#SBATCH".length)));
      continue;
    }
    const first = line.trimStart();
    if (first !== "" && !first.startsWith("#")) break;
  }
  return args;
}

/** Every path under `root` (relative, `/`-separated, directories with a trailing `/`), sorted; [] when it does not exist. */
export function fileTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const abs = path.join(dir, name);
      const r = rel === "" ? name : `${rel}/${name}`;
      if (lstatSync(abs).isDirectory()) {
        out.push(`${r}/`);
        walk(abs, r);
      } else out.push(r);
    }
  };
  walk(root, "");
  return out.sort();
}

/** Every regular file under `root` (absolute paths), symlinks not followed. */
export function filesUnder(root: string): string[] {
  return fileTree(root)
    .filter((p) => !p.endsWith("/"))
    .map((p) => path.join(root, p))
    .filter((p) => lstatSync(p).isFile());
}

export interface MarkerHit {
  marker: string;
  where: string;
}

/** Where any of `markers` occurs: in the given texts (by name) and in the files (by path). */
export function findMarkers(markers: readonly string[], texts: Record<string, string | Buffer>, files: readonly string[]): MarkerHit[] {
  const hits: MarkerHit[] = [];
  const scan = (where: string, content: Buffer): void => {
    for (const marker of markers) if (content.includes(marker)) hits.push({ marker, where });
  };
  for (const [name, text] of Object.entries(texts)) scan(name, Buffer.isBuffer(text) ? text : Buffer.from(text));
  for (const file of files) scan(file, readFileSync(file));
  return hits;
}

export interface ChildResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Compiles the CLI into a private directory (never the shared dist/, which other test files
 * rebuild): `<dir>/dist`, next to a copy of package.json and links to templates/, cluster-configs/
 * and node_modules/, so it finds its own files exactly as an installed hpcpipe does. Type errors
 * elsewhere in the tree do not stop the build (tsc still emits); a missing entry point does.
 * Returns the path of the built `cli/main.js`.
 */
export function buildPrivateCli(dir: string): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(REPO, "package.json"), path.join(dir, "package.json"));
  for (const link of ["templates", "cluster-configs", "node_modules"]) symlinkSync(path.join(REPO, link), path.join(dir, link));
  const tsc = spawnSync(process.execPath, [path.join(REPO, "node_modules/typescript/bin/tsc"), "-p", path.join(REPO, "tsconfig.build.json"), "--outDir", path.join(dir, "dist")], {
    cwd: REPO,
    encoding: "utf8",
  });
  const main = path.join(dir, "dist", "cli", "main.js");
  if (!existsSync(main)) throw new Error(`could not build the CLI into ${dir}:\n${tsc.stdout}${tsc.stderr}`);
  if (tsc.status !== 0) process.stderr.write(`note: tsc reported problems elsewhere in the tree (the CLI was still emitted):\n${tsc.stdout.slice(0, 2000)}\n`);
  return main;
}

/** Runs a built CLI as a child process with exactly `env` (nothing inherited) and collects everything it prints. */
export function runChild(main: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ args, code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
  });
}

/** Modes of everything under a directory: directories and files whose permission bits are not the expected ones. */
export function wrongModes(root: string, expected: { dir: number; file: number }): string[] {
  const wrong: string[] = [];
  const check = (p: string, want: number): void => {
    const mode = lstatSync(p).mode & 0o777;
    if (mode !== want) wrong.push(`${p}: ${mode.toString(8)} (expected ${want.toString(8)})`);
  };
  check(root, expected.dir);
  for (const rel of fileTree(root)) {
    const abs = path.join(root, rel);
    if (rel.endsWith("/")) check(abs, expected.dir);
    else if (lstatSync(abs).isFile()) check(abs, expected.file);
  }
  return wrong;
}
