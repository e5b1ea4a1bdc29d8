// Command-line options every cluster benchmark takes (bench/submit.ts, bench/batch.ts, bench/load.ts).

/** --only, --up, --no-up and --help, for node:util's parseArgs; add a benchmark's own options to them. */
export const COMMON_OPTIONS = {
  only: { type: "string" },
  "no-up": { type: "boolean", default: false },
  up: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** The sections `--only LIST` names (all when absent), as a predicate; an unknown name is refused with the usage. */
export function chosenSections<S extends string>(only: string | undefined, all: readonly S[], usage: string): (section: S) => boolean {
  const chosen = new Set((only ?? all.join(",")).split(",").map((s) => s.trim()).filter(Boolean));
  for (const s of chosen) if (!(all as readonly string[]).includes(s)) throw new Error(`unknown section ${s}; expected some of ${all.join(",")}\n${usage}`);
  return (section) => chosen.has(section);
}

/** A whole-number option's value, at least `min`; refused with the usage otherwise. */
export function wholeNumber(option: string, text: string, min: number, usage: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${option} wants a whole number >= ${min} (got ${text})\n${usage}`);
  return n;
}
