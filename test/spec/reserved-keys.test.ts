// Issue 11: one rule for reserved context keys. The list in src/spec/context-keys.ts and the one the
// job wrapper checks (templates/lib.sh, `_HP_RESERVED` and the prefixes of `_hp_is_context_key`) agree,
// and real bash with lib.sh refuses exactly the keys the compiler refuses.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { libScript } from "../../src/render/index.js";
import { contextKeyProblem, RESERVED_CONTEXT_KEYS, RESERVED_CONTEXT_PREFIXES } from "../../src/spec/index.js";

describe("the reserved context keys", () => {
  const lib = libScript();

  it("templates/lib.sh lists the same names and prefixes", () => {
    const names = /^_HP_RESERVED=" (.*) "$/m.exec(lib)?.[1]?.split(" ") ?? [];
    expect(names.sort()).toEqual([...RESERVED_CONTEXT_KEYS].sort());
    const fn = lib.slice(lib.indexOf("_hp_is_context_key() {"));
    const prefixes = /case \$1 in ([^)]*)\) return 1/.exec(fn)?.[1]?.split("|").map((p) => p.trim().replace(/\*$/, "")) ?? [];
    expect(prefixes.sort()).toEqual([...RESERVED_CONTEXT_PREFIXES].sort());
  });

  it("real bash with lib.sh accepts and refuses the same keys as the compiler", () => {
    const keys = [...RESERVED_CONTEXT_KEYS, ...RESERVED_CONTEXT_PREFIXES.map((p) => `${p}X`), "model", "Size_2", "_x", "2bad", "a-b", "pathlike", "SLURMX", "HPCPIPEX"];
    const out = execFileSync("bash", ["-c", `source /dev/stdin <<<"$HP_LIB"; for k in "$@"; do if _hp_is_context_key "$k"; then echo ok; else echo no; fi; done`, "probe", ...keys], {
      encoding: "utf8",
      env: { ...process.env, HP_LIB: lib },
    });
    expect(out.trim().split("\n")).toEqual(keys.map((k) => (contextKeyProblem(k) === null ? "ok" : "no")));
  });
});
