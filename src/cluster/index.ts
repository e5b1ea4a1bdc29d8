export {
  ConfigError,
  clusterConfigSchema,
  connectionSchema,
  partitionLimitsSchema,
  parseClusterConfig,
  checkResources,
  gpusRequested,
  memoryToMb,
  splitWorkdir,
  toCompileTarget,
  CLUSTER_NAME_PATTERN,
  DEFAULT_WORKDIR,
  WORKDIR_PATTERN,
} from "./config.js";
export type { ClusterConfig } from "./config.js";
export { loadClusterConfig, findClusterConfig, listClusterConfigs, defaultSearchDirs } from "./load.js";
export type { LoadClusterConfigOptions } from "./load.js";
