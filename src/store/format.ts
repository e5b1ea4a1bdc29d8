/** Bytes for people: the one rule (src/core/units.ts). */
export { formatBytes } from "../core/units.js";
