import type { CompletedState, PlannedStep } from "../../src/index.js";
import type { MiniInspectorResult } from "./inspector.js";
import type { InspectionReport } from "./report.js";

/** Left-aligned columns separated by two spaces; trailing spaces trimmed. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd());
}

/** A number for people: at most 4 decimals, no trailing zeros, no "-0". */
export function num(n: number): string {
  const s = Number(n.toFixed(4)).toString();
  return s === "-0" ? "0" : s;
}

const vec = (v: readonly number[]): string => `(${v.map(num).join(", ")})`;

export function formatReport(report: InspectionReport): string[] {
  const c = report.counts;
  const lines = [
    `model       ${report.model.path} (${report.model.format}, ${report.model.size_bytes} bytes, glTF ${report.asset.version}` +
      `${report.asset.generator ? `, generator "${report.asset.generator}"` : ""})`,
    ...table([
      ["scenes", `${c.scenes}`, "nodes", `${c.nodes}`, "animations", `${c.animations}`],
      ["meshes", `${c.meshes}`, "instances", `${c.mesh_instances}`, "materials", `${c.materials}`],
      ["primitives", `${c.primitives}`, "vertices", `${c.vertices}`, "textures", `${c.textures}`],
      ["triangles", `${c.triangles}`],
    ]),
    report.bounds === null
      ? "bounds      none (no geometry in any scene)"
      : `bounds      min ${vec(report.bounds.min)}  max ${vec(report.bounds.max)}  size ${vec(report.bounds.size)}`,
  ];
  for (const t of report.textures) {
    lines.push(`texture     ${t.name}: ${t.mime_type}, ${t.width ?? "?"}x${t.height ?? "?"}, ${t.size_bytes} bytes`);
  }
  for (const a of report.animations) {
    const targets = a.channels.map((ch) => `${ch.node ?? "?"}.${ch.path}`).join(", ");
    lines.push(`animation   ${a.name}: ${a.channels.length} channels (${targets}), ${num(a.duration_s)} s`);
  }
  if (report.meshes.length > 0) {
    lines.push(
      "",
      ...table([
        ["mesh", "primitives", "vertices", "triangles", "instances", "modes"],
        ...report.meshes.map((m) => [
          m.name,
          `${m.primitives.length}`,
          `${m.vertices}`,
          `${m.triangles}`,
          `${m.instances}`,
          [...new Set(m.primitives.map((p) => p.mode))].join(", "),
        ]),
      ]),
    );
  }
  return lines;
}

/** One line per step that has a recorded state, in the order they ran. */
export function formatSteps(state: CompletedState): string[] {
  const entries = Object.entries(state.step_states ?? {});
  const isLeaf = (key: string): boolean => !entries.some(([k]) => k.startsWith(`${key}.`));
  const rows = entries
    .filter(([key]) => isLeaf(key))
    .map(([key, s]) => [
      key,
      s.success ? "ok" : (s.failure ?? "FAILED"),
      `${s.duration_s.toFixed(3)}s`,
      s.success ? "" : (s.error ?? ""),
    ]);
  return rows.length === 0 ? [] : table([["step", "result", "time", ""], ...rows]);
}

export function formatPlan(plan: readonly PlannedStep[]): string[] {
  return table([
    ["plan", "kind", "action", "missing"],
    ...plan.map((p) => [`${"  ".repeat(p.depth)}${p.key.split(".").pop() ?? p.key}`, p.kind, p.action, p.missing.join(", ")]),
  ]);
}

/** The whole human-readable summary of a run, for stdout. */
export function formatSummary(result: MiniInspectorResult): string {
  const { state } = result;
  const lines: string[] = [];
  const plan = state.meta.plan;
  if (state.meta.dry_run === true && Array.isArray(plan)) {
    lines.push(...formatPlan(plan as PlannedStep[]), "");
  } else {
    if (result.report !== undefined) lines.push(...formatReport(result.report), "");
    lines.push(...formatSteps(state));
    if (result.reportPath !== undefined) lines.push("", `report      ${result.reportPath}`);
  }
  const verdict = state.success ? "ok" : `failed (${state.failure ?? "STEP_FAILED"})`;
  lines.push(`result      ${verdict}, exit ${result.exitCode}${state.meta.dry_run === true ? " (dry run: nothing was run or written)" : ""}`);
  return `${lines.join("\n")}\n`;
}
