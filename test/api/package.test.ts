// Issue 11: the programmatic API, tested as a user gets it. The package is compiled into a staging
// directory (never the shared dist/), packed with `npm pack`, installed from the tarball into a
// fresh project (its dependencies from the registry, or npm's cache), and imported there by name:
// a pipeline built in code is submitted to this machine, followed through typed progress events,
// awaited as a merged CompletedState, and a second run is cancelled. A TypeScript file using the
// API is type-checked against the installed declarations.
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TSC = path.join(REPO, "node_modules", "typescript", "bin", "tsc");

const USER_SCRIPT = `
import { CommandStep, MapStep, Pipeline, submit } from "hpcpipe";

const [runsDir, home] = process.argv.slice(2);
const pipeline = new Pipeline({
  name: "api_demo",
  steps: [
    new CommandStep({ name: "hello", command: 'mkdir -p out && echo "hello $who" > out/hello.txt', requires: ["who"], outputs: ["out/hello.txt"] }),
    new MapStep({ name: "each", items: ["a", "b", "c"], as: "item", steps: [new CommandStep({ name: "touch", command: 'echo "$item" > "out/$item.txt"', requires: ["item"] })] }),
  ],
});
const events = [];
const run = await submit({ pipeline: { pipeline, context: { who: "world" } }, cluster: "local", runsDir, home }, { onEvent: (e) => events.push(e) });
const result = await run.result({ onEvent: (e) => events.push(e) });

const long = await submit({ pipeline: { pipeline: new Pipeline({ name: "long", steps: [new CommandStep({ name: "wait", command: "sleep 300" })] }) }, runsDir, home });
const cancelled = await long.cancel();
const after = await long.status();
console.log(JSON.stringify({
  success: result.success,
  keys: Object.keys(result.step_states ?? {}).sort(),
  types: [...new Set(events.map((e) => e.type))].sort(),
  finished: events.filter((e) => e.type === "finished").map((e) => e.exitCode),
  tasks: events.filter((e) => e.type === "task" && e.final).map((e) => e.task).sort(),
  cancelledPhase: cancelled.record.phase,
  afterStates: after.jobs.map((j) => j.state),
}));
`;

const USER_TS = `
import { CommandStep, Pipeline, submit } from "hpcpipe";
import type { CompletedState, ProgressEvent, Run } from "hpcpipe";

export async function render(): Promise<CompletedState> {
  const pipeline = new Pipeline({ name: "typed", steps: [new CommandStep({ name: "one", command: "true" })] });
  const run: Run = await submit({ pipeline: { pipeline }, cluster: "local" });
  const seen: string[] = [];
  for await (const e of run.events()) {
    const event: ProgressEvent = e;
    if (event.type === "task") seen.push(\`\${event.job}:\${event.task}=\${event.state}\`);
    if (event.type === "finished") seen.push(String(event.exitCode));
  }
  return run.result();
}
`;

describe("the package as a user installs it (npm pack, npm install from the tarball, import by name)", { timeout: 600_000 }, () => {
  let dir: string;
  let project: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hpcpipe-pack-"));
    const staging = path.join(dir, "staging");
    mkdirSync(staging);
    const tsconfig = path.join(dir, "tsconfig.json");
    writeFileSync(
      tsconfig,
      JSON.stringify({
        extends: path.join(REPO, "tsconfig.build.json"),
        compilerOptions: { outDir: path.join(staging, "dist"), rootDir: REPO, typeRoots: [path.join(REPO, "node_modules/@types")], sourceMap: false, noCheck: true },
        include: [],
        files: [path.join(REPO, "src/index.ts"), path.join(REPO, "src/app/local-supervisor-main.ts")],
      }),
    );
    await exec(process.execPath, [TSC, "-p", tsconfig], { cwd: REPO, timeout: 300_000 });
    const pkg = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as Record<string, unknown>;
    delete pkg.scripts;
    delete pkg.devDependencies;
    writeFileSync(path.join(staging, "package.json"), JSON.stringify(pkg, null, 2));
    for (const name of ["templates", "cluster-configs"]) cpSync(path.join(REPO, name), path.join(staging, name), { recursive: true });
    await exec("npm", ["pack", "--pack-destination", dir], { cwd: staging, timeout: 120_000 });
    const tarball = readdirSync(dir).find((n) => n.endsWith(".tgz"));
    if (tarball === undefined) throw new Error("npm pack wrote no tarball");
    project = path.join(dir, "project");
    mkdirSync(project);
    writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "user-project", version: "1.0.0", private: true, type: "module" }));
    await exec("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(dir, tarball)], { cwd: project, timeout: 400_000 });
  }, 600_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("a pipeline built in code is submitted, followed through typed events, awaited as one merged CompletedState, and a second run is cancelled", async () => {
    writeFileSync(path.join(project, "use.mjs"), USER_SCRIPT);
    const home = path.join(dir, "home");
    const { stdout } = await exec(process.execPath, ["use.mjs", path.join(dir, "runs"), home], { cwd: project, timeout: 180_000 });
    const out = JSON.parse(stdout.trim().split("\n").pop() ?? "") as Record<string, unknown>;
    expect(out).toEqual({
      success: true,
      keys: ["api_demo.each", "api_demo.each.0", "api_demo.each.0.touch", "api_demo.each.1", "api_demo.each.1.touch", "api_demo.each.2", "api_demo.each.2.touch", "api_demo.hello"],
      types: ["finished", "job", "submitted", "task"],
      finished: [0],
      tasks: [0, 1, 2],
      cancelledPhase: "cancelled",
      afterStates: ["CANCELLED"],
    });
    expect(readFileSync(path.join(dir, "runs", "api_demo", readdirSync(path.join(dir, "runs", "api_demo"))[0] ?? "", "work", "out", "hello.txt"), "utf8")).toBe("hello world\n");
  });

  it("a TypeScript file using the API, and the README's example, type-check against the installed declarations", async () => {
    writeFileSync(path.join(project, "use.ts"), USER_TS);
    const readme = readFileSync(path.join(REPO, "README.md"), "utf8");
    const example = /## Using hpcpipe from code[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example, "the README's TypeScript example").toBeDefined();
    writeFileSync(path.join(project, "readme-example.ts"), example ?? "");
    const args = [TSC, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--skipLibCheck", "--types", "node", "--typeRoots", path.join(REPO, "node_modules/@types"), "use.ts", "readme-example.ts"];
    await expect(exec(process.execPath, args, { cwd: project, timeout: 120_000 })).resolves.toBeDefined();
  });
});
