/** `zbk cost`'s projection grows with what incrementals add, not with fulls (a first push or a re-base re-stores data). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromObject } from '../../src/config/config.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { createContext, manifestPath } from '../../src/services/context.js';
import { costReport } from '../../src/services/cost.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { simulatePush, snap, tempDir, testKeyring } from '../manifest/helpers.js';

test('cost projection: a recent full is not growth; a recent incremental is', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.cleanup());
  const config = configFromObject({ store: { url: `file://${join(tmp.dir, 'store')}` }, state_dir: tmp.dir } as never, join(tmp.dir, 'config.toml'));
  const store = new MemoryStore({ minPartSize: 1 });
  const keyring = await testKeyring();
  const ctx = createContext(config, passphraseSource(undefined), { store });
  const m = Manifest.open(manifestPath(config));
  try {
    m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
    const s1 = snap('tank/photos@s1', 1n, 10n);
    await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: null, to: s1, volumes: [40_000], at: new Date() });
  } finally {
    m.close();
  }
  const onlyFull = costReport(ctx, { months: 2 });
  assert.deepEqual(onlyFull.projection.map((p) => p.growth), [0, 0], 'the first full is no growth');

  const m2 = Manifest.open(manifestPath(config));
  try {
    await simulatePush(m2, store, keyring, { dataset: 'tank/photos', from: snap('tank/photos@s1', 1n, 10n), to: snap('tank/photos@s2', 2n, 20n), volumes: [4_000], at: new Date() });
  } finally {
    m2.close();
  }
  const withIncremental = costReport(ctx, { months: 2 });
  assert.ok(withIncremental.projection[0]!.growth > 0, 'an incremental is growth');
  assert.ok(withIncremental.projection[1]!.growth > withIncremental.projection[0]!.growth);
});
