import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigFileError, configFromObject, loadConfig } from '../../src/config/config.js';
import { KeyLines } from '../../src/config/locate.js';
import { CONFIG_SCHEMA, editDistance, nearest } from '../../src/config/schema.js';
import { ConfigError, ExitCode } from '../../src/errors.js';

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
  refused(withKeys({ zfs: { protect_base: true } }), /zfs\.protect_base must be a string, got a boolean/);
});

test('config: [consolidate] timing defaults to "interval"; "payback" is kept; anything else is refused with the key named', () => {
  assert.equal(configFromObject(valid as never, '/etc/zbk/config.toml').consolidate.timing, 'interval');
  assert.equal(configFromObject(withKeys({ consolidate: { timing: 'payback' } }) as never, '/etc/zbk/config.toml').consolidate.timing, 'payback');
  refused(withKeys({ consolidate: { timing: 'asap' } }), /consolidate\.timing must be "interval" or "payback"/);
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

// ---- Unknown keys, misspelt keys, wrong types, TOML syntax: file:line, the key, the nearest known key ----

const dir = mkdtempSync(join(tmpdir(), 'zbk-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
/** Write `lines` as a config file; returns its path. */
const configFile = (...lines: string[]): string => {
  const path = join(dir, `config-${++files}.toml`);
  writeFileSync(path, lines.join('\n') + '\n', { mode: 0o600 });
  return path;
};
const HEAD = ['state_dir = "/var/lib/zbk-test"', '', '[store]', 'url = "s3://bucket/zbk"', ''];
/** The error loadConfig throws for `path` (fails the test when it loads). */
const loadError = (path: string): ConfigFileError => {
  try {
    loadConfig(path);
  } catch (err) {
    assert.ok(err instanceof ConfigFileError, `not a ConfigFileError: ${String(err)}`);
    assert.equal(err.exitCode, ExitCode.CONFIG);
    assert.ok(!err.message.includes('\n'), 'one line');
    return err;
  }
  return assert.fail(`${path} loaded`);
};
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('config: keep_lst = 7 is an error naming file, line, key and keep_last, not keep_last = 1 (a typo never falls back to a default)', () => {
  const path = configFile(...HEAD, '[retention]', 'keep_lst = 7', 'keep_monthly = 12');
  const err = loadError(path);
  assert.equal(err.message, `${path}:7: unknown key \`keep_lst\` in [retention] — did you mean \`keep_last\`?`);
  assert.equal(err.code, 'CONFIG_UNKNOWN_KEY');
  assert.equal(err.line, 7);
  assert.equal(err.fix, `rename \`keep_lst\` to \`keep_last\` (line 7 of ${path})`);
  // Spelt right, it loads, with its value.
  assert.equal(loadConfig(configFile(...HEAD, '[retention]', 'keep_last = 7')).retention.keepLast, 7);
});

test('config: an unknown section is an error at its header line, with the nearest section', () => {
  const path = configFile(...HEAD, '[retension]', 'keep_last = 7');
  assert.equal(loadError(path).message, `${path}:6: unknown section [retension] — did you mean [retention]?`);
  assert.equal(loadError(path).code, 'CONFIG_UNKNOWN_SECTION');
  const arr = configFile(...HEAD, '[[datasets]]', 'name = "tank/a"');
  assert.equal(loadError(arr).message, `${arr}:6: unknown section [[datasets]] — did you mean [[dataset]]?`);
  const far = configFile(...HEAD, '[backups]', 'keep_last = 7');
  assert.match(loadError(far).message, new RegExp(`^${escape(far)}:6: unknown section \\[backups\\] \\(known sections: \\[store\\], .*\\[retention\\].*\\[\\[dataset\\]\\]\\)$`));
});

test('config: a value of the wrong type is an error naming file, line, key and the type wanted (keep_last = "7")', () => {
  const path = configFile(...HEAD, '[retention]', 'keep_last = "7"');
  const err = loadError(path);
  assert.equal(err.message, `${path}:7: retention.keep_last must be a number, got a string`);
  assert.equal(err.code, 'CONFIG_TYPE');
  assert.equal(err.fix, `write \`keep_last\` as a number (without quotes) (line 7 of ${path})`);
  const sec = configFile('retention = 7', ...HEAD);
  assert.equal(loadError(sec).message, `${sec}:1: [retention] must be a table, got an integer`);
  const cmd = configFile(...HEAD, '[zfs]', 'zfs = ["sudo", 1]');
  assert.equal(loadError(cmd).message, `${cmd}:7: zfs.zfs must be a command name or an array of arguments, got an array`);
});

test('config: an unknown key inside a [[dataset]] entry names the entry and its line (snapshot_patern)', () => {
  const path = configFile(...HEAD, '[[dataset]]', 'name = "tank/a"', 'snapshot_pattern = "^daily"', '', '[[dataset]]', 'name = "tank/b"', 'snapshot_patern = "^daily"');
  const err = loadError(path);
  assert.equal(err.message, `${path}:12: unknown key \`snapshot_patern\` in [[dataset]] "tank/b" — did you mean \`snapshot_pattern\`?`);
  // Inline tables count the same way; a wrong type in one names it by index.
  const inline = configFile(HEAD[0]!, 'dataset = [', '  { name = "tank/a" },', '  { name = "tank/b", raw = 1 },', ']', ...HEAD.slice(1));
  assert.equal(loadError(inline).message, `${inline}:4: dataset[1].raw must be "auto", true or false, got an integer`);
});

test('config: a TOML syntax error gives file:line:col and the reason, never the line itself (it may hold a webhook token)', () => {
  const path = configFile(...HEAD, '[hooks]', 'on_success = https://hc-ping.com/SECRET-TOKEN');
  const err = loadError(path);
  assert.equal(err.message, `${path}:7:14: invalid TOML: invalid value`);
  assert.equal(err.code, 'CONFIG_SYNTAX');
  assert.equal(err.column, 14);
  assert.equal(err.fix, `fix the TOML syntax at line 7, column 14 of ${path}`);
  assert.ok(!err.message.includes('SECRET') && !err.fix.includes('SECRET'));
});

test('config: a misspelt secret key is named, its value never quoted', () => {
  const path = configFile(...HEAD, '[hooks]', 'on_sucess = "https://hc-ping.com/SECRET-TOKEN"', 'on_failure = 42');
  const err = loadError(path);
  assert.equal(err.message, `${path}:7: unknown key \`on_sucess\` in [hooks] — did you mean \`on_success\`? (and 1 more problem in this file)`);
  assert.ok(!err.message.includes('SECRET') && !err.fix.includes('SECRET'));
  const typed = configFile(...HEAD, '[hooks]', 'on_failure = ["https://hc-ping.com/SECRET-TOKEN"]');
  assert.equal(loadError(typed).message, `${typed}:7: hooks.on_failure must be a string, got an array`);
});

test('config: a key in the wrong section says where it belongs; a far-off key lists the known ones', () => {
  const top = configFile(...HEAD, '[retention]', 'keep_last = 7', 'mirrors = 3');
  assert.equal(loadError(top).message, `${top}:8: unknown key \`mirrors\` in [retention] — it belongs at the top of the file, before the first [section]`);
  const store = configFile(...HEAD.slice(0, 4), 'keep_last = 7');
  assert.equal(loadError(store).message, `${store}:5: unknown key \`keep_last\` in [store] — it belongs in [retention]`);
  const far = configFile(...HEAD, '[retention]', 'forever = true');
  assert.equal(loadError(far).message, `${far}:7: unknown key \`forever\` in [retention] (known keys: keep_last, keep_monthly, keep_yearly)`);
  const price = configFile(...HEAD, '[prices]', 'deep_archive_gb_mnth = 0.001');
  assert.match(loadError(price).message, /:7: unknown key `deep_archive_gb_mnth` in \[prices\] — did you mean `deep_archive_gb_month`\?$/);
  // Without a source (init builds the document from flags) the same problems are refused, without a line.
  refused(withKeys({ retention: { keep_lst: 7 } }), /^unknown key `keep_lst` in \[retention\] — did you mean `keep_last`\?$/);
});

test('config: of several problems the first by line is reported, with the count of the others', () => {
  const path = configFile(...HEAD, '[retention]', 'keep_last = "7"', '', '[[dataset]]', 'name = "tank/a"', 'nmae = "x"', '', '[upload]', 'parralel = 2');
  assert.equal(loadError(path).message, `${path}:7: retention.keep_last must be a number, got a string (and 2 more problems in this file)`);
});

test('config: value errors carry file:line too', () => {
  const path = configFile(...HEAD, '[zfs]', 'protect_base = "snapshot"');
  assert.equal(loadError(path).message, `${path}:7: zfs.protect_base must be "bookmark" or "hold"`);
  const size = configFile(...HEAD, '[upload]', 'part_size = "1MiB"');
  assert.equal(loadError(size).message, `${size}:7: upload.part_size must be at least 5MiB (S3 minimum part size)`);
});

test('config: every key the schema declares loads (the loader reads each one: schema and loader cannot drift)', () => {
  const sample: Record<string, Record<string, unknown>> = {
    root: { state_dir: '/var/lib/zbk-test', passphrase_file: '/etc/zbk/pass', mirrors: 3 },
    store: {
      provider: 'aws-deep-archive',
      url: 's3://b/p',
      endpoint: 'http://localhost:4566',
      region: 'eu-west-1',
      path_style: true,
      data_storage_class: 'GLACIER',
      meta_storage_class: 'STANDARD_IA',
      checksum_calculation: 'when_required',
    },
    upload: { part_size: '8MiB', volume_size: '1GiB', parallel: 3, limit: '2MiB/s' },
    retry: { retries: 2, min_timeout_ms: 10, max_timeout_ms: 20 },
    zfs: { zfs: ['sudo', 'zfs'], zpool: 'zpool', protect_base: 'hold' },
    btrfs: { btrfs: ['sudo', 'btrfs'] },
    dataset: { name: 'tank/a', snapshot_pattern: '^daily', raw: false },
    hooks: { pre_push: ['true'], post_push: ['true'], timeout_seconds: 60, on_success: 'https://h/1', on_failure: 'https://h/2', webhook_format: 'ntfy', include_names: false },
    restore: { free_egress_gb: 50, reserve_gb: 5, tier: 'Standard', staging_dir: '/tmp/staging', limit: '00:00-12:00=1MiB/s, 12:00-24:00=off' },
    retention: { keep_last: 7, keep_monthly: 24, keep_yearly: 10 },
    consolidate: { timing: 'payback' },
    prices: Object.fromEntries(Object.keys(CONFIG_SCHEMA.prices).map((k) => [k, 0.5])),
  };
  for (const [section, keys] of Object.entries(CONFIG_SCHEMA)) {
    assert.deepEqual(Object.keys(sample[section] ?? {}).sort(), Object.keys(keys).sort(), `the sample of [${section}] covers exactly its keys`);
  }
  const { root, dataset, ...tables } = sample;
  const c = configFromObject({ ...root, ...tables, dataset: [dataset] }, '/etc/zbk/config.toml');
  assert.equal(c.retention.keepMonthly, 24);
  assert.equal(c.consolidate.timing, 'payback');
  assert.equal(c.store.checksumCalculation, 'when_required');
  assert.deepEqual(c.zfs.zfs, ['sudo', 'zfs']);
  assert.equal(c.restore.freeEgressGB, 50);
  assert.equal(c.hooks.includeNames, false);
  assert.equal(c.upload.limit?.windows[0]?.rate, 2 * 1024 * 1024);
  assert.equal(c.restore.limit?.windows.length, 2);
  assert.equal(Object.keys(c.prices).length, Object.keys(CONFIG_SCHEMA.prices).length);
});

test('config: key lines follow dotted, quoted and inline keys, multi-line strings and comments', () => {
  const src = [
    '# [retention] in a comment',
    'state_dir = "/x" # keep_lst = 1',
    "passphrase_file = '''",
    '[retention]',
    'keep_lst = 1',
    "'''",
    'retention.keep_yearly = 2',
    '[store]',
    '"url" = "s3://b"',
    'region = "a" ; ', // not TOML: the scanner stops there without hanging
  ].join('\n');
  const l = KeyLines.scan(src);
  assert.equal(l.line(['state_dir']), 2);
  assert.equal(l.line(['passphrase_file']), 3);
  assert.equal(l.line(['retention', 'keep_yearly']), 7);
  assert.equal(l.line(['retention', 'keep_lst']), 7, 'not the line inside the string: the section');
  assert.equal(l.line(['store', 'url']), 9);
  const arr = KeyLines.scan(['[[dataset]]', 'name = "a"', '[[dataset]]', 'name = "b"', 'raw = true', '[zfs]', 'zfs = [', '  "sudo",', '  "zfs",', ']'].join('\n'));
  assert.equal(arr.line(['dataset', 1, 'raw']), 5);
  assert.equal(arr.line(['dataset', 0]), 1);
  assert.equal(arr.line(['zfs', 'zfs', 1]), 9);
});

test('config: suggestions are the nearest known key by edit distance (a transposition counts 1), only when near', () => {
  assert.equal(editDistance('keep_lst', 'keep_last'), 1);
  assert.equal(editDistance('teir', 'tier'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(nearest('keep_lst', ['keep_last', 'keep_monthly', 'keep_yearly']), 'keep_last');
  assert.equal(nearest('Keep-Last', ['keep_last']), 'keep_last');
  assert.equal(nearest('forever', ['keep_last', 'keep_monthly', 'keep_yearly']), undefined);
});
