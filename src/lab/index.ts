export { labUp, labDown, labRun, readLab, alive, DEFAULT_LAB_DIR, LAB_PREFIX, type LabState } from './lab.js';
export { buildTopology, destroyTopology, type Topology } from './topology.js';
