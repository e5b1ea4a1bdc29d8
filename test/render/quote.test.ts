import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { sbatchLineValue, shQuote, shQuotePath } from "../../src/render/quote.js";
import { formatIndexList } from "../../src/render/render.js";
import { sbatchLineWords } from "../../src/local/sbatch-directives.js";

const SAMPLES = [
  "plain",
  "",
  " ",
  "it's",
  "''",
  '"double"',
  "$(touch /tmp/pwned)",
  "`id`",
  "a\\b",
  "\\'",
  "line1\nline2",
  "tab\tand\r",
  "; & | < > ( ) { } [ ] * ? ~ ! # %",
  "Grüße 世界 🚀",
  "-n",
  "--flag=value",
];

/** What bash makes of a quoted word: printed back through printf. */
function bashSees(word: string): string {
  const r = spawnSync("bash", ["-c", `printf '%s' ${word}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

/** The argument splitter sbatch applies to `#SBATCH` lines (`_get_argument` in SLURM's src/sbatch/opt.c), as the local executor reads them. */
const sbatchArguments = sbatchLineWords;

describe("shQuote", () => {
  it("gives bash back exactly the bytes it was given", () => {
    for (const s of SAMPLES) expect(bashSees(shQuote(s))).toBe(s);
  });

  it("leaves safe words unquoted, writes the empty string as '' and an embedded quote as '\\''", () => {
    expect(shQuote("scripts/j001.sbatch")).toBe("scripts/j001.sbatch");
    expect(shQuote("a=b:c@d%e+f,g-h")).toBe("a=b:c@d%e+f,g-h");
    expect(shQuote("")).toBe("''");
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
    expect(shQuote("$x")).toBe("'$x'");
    expect(shQuote("{i}")).toBe("'{i}'");
  });

  it("refuses a NUL byte, which no bash word can carry", () => {
    expect(() => shQuote("a\0b")).toThrow(/NUL/);
  });
});

describe("shQuotePath", () => {
  it("lets the job's shell expand a leading $HOME or $SCRATCH (the one rule) and nothing else", () => {
    expect(shQuotePath("$SCRATCH/x y")).toBe(`"\${SCRATCH}"'/x y'`);
    expect(shQuotePath("${HOME}/r")).toBe("'${HOME}/r'");
    expect(shQuotePath("$WORK/r")).toBe("'$WORK/r'");
    expect(shQuotePath("$HOME")).toBe(`"\${HOME}"`);
    expect(shQuotePath("/abs/$(x)")).toBe("'/abs/$(x)'");
    expect(shQuotePath("$(touch /tmp/pwned)/x")).toBe("'$(touch /tmp/pwned)/x'");
    const r = spawnSync("bash", ["-c", `printf '%s' ${shQuotePath("$SCRATCH/a $(b) 'c'")}`], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, SCRATCH: "/s p" },
    });
    expect(r.stdout).toBe("/s p/a $(b) 'c'");
  });
});

describe("sbatchLineValue", () => {
  it("quotes so that sbatch's own #SBATCH parser reads back the exact value", () => {
    const values = ["plain", "with space", `quo"te`, "it's", "back\\slash", "hash #1", "a'b\"c\\d #e", "Grüße", "%A_%a"];
    for (const v of values) {
      expect(sbatchArguments(`--job-name=${sbatchLineValue(v, "job name")}`)).toEqual([`--job-name=${v}`]);
    }
  });

  it("refuses a newline, carriage return or control character and names the field", () => {
    expect(() => sbatchLineValue("a\nb", "partition")).toThrow('#SBATCH partition: must not contain a newline or control character: "a\\nb"');
    expect(() => sbatchLineValue("a\rb", "qos")).toThrow(/#SBATCH qos/);
    expect(() => sbatchLineValue("a\u0000b", "account")).toThrow(/#SBATCH account/);
    expect(() => sbatchLineValue("a\u007fb", "account")).toThrow(/#SBATCH account/);
    expect(() => sbatchLineValue("", "gres")).toThrow(/#SBATCH gres: must not be empty/);
  });

  it("prints numbers as they are", () => {
    expect(sbatchLineValue(4, "cpus")).toBe("4");
    expect(() => sbatchLineValue(Number.NaN, "cpus")).toThrow(/finite/);
  });
});

describe("formatIndexList", () => {
  it("writes SLURM array index lists with ranges", () => {
    expect(formatIndexList([0])).toBe("0");
    expect(formatIndexList([3, 0, 1, 2, 7, 9, 10, 11])).toBe("0-3,7,9-11");
    expect(formatIndexList([5, 5, 6])).toBe("5-6");
  });
});
