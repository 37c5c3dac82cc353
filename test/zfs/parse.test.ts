import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { detectCapabilities, parseUsage } from '../../src/zfs/capabilities.js';
import { ZfsError } from '../../src/zfs/errors.js';
import {
  bookmarksFromProperties,
  parseGetOutput,
  parseHoldsOutput,
  parseSendEstimate,
  parseU64,
  parseZfsVersion,
  snapshotsFromList,
  snapshotsFromProperties,
} from '../../src/zfs/parse.js';
import { fixturesDir } from '../helpers/paths.js';

const fx = (name: string): string => readFileSync(join(fixturesDir, 'zfs', name), 'utf8');

test('OpenZFS get output: own snapshots only, ordered by createtxg, guids exact', () => {
  const snaps = snapshotsFromProperties(parseGetOutput(fx('openzfs-get-snapshots.txt')), 'tank/photos');
  assert.deepEqual(
    snaps.map((s) => s.shortName),
    ['autosnap_2026-11-01_00:00:01_daily', 'autosnap_2026-11-02_00:00:03_daily'],
  );
  const [a, b] = snaps as [(typeof snaps)[0], (typeof snaps)[0]];
  assert.equal(a.name, 'tank/photos@autosnap_2026-11-01_00:00:01_daily');
  assert.equal(a.dataset, 'tank/photos');
  assert.equal(a.guid, 9007199254740993n);
  assert.equal(a.createtxg, 89001n);
  assert.equal(a.creation, 1793491201);
  assert.equal(b.guid, 17893426011943622401n);
  assert.equal(b.used, 1048576);
  assert.equal(b.referenced, 52600000000);
});

test('zfs-fuse get output (captured): child dataset excluded, values exact', () => {
  const snaps = snapshotsFromProperties(parseGetOutput(fx('zfs-fuse-get-snapshots.txt')), 'zexp/a');
  assert.deepEqual(
    snaps.map((s) => [s.name, s.guid, s.createtxg]),
    [
      ['zexp/a@s1', 1512081221551275090n, 14n],
      ['zexp/a@s2', 9114000053603634190n, 24n],
    ],
  );
});

test('guid above 2^53 survives parse → JSON/string → parse → comparison unchanged', () => {
  const [snap] = snapshotsFromProperties(parseGetOutput(fx('openzfs-get-snapshots.txt')), 'tank/photos');
  // 2^53 + 1: a Number would silently become 2^53.
  assert.equal(Number(snap!.guid), 9007199254740992);
  const stored = JSON.stringify({ guid: snap!.guid.toString() });
  const back = BigInt((JSON.parse(stored) as { guid: string }).guid);
  assert.equal(back, snap!.guid);
  assert.equal(stored, '{"guid":"9007199254740993"}');
  assert.notEqual(back, 9007199254740992n);
});

test('bookmarks parse from the same get output', () => {
  const bms = bookmarksFromProperties(parseGetOutput(fx('openzfs-get-snapshots.txt')), 'tank/photos');
  assert.deepEqual(
    bms.map((b) => [b.name, b.shortName, b.guid]),
    [['tank/photos#zbk-base', 'zbk-base', 9007199254740993n]],
  );
});

test('list -Hp output: own snapshots only, exact', () => {
  const snaps = snapshotsFromList(fx('openzfs-list-snapshots.txt'), 'tank/photos');
  assert.deepEqual(
    snaps.map((s) => [s.shortName, s.guid, s.createtxg, s.used]),
    [
      ['autosnap_2026-11-01_00:00:01_daily', 9007199254740993n, 89001n, 0],
      ['autosnap_2026-11-02_00:00:03_daily', 17893426011943622401n, 90210n, 1048576],
    ],
  );
});

test('send -nP estimate: full and incremental size lines; none → null', () => {
  assert.equal(parseSendEstimate(fx('openzfs-send-estimate-full.txt')), 52613349376);
  assert.equal(parseSendEstimate(fx('openzfs-send-estimate-incremental.txt')), 1102848);
  assert.equal(parseSendEstimate(''), null);
});

test('holds -H output', () => {
  assert.deepEqual(
    parseHoldsOutput(fx('openzfs-holds.txt')).map((h) => h.tag),
    ['zbk', 'keep-forever'],
  );
});

test('malformed output is a ZFS_PARSE error, never a guess', () => {
  const isParse = (e: unknown): boolean => e instanceof ZfsError && e.code === 'ZFS_PARSE';
  assert.throws(() => parseGetOutput('tank/a\tguid\n'), isParse);
  // Human-readable numbers (what zfs-fuse's `list -o guid` prints) must not be accepted.
  assert.throws(() => parseU64('1.31E', 'guid'), isParse);
  assert.throws(() => parseU64('18446744073709551616', 'guid'), isParse);
  assert.equal(parseU64('18446744073709551615', 'guid'), 18446744073709551615n);
  const rows = parseGetOutput('tank/a@s\ttype\tsnapshot\ntank/a@s\tguid\t12\n');
  assert.throws(() => snapshotsFromProperties(rows, 'tank/a'), isParse);
  assert.throws(() => parseSendEstimate('size\t12.5G\n'), isParse);
});

test('capabilities: zfs-fuse detected from its captured version error and usage', () => {
  const caps = detectCapabilities({ ok: false, text: fx('zfs-fuse-version-stderr.txt') }, fx('zfs-fuse-usage.txt'));
  assert.deepEqual(caps, {
    implementation: 'zfs-fuse',
    version: null,
    rawSend: false,
    compressedSend: false,
    largeBlocks: false,
    embeddedData: false,
    sendEstimate: false,
    resumeTokens: false,
    bookmarks: false,
    holdsList: false,
    listParsable: false,
  });
  const u = parseUsage(fx('zfs-fuse-usage.txt'));
  assert.deepEqual([...u.sendFlags].sort(), ['D', 'I', 'R', 'i', 'p']);
});

test('capabilities: OpenZFS detected from zfs version', () => {
  assert.equal(parseZfsVersion(fx('openzfs-version.txt')), '2.2.2-0ubuntu9.1');
  const caps = detectCapabilities({ ok: true, text: fx('openzfs-version.txt') }, '');
  assert.equal(caps.implementation, 'openzfs');
  assert.equal(caps.version, '2.2.2-0ubuntu9.1');
  assert.ok(caps.rawSend && caps.sendEstimate && caps.bookmarks && caps.holdsList && caps.listParsable && caps.resumeTokens);
});

test('capabilities: an unknown zfs is judged only by the flags its usage documents', () => {
  const usage = '\tsend [-Lce] [-[iI] snapshot] <snapshot>\n\treceive [-vnFs] <filesystem>\n\tlist [-Hp] [-o prop]\n\tholds [-r] <snapshot>\n';
  const caps = detectCapabilities({ ok: false, text: 'zfs: command not found: version' }, usage);
  assert.equal(caps.implementation, 'unknown');
  assert.equal(caps.compressedSend, true);
  assert.equal(caps.largeBlocks, true);
  assert.equal(caps.rawSend, false);
  assert.equal(caps.resumeTokens, false, 'receive -s without send -t is not resumable');
  assert.equal(caps.listParsable, true);
  assert.equal(caps.holdsList, true);
});
