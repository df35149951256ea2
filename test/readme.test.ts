// The README's CLI reference must equal what the command definitions generate (run `npm run docs` after changing a
// command), and the README must keep its two fresh-machine commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { readmeWithReference } from '../src/cli/reference.js';

const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8');

test('README CLI reference is up to date with the command definitions', () => {
  assert.equal(readme, readmeWithReference(readme), 'README.md is stale: run `npm run docs`');
});

test('README keeps the two fresh-machine commands and .ci/run runs the test one', () => {
  const ci = readFileSync(join(packageRoot(), '.ci', 'run'), 'utf8');
  assert.match(readme, /bash scripts\/setup\.sh && npm test/);
  assert.match(ci, /bash scripts\/setup\.sh/);
  assert.match(ci, /npm test/);
});

test('.ci/run installs Debian chromium so the serve page browser tests run in CI', () => {
  const ci = readFileSync(join(packageRoot(), '.ci', 'run'), 'utf8');
  assert.match(ci, /apt-get install -y[^\n]*\bchromium\b/);
  assert.ok(ci.indexOf('chromium') < ci.indexOf('npm test'), 'installed before the tests run');
});
