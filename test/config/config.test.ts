import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configFromObject } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';

const valid = { store: { url: 's3://bucket/zbk' } };
const withKeys = (patch: Record<string, Record<string, unknown> | unknown>): Record<string, unknown> => {
  const doc: Record<string, unknown> = { ...valid };
  for (const [k, v] of Object.entries(patch)) doc[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...((doc[k] as object) ?? {}), ...v } : v;
  return doc;
};
const refused = (doc: Record<string, unknown>, pattern: RegExp): void => {
  assert.throws(() => configFromObject(doc as never, '/etc/zbk/config.toml'), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
};

test('config: defaults for a minimal file', () => {
  const c = configFromObject(valid as never, '/etc/zbk/config.toml');
  assert.equal(c.store.metaStorageClass, 'STANDARD');
  assert.equal(c.mirrors, 10);
  assert.equal(c.hooks.timeoutSeconds, 300);
});

test('config: values that would break the repository later are refused now, with the key named', () => {
  refused(withKeys({ store: { endpoint: 'localhost:4566' } }), /store\.endpoint must be an http/);
  refused(withKeys({ store: { meta_storage_class: 'DEEP_ARCHIVE' } }), /meta_storage_class must be instantly readable/);
  refused(withKeys({ mirrors: 0 }), /mirrors must be a whole number/);
  refused(withKeys({ mirrors: 2.5 }), /mirrors must be a whole number/);
  refused(withKeys({ hooks: { timeout_seconds: 0 } }), /timeout_seconds must be from 1/);
  refused(withKeys({ upload: { part_size: '1GiB', volume_size: '6TiB' } }), /volume_size must be below 5TiB/);
});

test('config: a webhook URL that does not parse is refused without quoting it (it carries a token)', () => {
  for (const key of ['on_success', 'on_failure']) {
    assert.throws(
      () => configFromObject(withKeys({ hooks: { [key]: 'hc-ping.com/SECRET-TOKEN' } }) as never, '/etc/zbk/config.toml'),
      (e: unknown) => e instanceof ConfigError && e.message.includes(`hooks.${key}`) && !e.message.includes('SECRET-TOKEN'),
    );
  }
  const c = configFromObject(withKeys({ hooks: { on_success: 'https://hc-ping.com/SECRET-TOKEN' } }) as never, '/etc/zbk/config.toml');
  assert.equal(c.hooks.onSuccess, 'https://hc-ping.com/SECRET-TOKEN');
});

test('config: [zfs] protect_base defaults to "bookmark"; "hold" is kept; anything else is refused with the key named', () => {
  assert.equal(configFromObject(valid as never, '/etc/zbk/config.toml').zfs.protectBase, 'bookmark');
  assert.equal(configFromObject(withKeys({ zfs: { protect_base: 'hold' } }) as never, '/etc/zbk/config.toml').zfs.protectBase, 'hold');
  refused(withKeys({ zfs: { protect_base: 'snapshot' } }), /zfs\.protect_base must be "bookmark" or "hold"/);
  refused(withKeys({ zfs: { protect_base: true } }), /zfs\.protect_base: must be a string/);
});

test('config: [[dataset]] raw is "auto", true or false; absent means "auto" (no key written into the dataset entry)', () => {
  const c = configFromObject(
    withKeys({ dataset: [{ name: 'tank/a' }, { name: 'tank/b', raw: true }, { name: 'tank/c', raw: false }, { name: 'tank/d', raw: 'auto' }] }) as never,
    '/etc/zbk/config.toml',
  );
  assert.deepEqual(c.datasets, [{ name: 'tank/a' }, { name: 'tank/b', raw: true }, { name: 'tank/c', raw: false }, { name: 'tank/d', raw: 'auto' }]);
  refused(withKeys({ dataset: [{ name: 'tank/a', raw: 'yes' }] }), /dataset\[0\]\.raw must be "auto", true or false/);
  refused(withKeys({ dataset: [{ name: 'tank/a' }, { name: 'tank/b', raw: 1 }] }), /dataset\[1\]\.raw must be "auto", true or false/);
});
