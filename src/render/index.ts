export { shQuote, shQuotePath, sbatchLineValue, RenderValueError } from "./quote.js";
export { createEnvironment, loadTemplates, defaultTemplatesDir, templateFiles, COMPILE_OPTIONS } from "./environment.js";
export type { Templates, Template } from "./environment.js";
export { findUnquotedOutput, checkTemplateSource, PRINTING_HELPERS, BLOCK_HELPERS } from "./template-check.js";
export type { TemplateProblem } from "./template-check.js";
export { renderJobScript, renderSubmitScript, libScript, retryLibScript, retryView, jobView, formatIndexList, RUN_ID_PATTERN, JOB_ID_PATTERN } from "./render.js";
export type { ClusterRenderSettings, JobRenderContext, RenderableJob, RenderablePlan, RenderTaskBody } from "./render.js";
