import type { CompiledPlan, PlanJob } from "../plan/plan.js";
import { taskCount } from "../plan/task-map.js";

function arrayLabel(job: PlanJob): string {
  const a = job.array;
  if (!a) return job.fused ? `fused(${job.steps.length})` : "single";
  const chunk = a.chunks > 1 ? ` chunk ${a.chunk + 1}/${a.chunks} offset ${a.offset}` : "";
  // A resumed or cached run's array runs only its remapped tasks (indices), not `count`.
  return `array[${taskCount(job)}]${a.throttle !== null ? `%${a.throttle}` : ""}${chunk}`;
}

function resourcesLabel(job: PlanJob): string {
  return Object.entries(job.resources)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`)
    .join(" ");
}

function runsLabel(job: PlanJob): string {
  const r = job.retry;
  if (r !== undefined) {
    const escalate = [r.timeFactorPermille > 0 ? `time x${r.timeFactorPermille / 1000} on TIMEOUT` : "", r.memFactorPermille > 0 ? `mem x${r.memFactorPermille / 1000} on OUT_OF_MEMORY` : ""].filter((x) => x !== "");
    const per = r.isArray === 1 ? (r.itemsPerTask > 1 ? " failed tasks (their failed items)" : " failed tasks") : "";
    return `retry controller of ${r.of}: up to ${r.retries} retries of its${per || " job"} on ${r.on === "ALL" ? "any failure" : r.on}${escalate.length > 0 ? `, ${escalate.join(", ")}` : ""}`;
  }
  if (job.shape === "map" && job.map) {
    const packed = (job.map.itemsPerTask ?? 1) > 1 ? ` (${job.map.itemsPerTask} items per task)` : "";
    const batch = new Set(job.bodies.flatMap((b) => b.steps.filter((st) => st.batch === true).map((st) => st.key)));
    const steps = job.steps.map((k) => (batch.has(k) ? `${k} [batch]` : k));
    const how = batch.size > 0 ? "step by step over the task's items; [batch]: one command for them all" : "per item";
    return `map ${job.map.key}: ${steps.join(" -> ")} ${how}${packed}`;
  }
  if (job.shape === "group") {
    const per = job.groupPack?.itemsPerTask ?? 1;
    const packed = per > 1 ? ` (${per} children per task)` : "";
    return `group${packed}: ${job.bodies.map((b, i) => `[${i}] ${b.unitKey ?? b.steps.map((s) => s.key).join(" -> ")}`).join(", ")}`;
  }
  return job.steps.join(" -> ");
}

/** The plan as a person reads it: jobs in submission order, arrays, dependencies, fusions. */
export function formatPlanText(plan: CompiledPlan): string {
  const lines: string[] = [];
  lines.push(`pipeline ${plan.pipeline} (signature ${plan.signature}) for cluster ${plan.cluster}, run ${plan.runId}`);
  lines.push(`run directory: ${plan.layout.runDir}`);
  const tasks = plan.jobs.reduce((n, j) => n + taskCount(j), 0);
  lines.push(`${plan.jobs.length} job(s), ${tasks} task(s), in submission order:`);
  for (const job of plan.jobs) {
    const after = job.dependencies.length > 0 ? `  after ${job.dependencies.map((d) => `${d.job}(${d.type})`).join(" ")}` : "";
    lines.push(`  ${job.id}  ${arrayLabel(job).padEnd(12)} ${runsLabel(job)}${after}`);
    const res = resourcesLabel(job);
    if (res) lines.push(`        ${res}`);
  }
  const fusions = plan.jobs.filter((j) => j.fused);
  if (fusions.length > 0) {
    lines.push("fusions (consecutive steps with equal resources share one job; state files stay per step):");
    for (const job of fusions) lines.push(`  ${job.id}: ${(job.fused ?? []).join(" + ")}`);
  } else {
    lines.push("fusions: none");
  }
  return `${lines.join("\n")}\n`;
}

/** The plan as JSON without the script texts (use `submit --dry-run` for those). */
export function formatPlanJson(plan: CompiledPlan): string {
  const slim = { ...plan, jobs: plan.jobs.map(({ script: _script, ...rest }) => rest), files: Object.keys(plan.files) };
  return `${JSON.stringify(slim, null, 2)}\n`;
}

/** A Mermaid flowchart of the job graph: solid edges afterok, dotted afterany. */
export function formatPlanMermaid(plan: CompiledPlan): string {
  const esc = (s: string): string => s.replace(/["<>]/g, (c) => ({ '"': "#quot;", "<": "#lt;", ">": "#gt;" })[c] ?? c);
  const lines = ["flowchart TD"];
  // The texts are escaped; the line break between them is Mermaid's own markup.
  for (const job of plan.jobs) lines.push(`  ${job.id}["${esc(`${job.id} ${arrayLabel(job)}`)}<br/>${esc(runsLabel(job))}"]`);
  for (const job of plan.jobs) {
    for (const d of job.dependencies) lines.push(`  ${d.job} ${d.type === "afterok" ? "-->" : "-.->"} ${job.id}`);
  }
  return `${lines.join("\n")}\n`;
}

export type PlanFormat = "text" | "json" | "mermaid";

export function formatPlan(plan: CompiledPlan, format: PlanFormat): string {
  if (format === "json") return formatPlanJson(plan);
  if (format === "mermaid") return formatPlanMermaid(plan);
  return formatPlanText(plan);
}
