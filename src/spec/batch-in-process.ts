/**
 * A batch step run in-process (Pipeline.run): the job wrapper's protocol for
 * ONE item (docs/runtime-contract.md, "Batch steps"): an items file of one
 * line, a report file, and the item's outcome read back from the report.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The same helper the wrapper exports to batch commands (templates/lib.sh `hp_batch_report`). */
const HP_BATCH_REPORT_FN =
  "() { local msg=${3-}; [[ -n ${HPCPIPE_BATCH_REPORT:-} ]] || { printf 'hp_batch_report: HPCPIPE_BATCH_REPORT is not set\\n' >&2 && return 2; }; " +
  "[[ $1 =~ ^[0-9]{1,9}$ && ($2 == ok || $2 == failed) ]] || { printf 'hp_batch_report: usage: hp_batch_report INDEX ok|failed [MESSAGE]\\n' >&2 && return 2; }; " +
  "msg=${msg//[$'\\t\\n\\r']/ }; printf '%s\\t%s\\t%s\\n' \"$1\" \"$2\" \"${msg:0:1000}\" >>\"$HPCPIPE_BATCH_REPORT\"; }";

export interface BatchFiles {
  itemsFile: string;
  reportFile: string;
  /** Environment additions for the command. */
  env: Record<string, string>;
}

/** The map key in a step key `<map key>.<index>.<step...>` (the last `.<index>.` segment), or null. */
export function mapKeyOf(key: string, index: number): string | null {
  const at = key.lastIndexOf(`.${index}.`);
  return at > 0 ? key.slice(0, at) : null;
}

/** Writes the one-item list (output directory `<cwd>/out/<map key>/<index>`, made) and an empty report. */
export async function prepareBatch(
  dir: string,
  cwd: string,
  key: string,
  item: { index: number; value: string },
  publishFile: string,
  needs: Record<string, string>,
): Promise<BatchFiles> {
  const mapKey = mapKeyOf(key, item.index) ?? key;
  const outDir = join(cwd, "out", mapKey, String(item.index));
  await mkdir(outDir, { recursive: true });
  const needsFile = join(dir, "needs.env");
  await writeFile(needsFile, Object.entries(needs).map(([k, v]) => `${k}=${v}\n`).join(""), { mode: 0o600 });
  const itemsFile = join(dir, "items.tsv");
  await writeFile(itemsFile, `${item.index}\t${item.value}\t${publishFile}\t${outDir}\t${needsFile}\n`, { mode: 0o600 });
  const reportFile = join(dir, "report.tsv");
  await writeFile(reportFile, "", { mode: 0o600 });
  return { itemsFile, reportFile, env: { HPCPIPE_BATCH_ITEMS: itemsFile, HPCPIPE_BATCH_REPORT: reportFile, "BASH_FUNC_hp_batch_report%%": HP_BATCH_REPORT_FN } };
}

/** The item's reported outcome: the first protocol line for its index, or null when never reported. */
export async function readReport(reportFile: string, index: number): Promise<{ ok: boolean; message: string } | null> {
  const text = (await readFile(reportFile, "utf8")).slice(0, 16 * 1024 * 1024);
  for (const line of text.split("\n")) {
    const [idx, status, ...rest] = line.replace(/\r$/, "").split("\t");
    if (idx === undefined || !/^[0-9]{1,9}$/.test(idx) || Number(idx) !== index) continue;
    if (status !== "ok" && status !== "failed") continue;
    return { ok: status === "ok", message: rest.join(" ").slice(0, 1000) };
  }
  return null;
}
