import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode, UsageError } from '../../src/errors.js';
import {
  assertBookmarkName,
  assertDatasetName,
  assertHoldTag,
  assertShortSnapshotName,
  assertSnapshotName,
  InvalidNameError,
  splitSnapshotName,
} from '../../src/zfs/names.js';

test('valid dataset, snapshot, bookmark names and tags pass unchanged', () => {
  for (const n of ['tank', 'tank/photos', 'tank/a-b/c_d.e:f', 'rpool/data/immich']) assert.equal(assertDatasetName(n), n);
  for (const n of ['tank/photos@autosnap_2026-11-02_00:00:03_daily', 'tank@s1']) assert.equal(assertSnapshotName(n), n);
  assert.equal(assertBookmarkName('tank/photos#zbk-1'), 'tank/photos#zbk-1');
  assert.equal(assertShortSnapshotName('daily-2026.11.02'), 'daily-2026.11.02');
  assert.equal(assertHoldTag('zbk'), 'zbk');
  assert.deepEqual(splitSnapshotName('tank/a/b@s'), { dataset: 'tank/a/b', shortName: 's' });
});

test('dangerous or malformed dataset names are rejected with a typed usage error', () => {
  const bad = [
    'tank/a;rm -rf /',
    '-R',
    'tank/../x',
    'tank/./x',
    '',
    'tank/a b',
    'tank//a',
    'tank/',
    '/tank',
    'tank/-x',
    'tank/a\nb',
    'tank/a\u0000',
    'tank/$(id)',
    'tank/`id`',
    'tank/a|b',
    'tank/a@s',
    'tank/a#b',
    '1tank/a',
    `tank/${'x'.repeat(251)}`,
  ];
  for (const n of bad) {
    assert.throws(
      () => assertDatasetName(n),
      (e: unknown) => e instanceof InvalidNameError && e instanceof UsageError && e.exitCode === ExitCode.USAGE && e.code === 'INVALID_NAME',
      `accepted ${JSON.stringify(n)}`,
    );
  }
});

test('snapshot names need exactly one @ in the right place', () => {
  for (const n of ['tank/a', 'tank/a@', '@s', 'tank/a@b@c', 'tank/a@-R', 'tank/a@s/x', 'tank/a@s#b', 'tank/a@..', 'tank/a@s 1', 'tank/a@s;x']) {
    assert.throws(() => assertSnapshotName(n), InvalidNameError, `accepted ${JSON.stringify(n)}`);
  }
  for (const n of ['', '-x', 'a@b', 'a/b', '.', 'a b']) assert.throws(() => assertShortSnapshotName(n), InvalidNameError);
  for (const n of ['', '-f', 'a b', 'a;b', '..']) assert.throws(() => assertHoldTag(n), InvalidNameError);
  for (const n of ['tank/a', 'tank/a#', 'tank/a@s#b', 'tank/a#b#c']) assert.throws(() => assertBookmarkName(n), InvalidNameError);
});

test('the message names the bad input, quoted so control characters are visible, on one line', () => {
  try {
    assertDatasetName('tank/a\nrm -rf /');
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof InvalidNameError);
    assert.ok(!e.message.includes('\n'), 'message must be one line');
    assert.ok(e.message.includes('"tank/a\\nrm -rf /"'), e.message);
    assert.equal(e.input, 'tank/a\nrm -rf /');
  }
});

test('names over 255 characters are rejected, 255 accepted', () => {
  const ok = `tank/${'x'.repeat(250)}`;
  assert.equal(ok.length, 255);
  assert.equal(assertDatasetName(ok), ok);
  assert.throws(() => assertDatasetName(`${ok}y`), /longer than 255/);
  assert.throws(() => assertSnapshotName(`${ok}@s`), /longer than 255/);
});
