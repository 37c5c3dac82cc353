import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { priceTable, storagePrice } from '../../src/cost/prices.js';
import { choosePartSize, minPartSizeFor, PROVIDER_NAMES, profilePriceTable, providerProfile } from '../../src/cost/providers/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('aws-deep-archive prices exactly as the default table', () => {
  const t = profilePriceTable(providerProfile('aws-deep-archive'), 'us-east-1', { get_per_1000: 0.001 });
  assert.deepEqual(t, priceTable('us-east-1', { get_per_1000: 0.001 }));
});

test('every profile is listed and an unknown one is a one-line error naming them', () => {
  assert.deepEqual(PROVIDER_NAMES, ['aws-deep-archive', 'aws-glacier', 'scaleway-glacier', 'ovh-cold-archive', 'gcs-archive', 's3-hot']);
  assert.throws(() => providerProfile('azure'), (e: unknown) => e instanceof ConfigError && !e.message.includes('\n') && e.message.includes('scaleway-glacier, ovh-cold-archive'));
});

test('scaleway-glacier: EUR converted at the stated rate, overridable', () => {
  const p = providerProfile('scaleway-glacier');
  const t = profilePriceTable(p, 'fr-par');
  // EUR 0.002/GB-month x 1.1 = $0.0022; restore EUR 0.009/GB x 1.1 = $0.0099; egress EUR 0.01 x 1.1 = $0.011.
  assert.ok(Math.abs(storagePrice(t, 'GLACIER') - 0.0022) < 1e-12);
  assert.ok(Math.abs(t.restore.Bulk.perGB - 0.0099) < 1e-12);
  assert.ok(Math.abs(t.egressTiers[0]!.perGB - 0.011) < 1e-12);
  assert.equal(t.freeEgressGBPerMonth, 75);
  const u = profilePriceTable(p, 'fr-par', { eur_to_usd: 1.2, free_egress_gb_month: 0 });
  assert.ok(Math.abs(storagePrice(u, 'GLACIER') - 0.0024) < 1e-12);
  assert.equal(u.freeEgressGBPerMonth, 0);
  assert.equal(p.restore.semantics, 'days-only');
  assert.equal(p.multipart.maxParts, 1000);
});

test('gcs-archive: 365-day minimum, $0.05/GB retrieval, $0.12/GiB egress per GB, no restore step', () => {
  const p = providerProfile('gcs-archive');
  const t = profilePriceTable(p, 'us-central1');
  assert.equal(t.minStorageDays.DEEP_ARCHIVE, 365);
  assert.equal(t.retrievalPerGB, 0.05);
  // 0.12 / 1.073741824 = 0.111758708...
  assert.ok(Math.abs(t.egressTiers[0]!.perGB - 0.111758708) < 1e-9);
  assert.equal(p.restore.semantics, 'none');
});

test('aws-glacier: free Bulk restores, 90-day minimum; ovh: days only, 180 days', () => {
  const g = profilePriceTable(providerProfile('aws-glacier'), 'us-east-1');
  assert.deepEqual(g.restore.Bulk, { per1000: 0, perGB: 0 });
  assert.equal(g.minStorageDays.GLACIER, 90);
  const o = providerProfile('ovh-cold-archive');
  assert.equal(o.restore.semantics, 'days-only');
  assert.equal(profilePriceTable(o, 'rbx-archive').minStorageDays.DEEP_ARCHIVE, 180);
  assert.equal(providerProfile('s3-hot').restore.semantics, 'none');
});

test('part size: raised to ceil(volume / maxParts) in MiB when unset, refused when configured too small', () => {
  const limits = providerProfile('scaleway-glacier').multipart;
  // 64 GiB / 1,000 = 68,719,477 bytes = 65.536 MiB -> 66 MiB.
  assert.equal(minPartSizeFor(64 * GiB, limits), 66 * MiB);
  assert.deepEqual(choosePartSize(64 * GiB, undefined, 32 * MiB, limits), { partSize: 66 * MiB, raised: true });
  // 4 GiB volumes: 32 MiB parts make 128, within the limit.
  assert.deepEqual(choosePartSize(4 * GiB, undefined, 32 * MiB, limits), { partSize: 32 * MiB, raised: false });
  assert.throws(() => choosePartSize(64 * GiB, 32 * MiB, 32 * MiB, limits), /1,000-part limit: raise part_size to at least 66MiB/);
  // The same 64 GiB volume fits AWS's 10,000 parts at 32 MiB (2,048 parts).
  assert.deepEqual(choosePartSize(64 * GiB, 32 * MiB, 32 * MiB, providerProfile('aws-deep-archive').multipart), { partSize: 32 * MiB, raised: false });
});

test('config: [store] provider defaults the classes, region, addressing and part size; unknown provider is refused', async () => {
  const { configFromObject } = await import('../../src/config/config.js');
  const plain = configFromObject({ store: { url: 's3://b' } }, '/x/config.toml');
  assert.equal(plain.store.provider, 'aws-deep-archive');
  assert.equal(plain.store.dataStorageClass, 'DEEP_ARCHIVE');
  assert.equal(plain.store.region, 'us-east-1');
  assert.equal(plain.store.endpoint, undefined);
  assert.equal(plain.upload.partSize, 32 * MiB);
  const scw = configFromObject({ store: { url: 's3://b', provider: 'scaleway-glacier' }, upload: { volume_size: '64GiB' } }, '/x/config.toml');
  assert.equal(scw.store.dataStorageClass, 'GLACIER');
  assert.equal(scw.store.region, 'fr-par');
  assert.equal(scw.store.endpoint, 'https://s3.fr-par.scw.cloud');
  assert.equal(scw.store.pathStyle, true);
  assert.equal(scw.upload.partSize, 66 * MiB);
  // Every field stays overridable.
  const own = configFromObject({ store: { url: 's3://b', provider: 'scaleway-glacier', region: 'nl-ams', data_storage_class: 'ONEZONE_IA' } }, '/x/config.toml');
  assert.equal(own.store.endpoint, 'https://s3.nl-ams.scw.cloud');
  assert.equal(own.store.dataStorageClass, 'ONEZONE_IA');
  assert.throws(() => configFromObject({ store: { url: 's3://b', provider: 'scaleway-glacier' }, upload: { volume_size: '64GiB', part_size: '32MiB' } }, '/x/config.toml'), /1,000-part limit/);
  assert.throws(() => configFromObject({ store: { url: 's3://b', provider: 'azure' } }, '/x/config.toml'), (e: unknown) => e instanceof ConfigError && /unknown provider "azure" \(known: aws-deep-archive, /.test(e.message));
});

test('zbk init --provider writes the profile fields; an unknown provider exits 2 listing the names', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'zbk-provider-'));
  try {
    writeFileSync(join(dir, 'pp'), 'correct horse battery staple zbk\n');
    const run = (...args: string[]): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ['bin/run.js', 'init', '--store', `file://${dir}/store`, '--config', join(dir, 'config.toml'), '--state-dir', join(dir, 'state'), '--kdf', 'min', ...args], {
        env: { ...process.env, ZBK_TEST_ALLOW_WEAK_KDF: '1', ZBK_PASSPHRASE_FILE: join(dir, 'pp') },
        encoding: 'utf8',
      });
    const bad = run('--provider', 'azure');
    assert.equal(bad.status, 2);
    assert.match(String(bad.stderr), /azure.*aws-deep-archive, aws-glacier, scaleway-glacier, ovh-cold-archive, gcs-archive, s3-hot/);
    const ok = run('--provider', 'scaleway-glacier', '--volume-size', '64GiB');
    assert.equal(ok.status, 0, String(ok.stderr));
    const toml = readFileSync(join(dir, 'config.toml'), 'utf8');
    for (const line of ['provider = "scaleway-glacier"', 'region = "fr-par"', 'endpoint = "https://s3.fr-par.scw.cloud"', 'data_storage_class = "GLACIER"', 'path_style = true', 'part_size = "66MiB"']) {
      assert.ok(toml.includes(line), `${line} in\n${toml}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
