/**
 * `zbk cost compare` prices this repository on every provider profile: the
 * workload comes from its manifest, each provider with its own table; the
 * figures of one provider are checked by hand.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromObject } from '../../src/config/config.js';
import { PROVIDER_NAMES } from '../../src/cost/providers/index.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { createContext, manifestPath } from '../../src/services/context.js';
import { costCompare } from '../../src/services/cost-compare.js';
import { costReport } from '../../src/services/cost.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { UsageError } from '../../src/errors.js';
import { approx } from '../cost/approx.js';
import { simulatePush, snap, tempDir, testKeyring } from '../manifest/helpers.js';

const DAY = 86_400_000;

test('cost compare: the repository (a full of 2 volumes, 3 small incrementals in 90 days) on every provider', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.cleanup());
  const config = configFromObject({ store: { url: `file://${join(tmp.dir, 'store')}` }, state_dir: tmp.dir } as never, join(tmp.dir, 'config.toml'));
  const store = new MemoryStore({ minPartSize: 1 });
  const keyring = await testKeyring();
  const now = Date.now();
  const ctx = createContext(config, passphraseSource(undefined), { store, now: () => new Date(now) });
  const m = Manifest.open(manifestPath(config));
  try {
    m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
  } finally {
    m.close();
  }
  assert.throws(() => costCompare(ctx), (e: unknown) => e instanceof UsageError && /nothing is stored yet/.test(e.message), 'an empty repository is refused in one line');
  const m1 = Manifest.open(manifestPath(config));
  try {
    const m = m1;
    let prev = snap('tank/photos@s0', 1n, 10n);
    await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: null, to: prev, volumes: [40_000, 40_000], at: new Date(now - 80 * DAY) });
    for (let i = 1; i <= 3; i++) {
      const next = snap(`tank/photos@s${i}`, BigInt(i + 1), BigInt(10 + i));
      await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: prev, to: next, volumes: [1_000], at: new Date(now - (60 - 10 * i) * DAY) });
      prev = next;
    }
  } finally {
    m1.close();
  }

  const r = costCompare(ctx, { months: 1 });
  assert.deepEqual([...r.providers.map((p) => p.provider)].sort(), [...PROVIDER_NAMES].sort(), 'every profile, once');
  for (let i = 1; i < r.providers.length; i++) assert.ok(r.providers[i - 1]!.totalWithRestore <= r.providers[i]!.totalWithRestore, 'cheapest first');
  assert.equal(r.cheapest, r.providers[0]!.provider);
  assert.equal(r.provider, 'aws-deep-archive');
  assert.deepEqual(r.providers.filter((p) => p.current).map((p) => p.provider), ['aws-deep-archive']);

  // The workload is the manifest's: what is stored, and the incrementals of the last 90 days (3 volumes = 1 a month) as growth.
  const stored = costReport(ctx, { months: 1 });
  const storedBytes = stored.byDataset.reduce((n, l) => n + l.storedBytes, 0);
  assert.ok(storedBytes > 83_000, `stored ${storedBytes}`);
  approx(r.workload.initialGB, storedBytes / 1e9, 'initial GB');
  approx(r.workload.growthGBPerMonth, stored.recentGrowthBytesPerMonth / 1e9, 'growth');
  assert.ok(r.workload.growthGBPerMonth * 1e9 > 1_000 && r.workload.growthGBPerMonth * 1e9 < 83_000 / 3, 'growth: a third of the incrementals a month');
  assert.equal(r.workload.pushesPerMonth, 1);

  // The configured provider's "now" is what `zbk cost` bills.
  approx(r.providers.find((p) => p.provider === 'aws-deep-archive')!.monthlyNow, stored.monthly, 'now on AWS');

  // GCS Archive by hand, one month: the data as one full of G GB, one volume of one 32 MiB part.
  const G = storedBytes / 1e9;
  const gcs = r.providers.find((p) => p.provider === 'gcs-archive')!;
  approx(gcs.storage, G * 0.0012, 'storage: G × $0.0012');
  // Create + 1 part + Complete at the ARCHIVE rate ($0.05/1000), 2 metadata PUTs at STANDARD ($0.005/1000).
  approx(gcs.requests, 3 * 0.00005 + 2 * 0.000005, 'requests');
  assert.equal(gcs.earlyDeletion, 0);
  // No free egress: the restore is one month; read fee $0.05/GB, one GET at $0.05/1000, egress $0.12/GiB.
  assert.equal(gcs.restoreMonths, 1);
  approx(gcs.restoreCost, G * 0.05 + 0.00005 + (G * 0.12) / 1.073741824, 'restore');
  approx(gcs.totalWithRestore, gcs.total + gcs.restoreCost, 'total + restore');
  // Scaleway: 4 GiB volumes in 32 MiB parts are 128 parts, within its 1,000: the configured part size stands.
  assert.equal(r.providers.find((p) => p.provider === 'scaleway-glacier')!.partSize, 32 * 1024 * 1024);

  assert.throws(() => costCompare(ctx, { months: 0 }), (e: unknown) => e instanceof UsageError);
});
