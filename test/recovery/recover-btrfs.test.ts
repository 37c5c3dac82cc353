/**
 * The independent decoder recovery/zbk-recover.py on what zbk pushed from a
 * real loop-mounted btrfs (docs/FORMAT.md sections 10, 11b): `list` shows
 * the streams as `btrfs send` and the snapshots by UUID; `restore
 * DATASET@SNAP TARGET` receives the chain into a new directory on the same
 * btrfs, where each snapshot is a read-only subvolume named by the last
 * component of its name, with identical files and the recorded UUID as its
 * received UUID; an occupied or non-btrfs target is refused (exit 2); a
 * record whose UUID is not what the stream carries is an integrity failure
 * (exit 6); a tampered incremental is refused with nothing of it left in the
 * target; a chain where a name is used twice (a rolling `snaps/latest`)
 * restores under the names zbk's own restore gives (`restoredNames`,
 * FORMAT.md section 11b: the whole name, `-`, 8 hex digits of the UUID).
 *
 * Needs /usr/bin/python3 with PyNaCl (Debian's python3-nacl) and btrfs (root,
 * btrfs-progs): under CI a missing one fails the test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadSodium, openKeyFile, sealedPartSize } from '../../src/crypto/index.js';
import { restoredNames } from '../../src/services/restore/target-btrfs.js';
import { requireSource, sourceRepo } from '../e2e/source-fixture.js';
import { writeRandomFiles } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { PYTHON, SCRIPT, requirePython, run } from './script.js';

const MiB = 1024 * 1024;
/** The test repository's part size (test/helpers/repo.ts). */
const PART = 5 * MiB;

/** FORMAT.md section 11b: a btrfs record's decimal guid as a UUID (32 hex digits, zero-padded, 8-4-4-4-12). */
function uuidOf(guid: string): string {
  const h = BigInt(guid).toString(16).padStart(32, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A line `<label>: <value>` of `btrfs subvolume show PATH`. */
function showField(path: string, label: string): string {
  const r = spawnSync('btrfs', ['subvolume', 'show', path], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(r.status, 0, `btrfs subvolume show ${path}: ${r.stderr}`);
  const m = new RegExp(`^\\s*${label}:\\s*(.*?)\\s*$`, 'm').exec(r.stdout);
  assert.ok(m, `no ${label} line in btrfs subvolume show ${path}: ${r.stdout}`);
  return m[1]!;
}

function fsType(path: string): string {
  const r = spawnSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

interface ListJson {
  datasets: {
    name: string;
    source?: string;
    snapshots: { name: string; guid: string; uuid?: string; chainSnapshots: string[] | null; restorableHere: boolean }[];
    streams: { streamId: string; kind: string; source?: string; from: { name: string; guid: string } | null; to: { name: string; guid: string }; sendFlags: string[] | null; volumes: string[] }[];
  }[];
  problems: { key: string; reason: string }[];
}

test('[btrfs] zbk-recover.py lists btrfs streams and restores the chain into a directory on btrfs', async (t) => {
  if (!requirePython(t) || !requireSource(t, 'btrfs')) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'photos' });
  const { ds, mnt, repo } = src;
  const fs = src.fs!;
  const storeDir = join(repo.dir, 'store');
  const env = { ZBK_PASSPHRASE_FILE: repo.env.ZBK_PASSPHRASE_FILE! };
  const recover = async (dir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const r = await run(PYTHON, [SCRIPT, dir, ...args], env);
    return { ...r, stdout: r.stdout.toString('utf8') };
  };
  const push = async (): Promise<void> => {
    const r = await repo.zbk(['push']);
    assert.equal(r.code, 0, r.stderr);
  };

  const first = writeRandomFiles(mnt, { files: 4, bytesEach: 3 * MiB, seed: 'recover-btrfs-a' });
  await src.snapshot('s1');
  await push();
  // An incremental of more than one part: new files, one rewritten, one deleted.
  writeRandomFiles(join(mnt, 'more'), { files: 3, bytesEach: 3 * MiB, seed: 'recover-btrfs-b' });
  writeFileSync(join(mnt, first[0]!), 'rewritten\n');
  rmSync(join(mnt, first[1]!));
  await src.snapshot('s2');
  await push();
  const s1 = src.snap('s1');
  const s2 = src.snap('s2');
  assert.equal(s2, 'snaps/s2');

  const text = await recover(storeDir, ['list']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /\bbtrfs send\b/);
  assert.doesNotMatch(text.stdout, /\bzfs send\b/);
  assert.equal(text.stdout.match(/ btrfs send /g)?.length, 2, text.stdout);

  const listed = await recover(storeDir, ['list', '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const list = JSON.parse(listed.stdout) as ListJson;
  assert.deepEqual(list.problems, []);
  assert.equal(list.datasets.length, 1);
  const d = list.datasets[0]!;
  assert.equal(d.name, ds);
  assert.equal(d.source, 'btrfs');
  assert.deepEqual(d.snapshots.map((s) => s.name), [s1, s2]);
  assert.deepEqual(d.snapshots.map((s) => s.chainSnapshots), [[s1], [s1, s2]]);
  assert.ok(d.snapshots.every((s) => s.restorableHere && s.uuid === uuidOf(s.guid)));
  const [full, inc] = d.streams;
  assert.ok(full && inc && d.streams.length === 2);
  assert.deepEqual([full.kind, inc.kind], ['full', 'incremental']);
  assert.ok(d.streams.every((s) => s.source === 'btrfs'));
  assert.equal(inc.from!.guid, full.to.guid);
  for (const s of d.snapshots) assert.ok(text.stdout.includes(`@${s.name}  uuid ${s.uuid} `), `the text list shows ${s.name} by UUID`);
  // The recorded identity is the UUID of zbk's pin of s2, still on the source.
  const pin = (await fs.btrfs.listPins(ds)).find((p) => p.snapshot.name === s2);
  assert.ok(pin, 'zbk keeps a pin of the last pushed snapshot');
  assert.equal(showField(pin.ref, 'UUID'), uuidOf(inc.to.guid));

  const target = join(fs.mountpoint, 'recovered');
  const dry = await recover(storeDir, ['restore', `${ds}@${s2}`, target, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.stdout.match(/^btrfs receive /gm)?.length, 2, dry.stdout);

  await t.test('restore gives identical files, the recorded received UUID, and names from the snapshots', async () => {
    const r = await recover(storeDir, ['restore', `${ds}@${s2}`, target]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(target).sort(), ['s1', 's2']);
    assert.deepEqual(await hashTree(join(target, 's2')), await hashTree(mnt));
    assert.deepEqual(await hashTree(join(target, 's1')), await hashTree(join(fs.mountpoint, s1)));
    assert.equal(showField(join(target, 's2'), 'Received UUID'), uuidOf(inc.to.guid));
    assert.equal(showField(join(target, 's1'), 'Received UUID'), uuidOf(full.to.guid));
    assert.match(showField(join(target, 's2'), 'Flags'), /readonly/);
    const again = await recover(storeDir, ['restore', `${ds}@${s2}`, target]);
    assert.equal(again.code, 2, `an occupied target is refused: ${again.stderr}`);
    assert.match(again.stderr, /already holds s1, s2/);
  });

  await t.test('a target not on btrfs, or whose parent is missing, is refused (exit 2)', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'zbk-recover-notbtrfs-'));
    try {
      if (fsType(elsewhere) !== 'btrfs') {
        const r = await recover(storeDir, ['restore', `${ds}@${s1}`, join(elsewhere, 'new')]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /not btrfs/);
        assert.deepEqual(readdirSync(elsewhere), [], 'nothing was made');
      }
      const r = await recover(storeDir, ['restore', `${ds}@${s1}`, join(fs.mountpoint, 'no', 'such')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /does not exist/);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  // Tampering, on a plain copy of the store (what `aws s3 sync` gives); the copy is removed after the test.
  const plain = mkdtempSync(join(tmpdir(), 'zbk-recover-btrfs-plain-'));
  t.after(() => rmSync(plain, { recursive: true, force: true }));
  cpSync(storeDir, plain, { recursive: true });

  await t.test('a tampered incremental is refused (exit 6), nothing of it left in the target', async () => {
    const vol = join(plain, inc.volumes[0]!);
    const before = readFileSync(vol);
    assert.ok(before.length > sealedPartSize(PART), 'the incremental has more than one part');
    const b = Buffer.from(before);
    b[sealedPartSize(PART) + 100] = b[sealedPartSize(PART) + 100]! ^ 0x20;
    writeFileSync(vol, b);
    const into = join(fs.mountpoint, 'tampered');
    try {
      const r = await recover(plain, ['restore', `${ds}@${s2}`, into]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /what it had received \(base-[0-9a-f-]{36}\) was deleted; .* holds s1 from the streams before it/);
    } finally {
      writeFileSync(vol, before);
    }
    assert.deepEqual(readdirSync(into), ['s1'], 'the partial receive of the incremental was deleted');
  });

  await t.test('a record whose UUID is not the one the stream carries is an integrity failure (exit 6)', async () => {
    const keyring = await openKeyFile(await loadSodium(), readFileSync(join(plain, 'zbk.key')), readFileSync(env.ZBK_PASSPHRASE_FILE, 'utf8').split('\n')[0]!);
    const recPath = join(plain, 'streams', `${full.streamId}.zbks`);
    const before = readFileSync(recPath);
    const rec = JSON.parse(Buffer.from(keyring.openBlob('zbk-stream-v1', before)).toString('utf8')) as { to: { guid: string } };
    rec.to.guid = (BigInt(rec.to.guid) ^ 1n).toString();
    writeFileSync(recPath, keyring.sealBlob('zbk-stream-v1', Buffer.from(JSON.stringify(rec))));
    const into = join(fs.mountpoint, 'forged');
    try {
      const r = await recover(plain, ['restore', `${ds}@${s1}`, into]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, new RegExp(`received UUID ${uuidOf(full.to.guid)}, but the record says ${uuidOf(rec.to.guid)}`));
    } finally {
      writeFileSync(recPath, before);
    }
    assert.ok(!readdirSync(into).includes('s1'), 'the subvolume that is not the recorded snapshot is not named as it');
  });

  await t.test('a name used twice in the chain: every snapshot gets the unique name zbk gives it', async () => {
    // A rolling name: snaps/latest is pushed, deleted, made again (newer) and pushed.
    await src.snapshot('latest');
    await push();
    const l1 = await fs.btrfs.show(join(fs.mountpoint, 'snaps', 'latest'));
    const del = spawnSync('btrfs', ['subvolume', 'delete', join(fs.mountpoint, 'snaps', 'latest')], { encoding: 'utf8' });
    assert.equal(del.status, 0, del.stderr);
    writeFileSync(join(mnt, 'notes.txt'), 'the second latest\n');
    await src.snapshot('latest');
    await push();
    assert.notEqual((await fs.btrfs.show(join(fs.mountpoint, 'snaps', 'latest'))).uuid, l1.uuid, 'a new snapshot under the old name');

    const r = await recover(storeDir, ['list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const dd = (JSON.parse(r.stdout) as ListJson).datasets.find((x) => x.name === ds)!;
    const latest = dd.snapshots.filter((x) => x.name === 'snaps/latest');
    assert.equal(latest.length, 2, 'both snapshots named snaps/latest are listed');
    const newest = latest[1]!;
    assert.deepEqual(newest.chainSnapshots, [s1, s2, 'snaps/latest', 'snaps/latest']);
    // The chain, walked back from the newest by the streams' from.guid.
    const chain: ListJson['datasets'][number]['streams'] = [];
    for (let guid: string | null = newest.guid; guid !== null; ) {
      const s = dd.streams.find((x) => x.to.guid === guid);
      assert.ok(s, `a stream ends at ${guid}`);
      chain.unshift(s);
      guid = s.from?.guid ?? null;
    }
    assert.deepEqual(chain.map((s) => s.to.name), newest.chainSnapshots);
    const want = restoredNames({ streams: chain.map((s) => ({ to: { name: s.to.name, guid: s.to.guid } })) } as unknown as Parameters<typeof restoredNames>[0]);
    assert.equal(want.size, 4);
    assert.ok([...want.values()].every((n) => /^snaps_(s1|s2|latest)-[0-9a-f]{8}$/.test(n)), [...want.values()].join(', '));

    const into = join(fs.mountpoint, 'reused');
    const dry = await recover(storeDir, ['restore', `${ds}@snaps/latest`, into, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    for (const n of want.values()) assert.ok(dry.stdout.includes(join(into, n)), `the dry run names ${n}: ${dry.stdout}`);
    const got = await recover(storeDir, ['restore', `${ds}@snaps/latest`, into]);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(readdirSync(into).sort(), [...want.values()].sort());
    for (const s of chain) assert.equal(showField(join(into, want.get(s.to.guid)!), 'Received UUID'), uuidOf(s.to.guid), `${want.get(s.to.guid)} is ${s.to.name}`);
    assert.deepEqual(await hashTree(join(into, want.get(newest.guid)!)), await hashTree(mnt));
    assert.ok(got.stderr.includes(`is ${join(into, want.get(newest.guid)!)} (read-only`), got.stderr);
  });
});
