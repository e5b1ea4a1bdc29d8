/**
 * The parts of a saved plan (plan.json) and result (result.json) a report
 * walks, checked with zod so a damaged file is a clear error naming it.
 */
import { z } from "zod";
import { CompletedState } from "../core/completed-state.js";
import type { CompletedStateJson } from "../core/completed-state.js";
import { issuesText } from "../core/preview.js";
import type { PlanNode } from "../plan/plan.js";
import type { ReportPlan } from "./tree.js";

const planNodeSchema: z.ZodType<PlanNode> = z.lazy(() =>
  z.looseObject({
    key: z.string().min(1).max(4096),
    name: z.string().max(256),
    kind: z.enum(["step", "pipeline", "group", "map"]),
    parallel: z.boolean(),
    continue_on_error: z.boolean(),
    signature: z.string().max(64),
    provides: z.array(z.string()),
    items: z.number().int().nonnegative().optional(),
    item_key: z.string().optional(),
    continue_on_item_error: z.boolean().optional(),
    children: z.array(planNodeSchema),
  }),
) as unknown as z.ZodType<PlanNode>;

const reportPlanFileSchema = z.looseObject({
  format: z.literal(1),
  runId: z.string().min(1).max(64),
  pipeline: z.string().min(1).max(100),
  cluster: z.string().max(64),
  tree: planNodeSchema,
  items: z.record(z.string(), z.array(z.string())),
});

export interface ReportPlanFile extends ReportPlan {
  runId: string;
  pipeline: string;
  cluster: string;
}

function issues(error: z.ZodError): string {
  return issuesText(error.issues);
}

/** Checks a parsed plan.json; returns the problem (naming the field) instead of throwing. */
export function parseReportPlan(json: unknown): { ok: true; plan: ReportPlanFile } | { ok: false; error: string } {
  const parsed = reportPlanFileSchema.safeParse(json);
  if (!parsed.success) return { ok: false, error: issues(parsed.error) };
  const { runId, pipeline, cluster, tree, items } = parsed.data;
  return { ok: true, plan: { runId, pipeline, cluster, tree, items } };
}

/** Checks a parsed result.json (a merged CompletedState with step_states). */
export function parseReportResult(json: unknown): { ok: true; result: CompletedStateJson } | { ok: false; error: string } {
  try {
    const state = CompletedState.fromJSON(json);
    if (state.step_states === undefined) return { ok: false, error: "step_states: missing (not the merged result of a run)" };
    return { ok: true, result: state.toJSON() };
  } catch (err) {
    return { ok: false, error: err instanceof z.ZodError ? issues(err) : err instanceof Error ? err.message : String(err) };
  }
}
