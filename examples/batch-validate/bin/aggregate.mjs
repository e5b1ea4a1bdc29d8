/* global process */
// The last step: one row per model of models.txt (in the order of the map's items, so row i is
// item i), from out/validation/<i>.json and out/reports/<i>.json (or <i>.error.json); writes
// out/summary.csv and out/summary.json and publishes the counts. An item that left no validation
// report (it never ran, or was killed) is a row with status "no_result". Needs Node only.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";

const ITEMS = process.argv[2] ?? "models.txt";
const COLUMNS = [
  "index", "path", "status", "valid", "errors", "warnings", "infos", "hints", "first_error",
  "inspected", "inspect_error", "meshes", "primitives", "vertices", "triangles", "materials", "textures", "animations", "bytes",
];

/** The map's items: one a line; blank lines and lines starting with # skipped; a trailing \r dropped (as hpcpipe reads items_file). */
function readItems(file) {
  return readFileSync(file, "utf8")
    .split("\n")
    .map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l))
    .filter((l) => l.trim() !== "" && !l.startsWith("#"));
}

function readJson(path) {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    return { unreadable: `${path}: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function row(index, path) {
  const validation = readJson(`out/validation/${index}.json`);
  const report = readJson(`out/reports/${index}.json`);
  const inspectError = readJson(`out/reports/${index}.error.json`);
  const issues = validation?.issues;
  const errors = issues ? issues.messages.filter((m) => m.severity === 0) : [];
  const first = errors[0];
  const counts = report && !report.unreadable ? report.counts : null;
  let bytes = null;
  try {
    bytes = statSync(path).size;
  } catch {
    bytes = null;
  }
  return {
    index,
    path,
    status: !issues ? "no_result" : issues.numErrors === 0 ? "valid" : "invalid",
    valid: issues ? issues.numErrors === 0 : false,
    errors: issues?.numErrors ?? null,
    warnings: issues?.numWarnings ?? null,
    infos: issues?.numInfos ?? null,
    hints: issues?.numHints ?? null,
    first_error: first ? `${first.code}: ${first.message}` : validation?.unreadable ?? null,
    inspected: counts !== null,
    inspect_error: counts !== null ? null : (inspectError?.error ?? report?.unreadable ?? inspectError?.unreadable ?? "no report"),
    meshes: counts?.meshes ?? null,
    primitives: counts?.primitives ?? null,
    vertices: counts?.vertices ?? null,
    triangles: counts?.triangles ?? null,
    materials: counts?.materials ?? null,
    textures: counts?.textures ?? null,
    animations: counts?.animations ?? null,
    bytes,
    error_codes: errors.map((m) => m.code),
  };
}

function csvField(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Writes beside the target, then renames over it: readers see the old file or the new one. */
function writeAtomic(path, text) {
  const temp = `${path}.tmp.${process.pid}`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}

const rows = readItems(ITEMS).map((path, i) => row(i, path));
const sum = (key) => rows.reduce((total, r) => total + (r[key] ?? 0), 0);
const errorCodes = {};
for (const r of rows) for (const code of r.error_codes) errorCodes[code] = (errorCodes[code] ?? 0) + 1;
const summary = {
  schema: "hpcpipe.batch_validate.summary/1",
  files: rows.length,
  valid: rows.filter((r) => r.status === "valid").length,
  invalid: rows.filter((r) => r.status === "invalid").length,
  no_result: rows.filter((r) => r.status === "no_result").length,
  inspected: rows.filter((r) => r.inspected).length,
  inspect_failed: rows.filter((r) => !r.inspected).length,
  errors: sum("errors"),
  warnings: sum("warnings"),
  infos: sum("infos"),
  hints: sum("hints"),
  meshes: sum("meshes"),
  vertices: sum("vertices"),
  triangles: sum("triangles"),
  bytes: sum("bytes"),
  error_codes: Object.fromEntries(Object.entries(errorCodes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  rows: rows.map(({ error_codes: _codes, ...r }) => r),
};

mkdirSync("out", { recursive: true });
writeAtomic("out/summary.csv", `${[COLUMNS.join(","), ...rows.map((r) => COLUMNS.map((c) => csvField(r[c])).join(","))].join("\n")}\n`);
writeAtomic("out/summary.json", `${JSON.stringify(summary, null, 2)}\n`);
if (process.env.HPCPIPE_PUBLISH) {
  appendFileSync(
    process.env.HPCPIPE_PUBLISH,
    `summary_csv=out/summary.csv\nsummary_json=out/summary.json\nmodels_valid=${summary.valid}\nmodels_invalid=${summary.invalid}\nmodels_no_result=${summary.no_result}\n`,
  );
}

const lines = [
  `${summary.files} models: ${summary.valid} valid, ${summary.invalid} invalid, ${summary.no_result} without a result`,
  `validator: ${summary.errors} errors, ${summary.warnings} warnings, ${summary.infos} infos, ${summary.hints} hints`,
  `inspector: ${summary.inspected} inspected, ${summary.inspect_failed} failed; ${summary.meshes} meshes, ${summary.vertices} vertices, ${summary.triangles} triangles`,
];
const codes = Object.entries(summary.error_codes);
if (codes.length > 0) lines.push(`error codes: ${codes.map(([c, n]) => `${c} ${n}`).join(", ")}`);
for (const r of rows.filter((x) => x.status !== "valid")) {
  lines.push(`  ${r.status.padEnd(9)} ${r.path}: ${r.status === "no_result" ? "no validation report (the item did not run, or was stopped)" : r.first_error}`);
}
lines.push("-> out/summary.csv, out/summary.json");
process.stdout.write(`${lines.join("\n")}\n`);
