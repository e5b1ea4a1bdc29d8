// Issue 11: one rule for `$VAR` path prefixes: the job scripts (render's q-path) and the remote
// commands (transport's RemotePath) expand exactly the same leading variables, checked with real bash.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { shQuotePath } from "../../src/render/quote.js";
import { splitPathVariable } from "../../src/shell/path-variable.js";
import { remotePath } from "../../src/transport/index.js";

const PATHS = ["$HOME", "$HOME/a b", "$SCRATCH/runs", "$HOMEX/a", "${HOME}/a", "a/$HOME/b", "$USER/x", "/abs/$HOME", "~/x", "$SCRATCH"];

function expand(word: string): string {
  return execFileSync("bash", ["-c", `printf '%s' ${word}`], { encoding: "utf8", env: { ...process.env, HOME: "/h", SCRATCH: "/s", USER: "u" } });
}

describe("one rule for a leading $HOME or $SCRATCH", () => {
  it("splits only $HOME and $SCRATCH, alone or before '/'", () => {
    expect(PATHS.map((p) => splitPathVariable(p).variable)).toEqual(["HOME", "HOME", "SCRATCH", null, null, null, null, null, null, "SCRATCH"]);
  });

  it("a job script and a remote command expand the same paths to the same text (real bash)", () => {
    for (const path of PATHS) {
      const wanted = splitPathVariable(path).variable === null ? path : path.replace(/^\$HOME/, "/h").replace(/^\$SCRATCH/, "/s");
      expect(expand(shQuotePath(path)), `q-path ${path}`).toBe(wanted);
      expect(expand(remotePath(path).toShell()), `remote ${path}`).toBe(wanted);
    }
  });
});
