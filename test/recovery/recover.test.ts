/**
 * The independent decoder recovery/zbk-recover.py (Python + PyNaCl, written
 * from docs/FORMAT.md) reads what zbk pushes: real pushes to a file:// store
 * (a full stream of several volumes, an incremental of several volumes, an
 * incremental of a snapshot with no changes) decode byte for byte to `zfs
 * send` of the same snapshots with the stream's recorded flags, both from the
 * store directory as it is and from a plain key → file copy (what `aws s3
 * sync` gives); `list` shows the chain; a restore through the script gives
 * identical files; and every tampering is refused with the documented exit
 * code, with no plaintext of the failed part (or, for a missing or resized
 * object, nothing at all) written.
 *
 * Needs /usr/bin/python3 with PyNaCl (Debian's python3-nacl; scripts/test.sh
 * installs it) and ZFS: under CI a missing one fails the test.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadSodium, openKeyFile, sealedPartSize } from '../../src/crypto/index.js';
import { LocalStore } from '../../src/store/local-store.js';
import { writeV1Composite } from '../store/local-v1.js';
import { datasetRepo, mountOf } from '../e2e/fixture.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { PYTHON, SCRIPT, requirePython, run, type Run } from './script.js';
import { repoRoot } from '../helpers/paths.js';

const MiB = 1024 * 1024;
/** The test repository's part and volume sizes (test/helpers/repo.ts): 2 parts per volume. */
const PART = 5 * MiB;
const VOLUME = 10 * MiB;

interface ListJson {
  keys: { keyId: string }[];
  datasets: {
    name: string;
    snapshots: { name: string; guid: string; chain: string[] | null; chainSnapshots: string[] | null; restorableHere: boolean }[];
    streams: { streamId: string; kind: string; from: { name: string } | null; to: { name: string; guid: string }; sendFlags: string[] | null; volumes: string[]; volumesHere: boolean }[];
  }[];
  problems: { key: string; reason: string }[];
}

test('zbk-recover.py decodes, lists and restores what zbk pushed, and refuses every tampering', async (t) => {
  if (!requirePython(t) || !requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'photos' });
  const storeDir = join(repo.dir, 'store');
  const env = { ZBK_PASSPHRASE_FILE: repo.env.ZBK_PASSPHRASE_FILE! };
  const recover = (dir: string, args: string[], extra: Record<string, string> = env): Promise<Run> => run(PYTHON, [SCRIPT, dir, ...args], extra);
  const push = async (): Promise<void> => {
    const r = await repo.zbk(['push', ds]);
    assert.equal(r.code, 0, r.stderr);
  };

  // A full stream of 3 volumes, an incremental of 2, and one of a snapshot with no changes.
  writeRandomFiles(mnt, { files: 6, bytesEach: 4 * MiB, seed: 'recover-a' });
  await pool.zfs.snapshot(`${ds}@s1`);
  await push();
  writeRandomFiles(join(mnt, 'more'), { files: 3, bytesEach: 4 * MiB, seed: 'recover-b' });
  await pool.zfs.snapshot(`${ds}@s2`);
  await push();
  await pool.zfs.snapshot(`${ds}@s3`);
  await push();

  // A plain copy, one file per key: what `aws s3 sync` of an S3 bucket gives.
  const plain = mkdtempSync(join(tmpdir(), 'zbk-recover-plain-'));
  t.after(() => rmSync(plain, { recursive: true, force: true }));
  const local = new LocalStore(storeDir);
  for await (const e of local.list('')) {
    mkdirSync(dirname(join(plain, e.key)), { recursive: true });
    writeFileSync(join(plain, e.key), await local.getBytes(e.key));
  }

  const listed = await recover(storeDir, ['list', '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const list = JSON.parse(listed.stdout.toString('utf8')) as ListJson;
  assert.equal(list.datasets.length, 1);
  const d = list.datasets[0]!;
  assert.equal(d.name, ds);
  assert.deepEqual(list.problems, []);
  assert.deepEqual(d.snapshots.map((s) => s.name), ['s1', 's2', 's3']);
  assert.deepEqual(d.snapshots.map((s) => s.chainSnapshots), [['s1'], ['s1', 's2'], ['s1', 's2', 's3']]);
  assert.ok(d.snapshots.every((s) => s.restorableHere));
  const [full, inc, empty] = d.streams;
  assert.ok(full && inc && empty);
  assert.deepEqual(d.snapshots[2]!.chain, [full.streamId, inc.streamId, empty.streamId]);
  assert.deepEqual([full.kind, inc.kind, empty.kind], ['full', 'incremental', 'incremental']);
  assert.equal(full.volumes.length, 3, 'the full stream spans 3 volumes');
  assert.equal(inc.volumes.length, 2, 'the incremental spans 2 volumes');
  assert.equal(empty.volumes.length, 1);
  const plainList = await recover(plain, ['list', '--json']);
  assert.equal(plainList.code, 0, plainList.stderr);
  assert.deepEqual(JSON.parse(plainList.stdout.toString('utf8')), list, 'the plain copy lists the same');

  // Every stream decodes to exactly what zfs send gives with the recorded flags.
  const truth = new Map<string, Buffer>();
  for (const s of d.streams) {
    assert.ok(Array.isArray(s.sendFlags), 'zbk recorded the send flags');
    const args = ['send', ...s.sendFlags!, ...(s.from ? ['-i', `${ds}@${s.from.name}`] : []), `${ds}@${s.to.name}`];
    const sent = await run('zfs', args);
    assert.equal(sent.code, 0, sent.stderr);
    truth.set(s.streamId, sent.stdout);
    for (const dir of [storeDir, plain]) {
      const got = await recover(dir, ['cat', s.streamId]);
      assert.equal(got.code, 0, got.stderr);
      assert.ok(got.stdout.equals(sent.stdout), `stream ${s.to.name} from ${dir === plain ? 'the plain copy' : 'the store'} is zfs send ${args.slice(1).join(' ')}`);
    }
  }
  assert.ok(truth.get(empty.streamId)!.length < 4096, 'a snapshot with no changes is a tiny stream');

  const keys = await recover(plain, ['keys', `${ds}@s3`]);
  assert.equal(keys.code, 0, keys.stderr);
  assert.deepEqual(keys.stdout.toString('utf8').trim().split('\n'), [...full.volumes, ...inc.volumes, ...empty.volumes]);

  const selftest = await run(PYTHON, [SCRIPT, 'selftest', resolve(repoRoot, 'docs', 'FORMAT.md')]);
  assert.equal(selftest.code, 0, `${selftest.stdout.toString()}${selftest.stderr}`);

  await t.test('restore through the script gives identical files', async () => {
    const target = `${pool.name}/recovered`;
    const r = await recover(plain, ['restore', `${ds}@s3`, target]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await hashTree(await mountOf(pool, target)), await hashTree(mnt));
    assert.deepEqual((await pool.zfs.listSnapshots(target)).map((s) => s.shortName), ['s1', 's2', 's3']);
    const again = await recover(plain, ['restore', `${ds}@s3`, target]);
    assert.equal(again.code, 2, 'an existing target is refused');
  });

  await t.test('the paper key opens the repository without the key file; a wrong passphrase is exit 4', async () => {
    const exp = await repo.zbk(['key', 'export']);
    assert.equal(exp.code, 0, exp.stderr);
    assert.match(exp.stdout, /RECOVERY\.md/, 'the paper sheet points to the recovery sheet');
    const paperFile = join(repo.dir, 'paper.txt');
    writeFileSync(paperFile, exp.stdout, { mode: 0o600 });
    const noKey = mkdtempSync(join(tmpdir(), 'zbk-recover-nokey-'));
    try {
      cpSync(plain, noKey, { recursive: true });
      rmSync(join(noKey, 'zbk.key'));
      const withPaper = await recover(noKey, ['cat', empty.streamId, '--paper-key', paperFile], {});
      assert.equal(withPaper.code, 0, withPaper.stderr);
      assert.ok(withPaper.stdout.equals(truth.get(empty.streamId)!));
      const noKeyFile = await recover(noKey, ['list']);
      assert.equal(noKeyFile.code, 3, noKeyFile.stderr);
    } finally {
      rmSync(noKey, { recursive: true, force: true });
    }
    const wrong = join(repo.dir, 'wrong-pass');
    writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
    const w = await recover(plain, ['list'], { ZBK_PASSPHRASE_FILE: wrong });
    assert.equal(w.code, 4, w.stderr);
    assert.match(w.stderr, /wrong passphrase/);
    const typo = join(repo.dir, 'typo.txt');
    writeFileSync(typo, exp.stdout.replace(/^2: (.)/m, (_, c: string) => `2: ${c === 'A' ? 'B' : 'A'}`));
    const bad = await recover(plain, ['list', '--paper-key', typo], {});
    assert.equal(bad.code, 4, bad.stderr);
    assert.match(bad.stderr, /line 2/);
  });

  // Tampering, on the plain copy; each case is undone before the next.
  const vol = (s: { volumes: string[] }, i: number): string => join(plain, s.volumes[i]!);
  const sealedPart = sealedPartSize(PART);
  const fullTruth = truth.get(full.streamId)!;
  assert.ok(fullTruth.length > 2 * VOLUME);

  async function tampered(name: string, change: () => () => void, stream: string, code: number, writtenPlaintext: number, hash = false): Promise<void> {
    await t.test(`tamper: ${name}`, async () => {
      const undo = change();
      try {
        const r = await recover(plain, ['cat', stream]);
        assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
        assert.match(r.stderr, /^zbk-recover: /);
        if (hash) assert.match(r.stderr, /SHA-256/);
        assert.equal(r.stdout.length, writtenPlaintext, 'plaintext written before the failure');
        assert.ok(r.stdout.equals(truth.get(stream)!.subarray(0, writtenPlaintext)), 'only authenticated, hash-checked plaintext was written');
      } finally {
        undo();
      }
      const back = await recover(plain, ['cat', stream]);
      assert.ok(back.code === 0 && back.stdout.equals(truth.get(stream)!), 'undone');
    });
  }

  const edit = (path: string, f: (b: Buffer) => Buffer): (() => void) => {
    const before = readFileSync(path);
    writeFileSync(path, f(Buffer.from(before)));
    return () => writeFileSync(path, before);
  };
  const flip = (path: string, offset: number) => edit(path, (b) => {
    b[offset] = b[offset]! ^ 0x20;
    return b;
  });

  await tampered('a byte flipped in the second part of volume 1', () => flip(vol(full, 1), sealedPart + 12345), full.streamId, 6, VOLUME + PART);
  await tampered('a byte flipped in the header of volume 0', () => flip(vol(full, 0), 20), full.streamId, 6, 0);
  await tampered('a byte flipped in the last part of volume 0', () => flip(vol(full, 0), sealedPart + 100), full.streamId, 6, PART);
  // Sealed with the right key at the right place but not the recorded bytes (what a resumed push
  // of a different zfs send could leave): only the volume's SHA-256 catches it, before its last part is written.
  const keyring = await openKeyFile(await loadSodium(), readFileSync(join(plain, 'zbk.key')), readFileSync(env.ZBK_PASSPHRASE_FILE, 'utf8').split('\n')[0]!);
  await tampered('the last part of volume 0 re-sealed with other bytes (authentic, wrong hash)', () => {
    const forged = keyring.sealPart({ streamId: Buffer.from(full.streamId, 'hex'), volumeIndex: 0, partIndex: 1, final: true }, Buffer.alloc(PART, 7));
    return edit(vol(full, 0), (b) => Buffer.concat([b.subarray(0, sealedPart), forged]));
  }, full.streamId, 6, PART, true);
  await tampered('volume 1 truncated by 100 bytes', () => {
    const before = readFileSync(vol(full, 1));
    truncateSync(vol(full, 1), before.length - 100);
    return () => writeFileSync(vol(full, 1), before);
  }, full.streamId, 6, 0);
  await tampered('volume 0 extended by a chunk', () => edit(vol(full, 0), (b) => Buffer.concat([b, Buffer.alloc(262160)])), full.streamId, 6, 0);
  await tampered('volumes 0 and 1 swapped', () => {
    const a = vol(full, 0);
    const b = vol(full, 1);
    const tmp = `${a}.swap`;
    renameSync(a, tmp);
    renameSync(b, a);
    renameSync(tmp, b);
    return () => {
      renameSync(b, tmp);
      renameSync(a, b);
      renameSync(tmp, a);
    };
  }, full.streamId, 6, 0);
  await tampered('the last volume dropped', () => {
    const last = vol(full, 2);
    const aside = join(plain, 'dropped.zbkv');
    renameSync(last, aside);
    return () => renameSync(aside, last);
  }, full.streamId, 3, 0);
  await tampered('a part replayed from another stream (same position, same size)', () => {
    const other = readFileSync(vol(inc, 0)).subarray(0, sealedPart);
    return edit(vol(full, 1), (b) => {
      other.copy(b, 0);
      return b;
    });
  }, full.streamId, 6, VOLUME);
  await tampered('a part replayed from another volume of the same stream', () => {
    const other = readFileSync(vol(full, 0)).subarray(0, sealedPart);
    return edit(vol(full, 1), (b) => {
      other.copy(b, 0);
      return b;
    });
  }, full.streamId, 6, VOLUME);
  await tampered('the stream record flipped', () => flip(join(plain, 'streams', `${full.streamId}.zbks`), 40), full.streamId, 6, 0);
  await tampered('the stream record dropped', () => {
    const rec = join(plain, 'streams', `${full.streamId}.zbks`);
    const aside = join(plain, 'dropped.zbks');
    renameSync(rec, aside);
    return () => renameSync(aside, rec);
  }, full.streamId, 3, 0);

  await t.test('tamper: a byte flipped in a volume file of the file:// store itself', async () => {
    const path = join(storeDir, full.volumes[1]!);
    const before = readFileSync(path);
    assert.ok(before.equals(readFileSync(vol(full, 1))), 'the store keeps each volume as one plain file, its bytes');
    const b = Buffer.from(before);
    b[sealedPart + 5000] = b[sealedPart + 5000]! ^ 1;
    writeFileSync(path, b);
    try {
      const r = await recover(storeDir, ['cat', full.streamId]);
      assert.equal(r.code, 6, r.stderr);
      assert.ok(r.stdout.equals(fullTruth.subarray(0, VOLUME + PART)));
    } finally {
      writeFileSync(path, before);
    }
  });

  await t.test('a file:// store in the layout of older zbk (descriptors and part files) still decodes', async () => {
    const old = mkdtempSync(join(tmpdir(), 'zbk-recover-v1-'));
    try {
      cpSync(plain, old, { recursive: true });
      for (const key of full.volumes) {
        const bytes = readFileSync(join(old, key));
        rmSync(join(old, key));
        const parts = [];
        for (let off = 0; off < bytes.length; off += sealedPart) parts.push(bytes.subarray(off, off + sealedPart));
        writeV1Composite(old, key, parts);
      }
      assert.match(readFileSync(join(old, full.volumes[0]!), 'utf8'), /^zbk-local-composite-v1\n/);
      writeFileSync(join(old, '.zbk-migrate.lock'), '1 host\n');
      const r = await recover(old, ['cat', full.streamId]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(fullTruth));
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  });

  await t.test('restore stops at a tampered incremental: nothing of it is received', async () => {
    const target = `${pool.name}/tampered`;
    const undo = flip(vol(inc, 1), 200);
    try {
      const r = await recover(plain, ['restore', `${ds}@s3`, target]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /nothing of this stream was committed/);
    } finally {
      undo();
    }
    // zfs-fuse may take a moment to discard the killed receive; the full stream's snapshot is all there is.
    assert.deepEqual((await pool.zfs.listSnapshots(target)).map((s) => s.shortName), ['s1']);
    const missing = mkdtempSync(join(tmpdir(), 'zbk-recover-missing-'));
    try {
      cpSync(plain, missing, { recursive: true });
      rmSync(join(missing, empty.volumes[0]!));
      const m = await recover(missing, ['restore', `${ds}@s3`, `${pool.name}/never`]);
      assert.equal(m.code, 3, m.stderr);
      assert.ok(!existsSync(join(pool.mountpoint, 'never')));
    } finally {
      rmSync(missing, { recursive: true, force: true });
    }
  });
});
