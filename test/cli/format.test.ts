import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, formatBytesPair, formatUSD, formatUSDPair } from '../../src/cli/format.js';
import { BYTES_PER_GB } from '../../src/cost/prices.js';

test('byte sizes are shown in the decimal units prices and allowances use', () => {
  assert.equal(formatBytes(100 * BYTES_PER_GB), '100 GB', 'the free egress allowance reads as itself');
  assert.equal(formatBytes(2 ** 30), '1.07 GB', 'a GiB is not labelled as a GB');
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(5e12), '5 TB');
});

test('amounts below a cent keep two significant digits; compared amounts read differently', () => {
  assert.equal(formatUSD(0), '$0.00');
  assert.equal(formatUSD(1.5), '$1.50');
  assert.equal(formatUSD(12.346), '$12.35');
  assert.equal(formatUSD(0.0004), '$0.0004');
  assert.equal(formatUSD(0.000042), '$0.000042');
  assert.equal(formatUSD(1e-15), 'less than $0.000000000001');
  assert.deepEqual(formatUSDPair(0, 0.00042), ['$0.00', '$0.00042']);
  assert.deepEqual(formatUSDPair(1.234, 1.231), ['$1.234', '$1.231']);
  assert.deepEqual(formatUSDPair(2, 2), ['$2.00', '$2.00']);
  assert.deepEqual(formatBytesPair(25e6, 20e6), ['25 MB', '20 MB']);
  assert.deepEqual(formatBytesPair(20.004e6, 20e6), ['20.004 MB', '20 MB']);
  assert.deepEqual(formatBytesPair(20_000_001, 20_000_000), ['20,000,001 bytes', '20,000,000 bytes']);
});
