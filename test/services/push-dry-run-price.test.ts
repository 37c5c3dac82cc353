/**
 * `zbk push --dry-run` prices the stream it would send with the configured
 * provider's table (issue #20 item 2): the same 100 GB full is worth the
 * Scaleway Glacier price (EUR 0.002/GB-month at the stated 1.1 rate, free
 * requests) on one config and the Deep Archive price on the other; the
 * figures are computed by hand here, not by the model under test.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromObject } from '../../src/config/config.js';
import { dryRunResult } from '../../src/services/push/result.js';
import { approx, DA_OVERHEAD_MONTH } from '../cost/approx.js';
import { tempDir } from '../manifest/helpers.js';

const GB = 1e9;

function dryRun(store: Record<string, unknown>, referenced: number) {
  const tmp = tempDir();
  try {
    const config = configFromObject({ store: { url: `file://${join(tmp.dir, 'store')}`, ...store }, state_dir: tmp.dir } as never, join(tmp.dir, 'config.toml'));
    const target = { shortName: 's1', referenced } as never;
    const r = dryRunResult(config, { dataset: 'tank/photos', target, base: null, reason: null, sendFlags: [], estimate: null, started: Date.now() });
    return { ...r, volumes: Math.ceil(referenced / config.upload.volumeSize) };
  } finally {
    tmp.cleanup();
  }
}

test('push --dry-run prices a 100 GB full with the configured provider, not with AWS', () => {
  const scw = dryRun({ provider: 'scaleway-glacier' }, 100 * GB);
  assert.equal(scw.costBytes, 100 * GB);
  approx(scw.estimatedMonthlyCost, 100 * 0.002 * 1.1, 'Scaleway Glacier: 100 GB × EUR 0.002 × 1.1 = $0.22 a month');
  approx(scw.estimatedUploadCost, 0, 'Scaleway requests are free');

  const aws = dryRun({}, 100 * GB);
  assert.ok(aws.volumes > 1);
  approx(aws.estimatedMonthlyCost, 100 * 0.00099 + aws.volumes * DA_OVERHEAD_MONTH, 'Deep Archive: 100 GB × $0.00099 plus 40 KB of overhead per volume');
  assert.ok(aws.estimatedUploadCost > 0, 'AWS bills the requests of an upload');
});
