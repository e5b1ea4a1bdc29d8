import type { Renderer } from "../compiler/compile.js";
import { libScript, loadTemplates, retryLibScript, renderJobScript, renderSubmitScript } from "../render/index.js";

/** The compiler's renderer over the Handlebars templates: the package's own, or a user's directory. */
export function templateRenderer(templatesDir?: string): Renderer {
  const templates = loadTemplates(templatesDir);
  return {
    job: (job, context) => renderJobScript(job, context, templates),
    submit: (plan) => renderSubmitScript(plan, templates),
    lib: () => libScript(),
    retryLib: () => retryLibScript(),
  };
}
