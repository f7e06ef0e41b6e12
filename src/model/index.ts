export * from './errors.js';
export * from './ipv4.js';
export * from './schemas.js';
export * from './validate.js';
export * from './objects.js';
export * from './ids.js';
export * from './limits.js';
