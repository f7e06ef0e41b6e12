export * from './x509.js';
export * from './join.js';
export * from './files.js';
