/* global process */
// One item, step 1: the mini inspector's seven steps on "$model". Its report goes to
// out/reports/<i>.json (i = $HPCPIPE_TASK, the item's index); when it fails, out/reports/<i>.error.json
// holds which step failed and why, the same line goes to stderr, and the exit status is the
// inspector's (4 for a missing, truncated or corrupt model).
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { loadToolkit, publish, runMain } from "./toolkit.mjs";

await runMain("inspect", async () => {
  const model = process.env.model;
  const index = process.env.HPCPIPE_TASK;
  if (!model || !index) throw new Error("expected $model and $HPCPIPE_TASK (run this as an item of the map)");
  const { runMiniInspector, failureLine } = await loadToolkit();
  mkdirSync("out/reports", { recursive: true });
  const out = `out/reports/${index}.json`;
  const errorOut = `out/reports/${index}.error.json`;
  rmSync(out, { force: true });
  rmSync(errorOut, { force: true });

  const result = await runMiniInspector({ model, out });
  if (result.state.success && result.report) {
    const c = result.report.counts;
    publish({ inspect_report: out, triangles: c.triangles });
    process.stdout.write(`${model}: ${c.meshes} meshes, ${c.primitives} primitives, ${c.vertices} vertices, ${c.triangles} triangles -> ${out}\n`);
    return 0;
  }
  const failedKey = typeof result.state.meta.failed_step === "string" ? result.state.meta.failed_step : null;
  const line = failureLine(model, result);
  writeFileSync(
    errorOut,
    `${JSON.stringify(
      {
        schema: "hpcpipe.batch_validate.inspect_error/1",
        model,
        index: Number(index),
        failed_step: failedKey?.split(".").pop() ?? null,
        failure: result.state.failure ?? "STEP_FAILED",
        error: line.slice(model.length + 2),
      },
      null,
      2,
    )}\n`,
  );
  publish({ inspect_report: errorOut, inspect_error: line.slice(model.length + 2) });
  process.stderr.write(`inspect: ${line}\n`);
  return result.exitCode;
});
