/**
 * The wrapper's locale-free fast paths (templates/lib.sh): _hp_is_step_key answers exactly as the step key
 * regex under LC_ALL=C, in a UTF-8 locale too and inside a trap handler (where a bare `return` would give the
 * status from before the trap); _hp_json_str gives the same JSON as the escaping path.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { libScript } from "../../src/render/render.js";

const KEYS = ["a", "a.b", "m.12.check", "_x", "a-b", "A.Z9", "9", "a.-b", "-a", "a.", ".a", "a..b", "a b", "é", "aé.b", "a/b", "", "a_.b", "a.b.{i}", "x:y", "a\nb", "ü", "a".repeat(1024), "a".repeat(1025)];
const VALUES = ["abc", 'a"b', "a\\b", "a\tb", "é ü", "x y:z/w@v+1=2,3-4_5.6", "\u0001", "a\nb"];

function run(locale: string): string {
  const script = `${libScript()}
re() { local LC_ALL=C; [[ $1 =~ $_HP_STEP_KEY_RE ]] && ((\${#1} <= 1024)); }
check() { local k; for k in "$@"; do o=0; _hp_is_step_key "$k" && o=1; r=0; re "$k" && r=1; printf '%s%s ' "$o" "$r"; done; }
check "$@"; echo
# From a trap handler, after a failed command.
h() { false; check "$@"; echo; }
trap 'h "$@"' USR1
kill -USR1 $$
for v in ${VALUES.map((v) => `$'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replaceAll("\u0001", "\\001")}'`).join(" ")}; do _hp_json_str "$v"; printf '%s\\n' "$REPLY"; done
`;
  const r = spawnSync("bash", ["-c", script, "t", ...KEYS], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: locale }, encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe("the wrapper's fast paths", () => {
  for (const locale of ["C.UTF-8", "C"]) {
    it(`accept the same step keys as the regex and give the same JSON strings (${locale})`, () => {
      const [direct = "", trapped = "", ...json] = run(locale).split("\n");
      for (const line of [direct, trapped]) {
        const pairs = line.trim().split(" ");
        expect(pairs).toHaveLength(KEYS.length);
        pairs.forEach((p, i) => expect(p, JSON.stringify(KEYS[i])).toMatch(/^(00|11)$/));
      }
      expect(direct.trim().split(" ").filter((p) => p === "11")).toHaveLength(9);
      expect(json.slice(0, VALUES.length).map((l) => JSON.parse(l) as string)).toEqual(VALUES);
    });
  }

  it("answers the same for a step key asked again, and checks each context key once, with the same answers as each check", () => {
    // TEMPLATE KEY pairs as the wrapper makes them (KEY: TEMPLATE with {i} made HPCPIPE_TASK), each key asked twice,
    // and a context key asked twice (the second answer comes from the memo).
    const long = "a".repeat(1021); // x.7. and these: 1,025 characters
    const pairs = ["m.{i}.a", "m.7.a", "m.{i}.a", "m.7.a", "m..{i}", "m..7", "m..{i}", "m..7", "-{i}.a", "-7.a", "{i}", "7", "{i}", "7", `x.{i}.${long}`, `x.7.${long}`];
    const script = [
      libScript(),
      'out=""',
      'for ((j = 1; j < $#; j += 2)); do n=$((j + 1)); o=0; _hp_is_step_key "${!n}" && o=1; out+="$o"; done',
      "# {i} made an empty index.",
      '_hp_is_step_key "m..a" && out+=1 || out+=0',
      'for k in model model PATH SLURM_X 9x "a b" ""; do _hp_is_context_key "$k" && out+=1 || out+=0; done',
      'echo "$out"',
    ].join("\n");
    const r = spawnSync("bash", ["-c", script, "t", ...pairs], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", HPCPIPE_TASK: "7" }, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    // m.7.a twice: yes; m..7 twice: no; -7.a: no; 7 twice: yes; a key over 1,024 characters: no; m..a: no.
    // model twice: yes; PATH (reserved), SLURM_X, 9x, "a b", "": no.
    expect(r.stdout.trim()).toBe("11000110" + "0" + "1100000");
  });
});
