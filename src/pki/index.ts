export * from './x509.js';
export * from './join.js';
