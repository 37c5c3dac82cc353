/**
 * The default state directory is per repository: `<base>/<repository id>/`,
 * the id a hash of the normalized store URL, so configs of different
 * buckets, prefixes or directories never share one and two configs of the
 * same repository do. An explicit `state_dir` is used as it is.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromObject, defaultStateBase, normalizedStoreUrl, repositoryId } from '../../src/config/config.js';
import { openStore } from '../../src/store/open-store.js';

const load = (url: string, extra: Record<string, unknown> = {}) => configFromObject({ store: { url }, ...extra } as never, '/etc/zbk/config.toml');

test('state dir: the default is <base>/<16 hex digits of the store URL hash>, one per repository', () => {
  const base = defaultStateBase();
  const a = load('s3://bucket-a/zbk');
  assert.match(a.stateDir, /^.+\/[0-9a-f]{16}$/);
  assert.equal(a.stateDir, join(base, repositoryId('s3://bucket-a/zbk')));
  assert.equal(a.legacyStateDir, base, 'the old shared default is where a manifest to move is looked for');
  assert.equal(a.restore.stagingDir, join(a.stateDir, 'restore'));

  // Another bucket, another prefix, another directory: another directory each.
  const dirs = ['s3://bucket-a/zbk', 's3://bucket-b/zbk', 's3://bucket-a/other', 's3://bucket-a', 'file:///mnt/a', 'file:///mnt/b'].map((u) => load(u).stateDir);
  assert.equal(new Set(dirs).size, dirs.length);

  // The same repository spelt differently in two configs: the same directory.
  for (const [x, y] of [
    ['s3://bucket-a/zbk', 's3://bucket-a/zbk/'],
    ['s3://bucket-a/a/b', 's3://bucket-a//a//b/'],
    ['s3://bucket-a', 's3://bucket-a/'],
    ['file:///mnt/a', 'file:///mnt/a/'],
    ['file:///mnt/a', 'file:///mnt/x/../a'],
  ] as const) {
    assert.equal(load(x).stateDir, load(y).stateDir, `${x} and ${y}`);
  }
});

test('state dir: an explicit state_dir is used as it is, and nothing is moved into it', () => {
  const c = load('s3://bucket-a/zbk', { state_dir: '/srv/zbk-state' });
  assert.equal(c.stateDir, '/srv/zbk-state');
  assert.equal(c.legacyStateDir, undefined);
  assert.equal(c.restore.stagingDir, '/srv/zbk-state/restore');
});

test('state dir: the normalized store URL is the one the store reports and the manifest records', () => {
  for (const url of ['s3://bucket-a/zbk', 's3://bucket-a/zbk/', 's3://bucket-a', 's3://bucket-a//x//y/', 'file:///mnt/a', 'file:///mnt/a/', 'file:///mnt/x/../a', 'file:///']) {
    const store = openStore({ url, region: 'us-east-1', pathStyle: false, dataStorageClass: 'DEEP_ARCHIVE', metaStorageClass: 'STANDARD', checksumCalculation: 'when_supported' });
    assert.equal(normalizedStoreUrl(url), store.url, url);
  }
});
