/**
 * The parsers against outputs captured from real OpenZFS 2.3.2 in the test
 * guest (test/fixtures/zfs/openzfs-2.3/, made by scripts/openzfs/capture-fixtures).
 * The hand-written openzfs-* fixtures (parse.test.ts) stay for the edge
 * cases a capture does not produce (guids above 2^53, rows out of order).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { detectCapabilities } from '../../src/zfs/capabilities.js';
import { classifyZfsFailure } from '../../src/zfs/errors.js';
import {
  bookmarksFromProperties,
  parseGetOutput,
  parseHoldsOutput,
  parseSendEstimate,
  parseZfsVersion,
  snapshotsFromList,
  snapshotsFromProperties,
} from '../../src/zfs/parse.js';
import { fixturesDir } from '../helpers/paths.js';

const fx = (name: string): string => readFileSync(join(fixturesDir, 'zfs', 'openzfs-2.3', name), 'utf8');

test('OpenZFS 2.3 (captured): zfs version → openzfs with every capability', () => {
  assert.equal(parseZfsVersion(fx('version.txt')), '2.3.2-2~bpo12+2');
  const caps = detectCapabilities({ ok: true, text: fx('version.txt') }, '');
  assert.equal(caps.implementation, 'openzfs');
  assert.equal(caps.rawSend && caps.bookmarks && caps.holdsList && caps.sendEstimate && caps.resumeTokens, true);
});

test('OpenZFS 2.3 (captured): get -Hp -d 1 lists snapshots, a bookmark and a child; each parser takes only its own', () => {
  const rows = parseGetOutput(fx('get-snapshots.txt'));
  const snaps = snapshotsFromProperties(rows, 'tank/photos');
  assert.deepEqual(
    snaps.map((s) => [s.name, s.guid, s.createtxg, s.used, s.referenced]),
    [
      ['tank/photos@s1', 4410637568055390821n, 11n, 14336, 1075200],
      ['tank/photos@s2', 7335125057451152268n, 12n, 0, 1602560],
    ],
  );
  // The bookmark row has `used -`: it must not reach the snapshot parser.
  const marks = bookmarksFromProperties(rows, 'tank/photos');
  assert.deepEqual(marks.map((b) => [b.name, b.shortName, b.guid, b.createtxg]), [['tank/photos#zbk-s1', 'zbk-s1', 4410637568055390821n, 11n]]);
  assert.equal(marks[0]!.guid, snaps[0]!.guid, 'a bookmark carries the guid of its snapshot');
});

test('OpenZFS 2.3 (captured): get -t bookmark and list -Hp -t snapshot,bookmark', () => {
  const marks = bookmarksFromProperties(parseGetOutput(fx('get-bookmarks.txt')), 'tank/photos');
  assert.deepEqual(marks.map((b) => b.name), ['tank/photos#zbk-s1']);
  const snaps = snapshotsFromList(fx('list-snapshots-bookmarks.txt'), 'tank/photos');
  assert.deepEqual(snaps.map((s) => [s.shortName, s.guid]), [
    ['s1', 4410637568055390821n],
    ['s2', 7335125057451152268n],
  ]);
});

test('OpenZFS 2.3 (captured): holds -H with a date timestamp', () => {
  const holds = parseHoldsOutput(fx('holds.txt'));
  assert.deepEqual(holds.map((h) => [h.snapshot, h.tag]).sort(), [
    ['tank/photos@s2', 'zbk'],
    ['tank/photos@s2', 'zbk-send'],
  ]);
});

test('OpenZFS 2.3 (captured): send -nP estimates, full, incremental and from a bookmark', () => {
  assert.equal(parseSendEstimate(fx('send-estimate-full.txt')), 1590544);
  assert.equal(parseSendEstimate(fx('send-estimate-incremental.txt')), 534352);
  assert.equal(parseSendEstimate(fx('send-estimate-from-bookmark.txt')), 534352);
});

test('OpenZFS 2.3 (captured): stderr of a missing snapshot and of a held destroy are typed', () => {
  const missing = classifyZfsFailure('zfs send', { argv: ['zfs', 'send'], exitStatus: 1, signal: null, stderrTail: fx('send-missing-stderr.txt') });
  assert.equal(missing.code, 'ZFS_NOT_FOUND');
  const held = classifyZfsFailure('zfs destroy', { argv: ['zfs', 'destroy'], exitStatus: 1, signal: null, stderrTail: fx('destroy-held-stderr.txt') });
  assert.equal(held.code, 'ZFS_BUSY');
});
