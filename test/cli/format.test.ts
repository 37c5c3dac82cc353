import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes } from '../../src/cli/format.js';
import { BYTES_PER_GB } from '../../src/cost/prices.js';

test('byte sizes are shown in the decimal units prices and allowances use', () => {
  assert.equal(formatBytes(100 * BYTES_PER_GB), '100 GB', 'the free egress allowance reads as itself');
  assert.equal(formatBytes(2 ** 30), '1.07 GB', 'a GiB is not labelled as a GB');
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(5e12), '5 TB');
});
