/**
 * The btrfs parsers against outputs captured from real btrfs-progs 6.2
 * (test/fixtures/btrfs/, made by test/fixtures/btrfs/capture.ts), plus the
 * edge cases a capture does not produce.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { detectBtrfsCapabilities } from '../../src/btrfs/capabilities.js';
import { classifyBtrfsFailure } from '../../src/btrfs/errors.js';
import {
  parseBtrfsTime,
  parseBtrfsVersion,
  parseMountinfo,
  parseReadOnlyProperty,
  parseReceivedName,
  parseSubvolumeList,
  parseSubvolumeShow,
  topLevelPath,
} from '../../src/btrfs/parse.js';
import { assertBtrfsName, assertBtrfsPath, relativeBelow } from '../../src/btrfs/paths.js';
import { InvalidNameError } from '../../src/zfs/names.js';
import { fixturesDir } from '../helpers/paths.js';

const fx = (name: string): string => readFileSync(join(fixturesDir, 'btrfs', name), 'utf8');

const DATA = 'd74c543a-98c4-1f46-907d-fb0ded033ba1';
const S1 = '938cfe4e-9994-9b43-aee1-c8116f248483';
const S2 = '94f9915d-ad80-b144-9b6d-d661b317c6cf';

test('show: a subvolume with its snapshots, a read-only snapshot, the top level, a received subvolume', () => {
  const data = parseSubvolumeShow(fx('show-subvolume.txt'));
  assert.equal(data.fsPath, 'data');
  assert.equal(data.uuid, DATA);
  assert.equal(data.parentUuid, null);
  assert.equal(data.receivedUuid, null);
  assert.equal(data.subvolumeId, 256n);
  assert.equal(data.otransid, 7n);
  assert.equal(data.generation, 9n);
  assert.equal(data.readOnly, false);
  assert.deepEqual(data.snapshots, ['snaps/s1', 'snaps/s2', 'rw']);
  assert.equal(data.creation, Date.UTC(2026, 11, 2, 5, 1, 40) / 1000);

  const s1 = parseSubvolumeShow(fx('show-snapshot.txt'));
  assert.deepEqual([s1.fsPath, s1.name, s1.uuid, s1.parentUuid, s1.readOnly, s1.snapshots], ['snaps/s1', 's1', S1, DATA, true, []]);

  const top = parseSubvolumeShow(fx('show-top-level.txt'));
  assert.deepEqual([top.fsPath, top.name, top.subvolumeId, top.topLevelId], ['/', '<FS_TREE>', 5n, 0n]);

  const recv = parseSubvolumeShow(fx('show-received.txt'));
  assert.equal(recv.receivedUuid, S2, 'the received UUID is the sent snapshot’s UUID');
  assert.equal(recv.readOnly, true);
});

test('show: missing fields and garbage are BTRFS_PARSE', () => {
  assert.throws(() => parseSubvolumeShow(''), { code: 'BTRFS_PARSE' });
  assert.throws(() => parseSubvolumeShow(fx('show-snapshot.txt').replace(/\tUUID:.*\n/, '')), { code: 'BTRFS_PARSE' });
  assert.throws(() => parseSubvolumeShow(fx('show-snapshot.txt').replace(S1, 'not-a-uuid')), { code: 'BTRFS_PARSE' });
  const text = fx('show-snapshot.txt');
  const cut = text.indexOf('\tSnapshot(s):');
  assert.ok(cut > 0, 'the fixture lists its snapshots last');
  assert.throws(() => parseSubvolumeShow(`${text.slice(0, cut)}garbage line\n${text.slice(cut)}`), { code: 'BTRFS_PARSE' });
  // A field twice before the snapshot list can only be a path pretending to be one.
  assert.throws(() => parseSubvolumeShow(`${text.slice(0, cut)}\tUUID: \t\t${DATA}\n${text.slice(cut)}`), { code: 'BTRFS_PARSE' });
  // A snapshot's path (any user may name one) that looks like field lines changes no field.
  const forged = parseSubvolumeShow(`${text}\t\tx\n\tUUID: \t\t${DATA}\n\tFlags: \t\t-\n`);
  assert.equal(forged.uuid, parseSubvolumeShow(text).uuid);
  assert.equal(forged.readOnly, parseSubvolumeShow(text).readOnly);
});

test('list: a line inside a name that looks like an entry with impossible numbers stays part of that name', () => {
  const text = fx('list-snapshots.txt');
  const line = `ID 99999999999999999999999 gen 1 cgen 1 top level 5 otime 2030-01-01 00:00:00 parent_uuid ${DATA} received_uuid - uuid ${S1} path evil`;
  const rows = parseSubvolumeList(`${text}${line}\n`);
  assert.equal(rows.length, 2, 'no third entry');
  assert.match(rows[1]!.path, /\nID 99999/);
});

test('list -a -s -r: read-only snapshots with otime (UTC), parent and received UUIDs', () => {
  const rows = parseSubvolumeList(fx('list-snapshots.txt'));
  assert.deepEqual(
    rows.map((r) => [r.subvolumeId, r.otransid, r.parentUuid, r.receivedUuid, r.uuid, r.path]),
    [
      [257n, 7n, DATA, null, S1, 'snaps/s1'],
      [258n, 8n, DATA, null, S2, 'snaps/s2'],
    ],
  );
  assert.equal(rows[0]!.otime, Date.UTC(2026, 11, 2, 5, 1, 40) / 1000);
});

test('list -a: a path with a space; from a subvol= mount every path outside it has the <FS_TREE>/ prefix', () => {
  const all = parseSubvolumeList(fx('list-all.txt'));
  assert.deepEqual(all.map((r) => r.path), ['data', 'snaps/s1', 'snaps/s2', 'rw', 'with space']);
  assert.equal(all[0]!.otime, null, 'no otime without -s');
  const fromData = parseSubvolumeList(fx('list-from-subvol-mount.txt'));
  assert.equal(fromData[1]!.path, '<FS_TREE>/snaps/s1');
  assert.deepEqual(fromData.map((r) => topLevelPath(r, 256n)), ['data', 'snaps/s1', 'snaps/s2', 'rw', 'with space']);
  // The prefix is stripped only when the entry's top level is not the listed subvolume.
  assert.equal(topLevelPath({ ...fromData[1]!, topLevelId: 256n }, 256n), '<FS_TREE>/snaps/s1');
});

test('list: a received subvolume; a name with a newline continues the previous path; garbage first is an error', () => {
  const recv = parseSubvolumeList(fx('list-received.txt'));
  assert.deepEqual(recv.map((r) => [r.path, r.receivedUuid]), [
    ['recv/s1', S1],
    ['recv/s2', S2],
  ]);
  const text = fx('list-all.txt').replace('path rw\n', 'path rw\nwith newline\n');
  assert.equal(parseSubvolumeList(text)[3]!.path, 'rw\nwith newline');
  assert.throws(() => parseSubvolumeList('hello\n'), { code: 'BTRFS_PARSE' });
  assert.deepEqual(parseSubvolumeList(''), []);
});

test('mountinfo: btrfs mounts with their root and subvolid; octal escapes decoded', () => {
  const m = parseMountinfo(fx('mountinfo.txt'));
  assert.deepEqual(
    m.map((x) => [x.root, x.mountPoint, x.fsType]),
    [
      ['/', '/tmp/zbk-btrfs-capture/a/mnt', 'btrfs'],
      ['/', '/tmp/zbk-btrfs-capture/b/mnt', 'btrfs'],
      ['/data', '/tmp/zbk-btrfs-capture/a/data-mnt', 'btrfs'],
    ],
  );
  assert.match(m[2]!.superOptions, /(^|,)subvolid=256(,|$)/);
  const odd = parseMountinfo('60 27 0:45 /my\\040dir /mnt/a\\040b rw shared:1 - btrfs /dev/loop2 rw,subvolid=5\n');
  assert.deepEqual([odd[0]!.root, odd[0]!.mountPoint], ['/my dir', '/mnt/a b']);
  assert.throws(() => parseMountinfo('short line\n'), { code: 'BTRFS_PARSE' });
});

test('capabilities: btrfs-progs 6.2 on a kernel writing protocol 2 → --proto=2 and --compressed-data', () => {
  assert.equal(parseBtrfsVersion(fx('version.txt')), '6.2');
  const caps = detectBtrfsCapabilities(fx('version.txt'), fx('send-help.txt'), fx('send-stream-version.txt'));
  assert.deepEqual(caps, { version: '6.2', kernelSendProto: 2, protoFlag: true, compressedData: true, sendFlags: ['--proto=2', '--compressed-data'] });
  // An older kernel (no sysfs file): protocol 1 only, whatever progs can.
  assert.deepEqual(detectBtrfsCapabilities(fx('version.txt'), fx('send-help.txt'), null).sendFlags, []);
  // Older progs without --proto in its help.
  const oldHelp = fx('send-help.txt').replace(/^\s*--proto.*\n.*\n/m, '').replace(/^\s*--compressed-data.*\n/m, '');
  assert.deepEqual(detectBtrfsCapabilities('btrfs-progs v5.10.1', oldHelp, '2'), { version: '5.10.1', kernelSendProto: 2, protoFlag: false, compressedData: false, sendFlags: [] });
});

test('receive output names what it created; property get ro; times with offsets', () => {
  assert.equal(parseReceivedName(fx('receive-full-stderr.txt')), 's1');
  assert.equal(parseReceivedName(fx('receive-incremental-stdout.txt')), 's2');
  assert.equal(parseReceivedName(fx('receive-no-parent-stderr.txt')), null);
  assert.equal(parseReadOnlyProperty(fx('property-get-ro.txt')), true);
  assert.equal(parseReadOnlyProperty('ro=false\n'), false);
  assert.throws(() => parseReadOnlyProperty(''), { code: 'BTRFS_PARSE' });
  assert.equal(parseBtrfsTime('2026-12-02 13:52:03 +0900', 't'), Date.UTC(2026, 11, 2, 4, 52, 3) / 1000);
  assert.equal(parseBtrfsTime('-', 't'), null);
});

test('captured stderr maps to the specific error codes, with btrfs’s words in the message', () => {
  const cases: Array<[string, string]> = [
    ['show-not-subvolume-stderr.txt', 'BTRFS_NOT_SUBVOLUME'],
    ['show-not-btrfs-stderr.txt', 'BTRFS_NOT_BTRFS'],
    ['show-missing-stderr.txt', 'BTRFS_NOT_FOUND'],
    ['send-missing-stderr.txt', 'BTRFS_NOT_FOUND'],
    ['send-not-read-only-stderr.txt', 'BTRFS_NOT_READ_ONLY'],
    ['receive-no-parent-stderr.txt', 'BTRFS_NOT_FOUND'],
  ];
  for (const [file, code] of cases) {
    const stderrTail = fx(file);
    const err = classifyBtrfsFailure('btrfs something', { argv: ['btrfs'], exitStatus: 1, signal: null, stderrTail });
    assert.equal(err.code, code, file);
    assert.equal(err.exitCode, 7);
    assert.equal(err.stderrTail, stderrTail);
    assert.ok(err.message.includes(stderrTail.replace(/\n$/, '')), `${file}: ${err.message}`);
  }
  assert.equal(classifyBtrfsFailure('x', { signal: 'SIGKILL', stderrTail: '' }).code, 'BTRFS_KILLED');
});

test('paths: absolute, normalized, no control characters or white space', () => {
  for (const ok of ['/', '/mnt/data', '/mnt/.snapshots/12/snapshot', '/mnt/-odd']) assert.equal(assertBtrfsPath(ok), ok);
  const bad = ['', 'relative', '-p', './x', '/mnt/', '/mnt//x', '/mnt/./x', '/mnt/../x', '/mnt/a b', '/mnt/a\tb', '/mnt/a\nb', '/mnt/a\0b', `/${'x'.repeat(256)}`, `/${'a/'.repeat(2048)}a`];
  for (const p of bad) assert.throws(() => assertBtrfsPath(p), InvalidNameError, JSON.stringify(p));
  assert.throws(() => assertBtrfsPath(42), InvalidNameError);
  assert.equal(assertBtrfsName('s1'), 's1');
  for (const n of ['a/b', '-r', '..', 'a b', '']) assert.throws(() => assertBtrfsName(n), InvalidNameError, JSON.stringify(n));
  assert.equal(relativeBelow('/mnt', '/mnt/a/b'), 'a/b');
  assert.equal(relativeBelow('/mnt', '/mnt'), '');
  assert.equal(relativeBelow('/mnt', '/mntx/a'), null);
  assert.equal(relativeBelow('/', '/a'), 'a');
});
