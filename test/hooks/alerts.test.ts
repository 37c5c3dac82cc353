/**
 * The pieces of push-failure alerting and of `zbk check`'s output that need
 * no CLI: the push status file, what counts as a failure, redaction of what
 * is sent out, and the monitoring-plugins line and perfdata format.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, LockedError, UsageError, WrongPassphraseError } from '../../src/errors.js';
import { CHECK_EXIT, formatCheckLine, formatPerfDatum, worstStatus } from '../../src/services/check.js';
import { redactSecrets } from '../../src/services/hooks.js';
import { failureFacts, isInvocationError } from '../../src/services/push/failure.js';
import { datasetPushStatus, pushStatusPath, readPushStatus, recordPushOutcome } from '../../src/services/push-status.js';
import { passphraseSource } from '../../src/services/passphrase.js';

test('push status: a failure stays until a later success; written whole, 0600, per dataset', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-status-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const state = join(dir, 'state');
  assert.deepEqual(readPushStatus(state), { v: 1, datasets: {} }, 'no file: nothing recorded');
  recordPushOutcome(state, ['tank/a', 'tank/b'], { ok: false, at: new Date('2025-01-01T00:00:00Z'), code: 'LOCKED', exitCode: 8, message: 'locked\nsecond line' });
  let s = readPushStatus(state);
  assert.deepEqual(datasetPushStatus(s, 'tank/a').lastFailure, { at: '2025-01-01T00:00:00.000Z', code: 'LOCKED', exitCode: 8, message: 'locked' });
  assert.equal(datasetPushStatus(s, 'tank/a').lastSuccess, null);
  recordPushOutcome(state, ['tank/a'], { ok: true, at: new Date('2025-01-01T01:00:00Z') });
  s = readPushStatus(state);
  assert.equal(datasetPushStatus(s, 'tank/a').lastSuccess, '2025-01-01T01:00:00.000Z');
  assert.equal(datasetPushStatus(s, 'tank/a').lastFailure?.code, 'LOCKED', 'the failure is kept; check compares the times');
  assert.equal(datasetPushStatus(s, 'tank/b').lastSuccess, null, 'tank/b untouched');
  assert.equal(statSync(pushStatusPath(state)).mode & 0o777, 0o600);
  assert.ok(!readFileSync(pushStatusPath(state), 'utf8').includes('second line'));

  writeFileSync(pushStatusPath(state), '{"v": 1, "datasets": ');
  assert.throws(() => readPushStatus(state), (e: Error & { code?: string }) => e.code === 'PUSH_STATUS_UNREADABLE');
  recordPushOutcome(state, ['tank/a'], { ok: true, at: new Date('2025-01-02T00:00:00Z') });
  assert.equal(datasetPushStatus(readPushStatus(state), 'tank/a').lastSuccess, '2025-01-02T00:00:00.000Z', 'a damaged file is replaced');
});

test('a mistyped command line is not a backup failure; no snapshot to push is', () => {
  assert.equal(isInvocationError(new UsageError('snapshot tank/a@x does not exist', 'NO_SUCH_SNAPSHOT')), true);
  assert.equal(isInvocationError(new UsageError('--snapshot applies to one dataset at a time')), true);
  assert.equal(isInvocationError(new UsageError('tank/a has no snapshots', 'NO_SNAPSHOTS')), false);
  assert.equal(isInvocationError(new WrongPassphraseError()), false);
  assert.equal(isInvocationError(new LockedError('held')), false);
  assert.equal(isInvocationError(new ConfigError('no repository', 'NO_REPOSITORY')), false);
  assert.equal(isInvocationError(new Error('boom')), false);
});

test('messages sent out lose secrets: webhook URLs, URL credentials and queries, access keys, secret env values', () => {
  const hooks = { onSuccess: 'https://hc-ping.com/SECRET-UUID', onFailure: undefined };
  const env = { AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG', ZBK_PASSPHRASE: 'hunter2-horse' };
  const text = redactSecrets(
    'ping https://hc-ping.com/SECRET-UUID/fail failed; GET http://user:pa55@minio.local:9000/b/k?X-Amz-Signature=abc&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP ' +
      'key AKIAABCDEFGHIJKLMNOP secret wJalrXUtnFEMI/K7MDENG pass hunter2-horse',
    hooks,
    env,
  );
  for (const secret of ['SECRET-UUID', 'pa55', 'user:', 'X-Amz-Signature', 'abc&', 'ABCDEFGHIJKLMNOP', 'wJalrXUtnFEMI', 'hunter2']) {
    assert.ok(!text.includes(secret), `${secret} left in: ${text}`);
  }
  assert.match(text, /hc-ping\.com/);
  assert.match(text, /http:\/\/minio\.local:9000\/b\/k\?…/);
  const facts = failureFacts(new WrongPassphraseError(), { hooks: { timeoutSeconds: 1, webhookFormat: 'healthchecks', includeNames: true } });
  assert.deepEqual(facts, { code: 'WRONG_PASSPHRASE', exitCode: 4, message: 'wrong passphrase: it does not open the key file' });
});

test('check output: monitoring-plugins exit codes, state precedence, one line with label=value[UOM];warn;crit;min;max', () => {
  assert.deepEqual(CHECK_EXIT, { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 });
  assert.equal(worstStatus('UNKNOWN', 'CRITICAL'), 'CRITICAL', 'an unknown part never masks a CRITICAL');
  assert.equal(worstStatus('WARNING', 'UNKNOWN'), 'WARNING');
  assert.equal(worstStatus('OK', 'UNKNOWN'), 'UNKNOWN');
  assert.equal(worstStatus('OK', 'OK'), 'OK');
  assert.equal(formatPerfDatum({ label: 'age', value: 3600, uom: 's', warn: null, crit: 93600, min: 0, max: null }), 'age=3600s;;93600;0');
  assert.equal(formatPerfDatum({ label: 'age', value: 3600, uom: 's', warn: 7200, crit: 93600, min: 0, max: 100000 }), 'age=3600s;7200;93600;0;100000');
  // A btrfs path as a label: quoted, a single quote doubled.
  assert.equal(formatPerfDatum({ label: "/mnt/a=b'c_age", value: 1, uom: 's', warn: null, crit: null, min: null, max: null }), "'/mnt/a=b''c_age'=1s");
  assert.equal(formatPerfDatum({ label: 'datasets', value: 2, uom: '', warn: null, crit: null, min: null, max: null }), 'datasets=2');
  assert.equal(formatPerfDatum({ label: 'a b', value: 1, uom: '', warn: null, crit: 0, min: 0, max: null }), "'a b'=1;;0;0");
  const line = formatCheckLine('WARNING', 'tank/a: x | y\nz', [
    { label: 'age', value: 5, uom: 's', warn: 4, crit: 10, min: 0, max: null },
    { label: 'datasets', value: 1, uom: '', warn: null, crit: null, min: 0, max: null },
  ]);
  assert.equal(line, 'ZBK WARNING - tank/a: x y z | age=5s;4;10;0 datasets=1;;;0');
  assert.equal(formatCheckLine('UNKNOWN', 'no config', []), 'ZBK UNKNOWN - no config');
});

test('a passphrase typed into passphrase_file is never echoed: messages name the key (and config file) or the variable', async (t) => {
  const saved = process.env.ZBK_PASSPHRASE_FILE;
  t.after(() => (saved === undefined ? delete process.env.ZBK_PASSPHRASE_FILE : (process.env.ZBK_PASSPHRASE_FILE = saved)));
  delete process.env.ZBK_PASSPHRASE_FILE;
  const typed = 'my secret passphrase 123';
  await assert.rejects(passphraseSource(typed, undefined, '/etc/zbk/config.toml').get('open'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'PASSPHRASE_FILE');
    assert.equal(e.message, 'cannot read the passphrase file named by passphrase_file in /etc/zbk/config.toml (ENOENT)');
    return true;
  });
  assert.ok(!passphraseSource(typed, undefined, '/etc/zbk/config.toml').describe().includes(typed));
  process.env.ZBK_PASSPHRASE_FILE = 'hunter2hunter2';
  await assert.rejects(passphraseSource(undefined).get('open'), /^ConfigError: cannot read the passphrase file named by ZBK_PASSPHRASE_FILE \(ENOENT\)$|cannot read the passphrase file named by ZBK_PASSPHRASE_FILE \(ENOENT\)$/);
  process.env.ZBK_PASSPHRASE_FILE = '/nonexistent/zbk-pass';
  await assert.rejects(passphraseSource(undefined).get('open'), /cannot read the passphrase file named by ZBK_PASSPHRASE_FILE \(\/nonexistent\/zbk-pass\) \(ENOENT\)$/);
});
