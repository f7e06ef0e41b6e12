// The model without its TypeBox schemas: errors, IPv4, object constants, semantic checks, lifetimes and
// limits. index.ts builds every request schema (~200 modules of @sinclair/typebox) when it loads, which a
// client of the API does not need (the server validates); the CLI imports the model through this file
// (issue 13: a client verb starts in <= 150 ms). None of these files may import TypeBox at run time:
// src/cli/startup.test.ts checks what the CLI's bundle contains.
export * from './errors.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './objects.js';
export * from './validate.js';
export * from './durations.js';
export * from './limits.js';
export * from './attach-request.js';
export * from './docker-refusals.js';
