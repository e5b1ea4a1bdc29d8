export { globRegExp, hasWildcard } from "./glob.js";
export { hashFile, hashFileSync, mapLimit, SHA256_HEX, type FileDigest } from "./hash.js";
export { formatBytes } from "./format.js";
export {
  distinctBlobs,
  ensureBlobs,
  layoutWithRepair,
  hashBundle,
  layoutRun,
  missingBlobs,
  parseMissing,
  sendBlobs,
  storeDir,
  STORE_SCRIPTS,
  StoreError,
  type StagedFile,
  type StageOptions,
  type EnsureOutcome,
} from "./staging.js";

export { declaredOutputs, outputGlob, pullDestination, pullLocalOutputs, pullOutputs, PULL_MAX_FILE_BYTES, PULL_MAX_TOTAL_BYTES, type PullOptions, type PullOutcome } from "./pull.js";
export { manageStore, parseAge, type StoreUsage } from "./manage.js";
