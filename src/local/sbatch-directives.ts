/**
 * The few `#SBATCH` directives of a rendered job script that the local
 * executor honours: where the job's own output goes, the early warning
 * signal before the time limit (`--signal`), and the time limit itself.
 */
import { constants } from "node:os";

export interface WarnSignal {
  /** Node's name of the signal, e.g. SIGUSR1. */
  signal: NodeJS.Signals;
  /** Seconds before the time limit (SLURM's default is 60). */
  seconds: number;
  /** `B:` sends it to the batch shell only; otherwise to every process of the job. */
  batchOnly: boolean;
}

export interface SbatchDirectives {
  output?: string;
  error?: string;
  time?: string;
  signal?: WarnSignal;
}

const SHORT: Record<string, string> = { o: "output", e: "error", t: "time", J: "job-name", D: "chdir" };

/** C's isspace in the C locale: the only characters that separate words on an `#SBATCH` line. */
const SBATCH_SPACE = /[ \t\n\v\f\r]/;

/**
 * Splits the text after `#SBATCH` into words exactly as sbatch does
 * (`_get_argument` in SLURM's src/sbatch/opt.c): a backslash takes the next
 * character literally (also inside quotes), `"` or `'` group characters
 * (whitespace included) up to the same quote, an unquoted, unescaped `#` ends
 * the line, and so does a word with no character. A quoted value
 * (`--partition="a --time=1"`) is therefore one word, never options of its own.
 */
export function sbatchLineWords(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    while (i < line.length && SBATCH_SPACE.test(line.charAt(i))) i++;
    let word = "";
    let quote = "";
    let escaped = false;
    let comment = false;
    for (; i < line.length && (quote !== "" || !SBATCH_SPACE.test(line.charAt(i))); i++) {
      const c = line.charAt(i);
      if (escaped) escaped = false;
      else if (c === "\\") {
        escaped = true;
        continue;
      } else if (quote !== "") {
        if (c === quote) {
          quote = "";
          continue;
        }
      } else if (c === '"' || c === "'") {
        quote = c;
        continue;
      } else if (c === "#") {
        comment = true;
        break;
      }
      word += c;
    }
    if (word === "") return out;
    out.push(word);
    if (comment) return out;
  }
}

/** `[{R|B}:]<sig>[@<seconds>]`, e.g. `B:USR1@60`; null when unparsable. */
export function parseSignalOption(value: string): WarnSignal | null {
  const m = /^(?:([RB]+):)?(?:SIG)?([A-Z0-9]+)(?:@(\d+))?$/i.exec(value.trim());
  if (m === null) return null;
  const flags = (m[1] ?? "").toUpperCase();
  const raw = (m[2] ?? "").toUpperCase();
  let signal: NodeJS.Signals | undefined;
  if (/^\d+$/.test(raw)) {
    const num = Number(raw);
    signal = (Object.keys(constants.signals) as NodeJS.Signals[]).find((k) => constants.signals[k] === num);
  } else if (`SIG${raw}` in constants.signals) signal = `SIG${raw}` as NodeJS.Signals;
  if (signal === undefined) return null;
  return { signal, seconds: m[3] === undefined ? 60 : Number(m[3]), batchOnly: flags.includes("B") };
}

function apply(out: SbatchDirectives, name: string, value: string): void {
  if (name === "output") out.output = value;
  else if (name === "error") out.error = value;
  else if (name === "time") out.time = value;
  else if (name === "signal") {
    const sig = parseSignalOption(value);
    if (sig !== null) out.signal = sig;
  }
}

/** Reads options as sbatch does: `#SBATCH` lines up to the first command line; later ones win. */
export function parseSbatchOptions(options: readonly string[], into: SbatchDirectives = {}): SbatchDirectives {
  for (let i = 0; i < options.length; i++) {
    const opt = options[i] as string;
    let name: string | undefined;
    let value: string | undefined;
    const long = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(opt);
    const short = /^-([a-zA-Z])(.*)$/.exec(opt);
    if (long !== null) {
      name = long[1];
      value = long[2];
    } else if (short !== null) {
      name = SHORT[short[1] as string];
      value = short[2] === "" ? undefined : short[2];
    }
    if (name === undefined) continue;
    if (value === undefined && ["output", "error", "time", "signal", "job-name", "chdir"].includes(name)) value = options[++i];
    if (value !== undefined) apply(into, name, value);
  }
  return into;
}

export function parseSbatchDirectives(script: string): SbatchDirectives {
  const out: SbatchDirectives = {};
  const lines = script.split("\n");
  for (const [n, raw] of lines.entries()) {
    const line = raw.trim();
    if (n === 0 && line.startsWith("#!")) continue;
    if (line === "") continue;
    if (!line.startsWith("#")) break;
    const m = /^#SBATCH\s+(.*)$/.exec(line);
    if (m !== null) parseSbatchOptions(sbatchLineWords(m[1] ?? ""), out);
  }
  return out;
}

/** Replaces SLURM's filename patterns (%A %a %j %J %x %u %N %%) in an --output/--error value. */
export function expandFilenamePattern(
  pattern: string,
  v: { arrayJobId: string; taskId: string; jobId: string; jobName: string; user: string; node: string },
): string {
  return pattern.replace(/%(\d*)([AajJxuNs%])/g, (whole, pad: string, c: string) => {
    const width = pad === "" ? 0 : Number(pad);
    const num = (s: string): string => s.padStart(width, "0");
    switch (c) {
      case "A":
        return num(v.arrayJobId);
      case "a":
        return num(v.taskId);
      case "j":
        return num(v.jobId);
      case "J":
        return `${num(v.jobId)}.batch`;
      case "x":
        return v.jobName;
      case "u":
        return v.user;
      case "N":
        return v.node;
      case "s":
        return "batch";
      case "%":
        return "%";
      default:
        return whole;
    }
  });
}
