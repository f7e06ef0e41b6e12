import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_V8_FLAGS } from './host.js';

// The tests' agents run with AGENT_V8_FLAGS so that they behave as `weft agent` does when run as a
// program: the built launcher (scripts/bundle-cli.mjs) must give `agent` and `up` the same flags.
test('the launcher gives weft agent and weft up the V8 flags the tests run their agents with', () => {
  const launcher = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'weft.cjs'), 'utf8').split('\n').slice(0, 2).join('\n');
  for (const verb of ['agent', 'up']) {
    const line = new RegExp(`${verb}\\) exec node ([^"]*)"\\$0"`).exec(launcher);
    assert.ok(line, `the launcher has a case for ${verb}: ${launcher.slice(0, 300)}`);
    const flags = (line[1] as string).trim().split(/\s+/);
    for (const f of AGENT_V8_FLAGS) assert.ok(flags.includes(f), `${verb} runs with ${f}: ${flags.join(' ')}`);
  }
});
