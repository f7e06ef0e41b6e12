export { labUp, labDown, labRun, readLab, alive, labDockerSocket, labDockerApi, DEFAULT_LAB_DIR, LAB_PREFIX, type LabState, type LabDaemon } from './lab.js';
export { buildTopology, destroyTopology, type Topology } from './topology.js';
export { labRespawn, labPid, type LabRole } from './restart.js';
