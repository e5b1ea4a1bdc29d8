import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Pipeline } from "../../src/core/index.js";
import { CommandStep } from "../../src/spec/command-step.js";
import { MapStep } from "../../src/spec/map-step.js";
import { loadText, tempDir } from "./helpers.js";

const MARKER = join(tmpdir(), `hpcpipe-pwned-${process.pid}`);

/** Values that would run a command if they were ever spliced into shell text. */
const HOSTILE: Record<string, string> = {
  subst: `$(touch ${MARKER})`,
  backticks: `\`touch ${MARKER}\``,
  quotes: `it's "quoted" '$(touch ${MARKER})'`,
  newline: `first line\ntouch ${MARKER}\n`,
  semicolon: `x; touch ${MARKER}; echo`,
  unicode: "naïve → 模型 🧊",
  dollar: "$HOME ${PATH} $1 $$",
  glob: "* ?[a-z] ~",
  dashes: "--rm -rf /",
};

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir("hpcpipe-hostile-test-"));
  dir = realpathSync(dir);
  rmSync(MARKER, { force: true });
});
afterEach(() => {
  cleanup();
  rmSync(MARKER, { force: true });
});

/** A step that writes the exact bytes of each variable to a file named after it. */
function dumpStep(keys: readonly string[]): CommandStep {
  return new CommandStep({ name: "dump", command: keys.map((k) => `printf '%s' "$${k}" > ${k}.out`).join("\n"), requires: keys });
}

describe("hostile context values", () => {
  it("are accepted by the spec as data", () => {
    const yaml = `name: t\ncontext: ${JSON.stringify(HOSTILE)}\nsteps:\n  - step: s\n    run: "true"\n`;
    expect(loadText(yaml).context).toEqual(HOSTILE);
  });

  it("are accepted through --set as data", () => {
    const yaml = `name: t\nsteps:\n  - step: s\n    run: "true"\n    requires: ${JSON.stringify(Object.keys(HOSTILE))}\n`;
    expect(loadText(yaml, {}, { set: HOSTILE }).context).toEqual(HOSTILE);
  });

  it("reach an in-process command as the exact bytes, and nothing in them executes", async () => {
    const keys = Object.keys(HOSTILE);
    const result = await new Pipeline({ name: "p", steps: [dumpStep(keys)] }).run({ ...HOSTILE }, { workDir: dir });
    expect(result.success).toBe(true);
    for (const k of keys) expect(readFileSync(join(dir, `${k}.out`), "utf8")).toBe(HOSTILE[k]);
    expect(existsSync(MARKER)).toBe(false);
  });

  it("from a loaded spec run in-process without executing anything", async () => {
    const keys = Object.keys(HOSTILE);
    const yaml = `name: t\ncontext: ${JSON.stringify(HOSTILE)}\nsteps:\n  - step: dump\n    requires: ${JSON.stringify(keys)}\n    run: ${JSON.stringify(keys.map((k) => `printf '%s' "$${k}" > ${k}.out`).join("\n"))}\n`;
    const loaded = loadText(yaml);
    const result = await loaded.pipeline.run({ ...loaded.context }, { workDir: dir });
    expect(result.success).toBe(true);
    for (const k of keys) expect(readFileSync(join(dir, `${k}.out`), "utf8")).toBe(HOSTILE[k]);
    expect(existsSync(MARKER)).toBe(false);
  });

  it("published by one step reach the next as the exact bytes", async () => {
    const value = `$(touch ${MARKER}) \`x\` 'q' "d"; rm`;
    const p = new Pipeline({
      name: "p",
      steps: [
        new CommandStep({ name: "a", command: `printf 'v=%s\\n' "$src" >> "$HPCPIPE_PUBLISH"`, requires: ["src"], provides: ["v"] }),
        new CommandStep({ name: "b", command: `printf '%s' "$v" > v.out`, requires: ["v"] }),
      ],
    });
    const context = { src: value };
    expect((await p.run(context, { workDir: dir })).success).toBe(true);
    expect(readFileSync(join(dir, "v.out"), "utf8")).toBe(value);
    expect(existsSync(MARKER)).toBe(false);
  });

  it("as map items reach the command as the exact bytes", async () => {
    const items = Object.values(HOSTILE).filter((v) => !v.includes("\n"));
    const map = new MapStep({
      name: "m",
      items,
      as: "model",
      steps: [new CommandStep({ name: "s", command: `printf '%s' "$model" > "item-$HPCPIPE_TASK.out"; printf '%s' "$HPCPIPE_ITEM" > "env-$HPCPIPE_TASK.out"` })],
    });
    expect((await new Pipeline({ name: "p", steps: [map] }).run({}, { workDir: dir })).success).toBe(true);
    items.forEach((item, i) => {
      expect(readFileSync(join(dir, `item-${i}.out`), "utf8")).toBe(item);
      expect(readFileSync(join(dir, `env-${i}.out`), "utf8")).toBe(item);
    });
    expect(existsSync(MARKER)).toBe(false);
  });
});
