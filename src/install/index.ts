export { LAYOUT, UNITS, DEFAULT_LISTEN } from './layout.js';
export { planInstall, localUrl, type InstallPlan, type InstallOptions, type InstallMode, type PlannedDir, type PlannedFile } from './plan.js';
export { applyInstall, checkInstall, type ApplyOptions, type InstallCheck, type InstallReport } from './apply.js';
export { applyUninstall, planUninstall, readManifest, type UninstallOptions, type UninstallPlan, type UninstallReport } from './uninstall.js';
export { ensureLocalJoin, agentHostName, type LocalJoinOptions } from './local-join.js';
export { nodeFs, type InstallFs, type Entry } from './fs.js';
export { sha256, octal, type Manifest } from './manifest.js';
export { checkTrusted, trustedPaths, type TrustOptions } from './trust.js';
