/**
 * Send flags recorded per stream, on real zfs-fuse: a resume re-sends with
 * the flags its stream was begun with, whatever the ZFS can do by then, or
 * refuses; the flags are in the manifest, the sealed stream record and the
 * result, and survive a manifest rebuild; the `zfs send -nP` estimate of a
 * real push is in its result. `raw = true` where zfs-fuse cannot send raw is
 * refused before anything is sent, and zfs-fuse (no bookmarks) holds the base.
 *
 * A ZFS "upgrade" between runs is played by a wrapper around zfs-fuse: with
 * its `newer` file present, its usage text documents `send -c -L -e -nP`
 * (so a zbk process detects them), and every `zfs send` it runs is logged
 * with its arguments; flags zfs-fuse lacks are dropped before zfs-fuse runs.
 * In-process pushes are given the capabilities directly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { BLOB_STREAM_RECORD, streamRecordKey, type StreamRecord } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { StreamRow } from '../../src/manifest/types.js';
import { createContext, openKeyring } from '../../src/services/context.js';
import type { DoctorResult } from '../../src/services/doctor.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { push, type PushProgress, type PushResult } from '../../src/services/push.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { ZfsCapabilities } from '../../src/zfs/types.js';
import { Zfs } from '../../src/zfs/zfs.js';
import { jsonOf, startZbk } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles, zfsUnderTest } from '../helpers/pool.js';
import { restoreLatestDirect } from '../helpers/restore-direct.js';
import type { TestRepo } from '../helpers/repo.js';
import { hashTree } from '../helpers/tree-hash.js';
import { datasetRepo, mountOf, type DatasetRepo } from './fixture.js';

const ESTIMATE = 12_345_678;

interface FakeZfs {
  path: string;
  /** Make the wrapper document -c -L -e and -nP (a "newer" ZFS), or not. */
  newer(on: boolean): void;
  /** Arguments of every `zfs send` run so far (after `send`). */
  sends(): string[];
}

function fakeZfs(repo: TestRepo): FakeZfs {
  const real = spawnSync('sh', ['-c', 'command -v zfs'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(real, 'zfs is on PATH');
  const path = join(repo.dir, 'zfs-wrapper');
  writeFileSync(
    path,
    `#!/bin/bash
dir=$(dirname "$0")
if [ "$1" = "-?" ]; then
  out=$(${real} -? 2>&1)
  if [ -e "$dir/newer" ]; then out=$(printf '%s\\n' "$out" | sed 's/^\\(\\tsend \\[-RDp\\)\\]/\\1cLenP]/'); fi
  printf '%s\\n' "$out"
  exit 2
fi
if [ "$1" = "send" ]; then
  shift
  printf '%s\\n' "$*" >> "$dir/sends.log"
  args=(); nP=0
  for a in "$@"; do case "$a" in -w|-c|-L|-e) ;; -nP) nP=1 ;; *) args+=("$a") ;; esac; done
  if [ "$nP" = 1 ]; then printf 'full\\t%s\\t${ESTIMATE}\\nsize\\t${ESTIMATE}\\n' "\${args[\${#args[@]}-1]}"; exit 0; fi
  exec ${real} send "\${args[@]}"
fi
exec ${real} "$@"
`,
  );
  chmodSync(path, 0o755);
  const text = readFileSync(repo.configPath, 'utf8');
  assert.ok(!/^\[zfs\]/m.test(text), 'the config has no [zfs] section yet');
  writeFileSync(repo.configPath, `${text}\n[zfs]\nzfs = ["${path}"]\n`);
  const marker = join(repo.dir, 'newer');
  const log = join(repo.dir, 'sends.log');
  return {
    path,
    newer: (on) => (on ? writeFileSync(marker, '') : rmSync(marker, { force: true })),
    sends: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : []),
  };
}

/** zfs-fuse only: the wrapper edits zfs-fuse's usage text; OpenZFS has all these flags anyway. */
async function fuseRepo(t: TestContext): Promise<(DatasetRepo & { caps: ZfsCapabilities }) | null> {
  if (!requireZfs(t)) return null;
  if (zfsUnderTest !== 'zfs-fuse') {
    t.skip('plays a ZFS upgrade on zfs-fuse');
    return null;
  }
  const r = await datasetRepo(t);
  const caps = await r.pool.zfs.capabilities();
  assert.equal(caps.implementation, 'zfs-fuse');
  assert.equal(caps.compressedSend || caps.largeBlocks || caps.embeddedData || caps.rawSend || caps.sendEstimate, false);
  return { ...r, caps };
}

/** One part in flight at a time, so the n-th acknowledged part is part n. */
function onePartAtATime(repo: TestRepo): void {
  const text = readFileSync(repo.configPath, 'utf8');
  writeFileSync(repo.configPath, text.includes('[upload]') ? text.replace('[upload]', '[upload]\nparallel = 1') : `${text}\n[upload]\nparallel = 1\n`);
}

function withManifest<T>(repo: TestRepo, fn: (m: Manifest) => T): T {
  const m = Manifest.open(join(repo.stateDir, 'manifest.db'));
  try {
    return fn(m);
  } finally {
    m.close();
  }
}

async function pushKilledAt(repo: TestRepo, ds: string, point: string): Promise<void> {
  const r = await startZbk(['push', ds], { ...repo.env, ZBK_CRASH_AT: point }).done;
  assert.equal(r.signal, 'SIGKILL', `the push was not killed at ${point} (exit ${r.code}): ${r.stderr}`);
}

/** The sealed stream record of `streamId`, opened. */
async function streamRecord(repo: TestRepo, streamId: string): Promise<StreamRecord> {
  const ctx = createContext(loadConfig(repo.configPath), passphraseSource(repo.env.ZBK_PASSPHRASE_FILE));
  const keyring = await openKeyring(ctx);
  const sealed = await new LocalStore(join(repo.dir, 'store')).getBytes(streamRecordKey(streamId));
  return JSON.parse(Buffer.from(keyring.openBlob(BLOB_STREAM_RECORD, sealed)).toString('utf8')) as StreamRecord;
}

/** An in-process push with the given capabilities (a zbk started after the ZFS changed). */
async function pushWith(repo: TestRepo, wrapper: string, caps: ZfsCapabilities, ds: string, progress?: PushProgress[]): Promise<PushResult> {
  const zfs = new Zfs({ zfs: [wrapper] }, { capabilities: caps });
  const ctx = createContext(loadConfig(repo.configPath), passphraseSource(repo.env.ZBK_PASSPHRASE_FILE), { zfs });
  return push(ctx, { datasets: [ds], ...(progress ? { onProgress: (p) => progress.push(p) } : {}) });
}

const flagsOf = (streams: StreamRow[]): unknown => streams.map((s) => [s.to.name, s.state, s.sendFlags]);

test('a resume re-sends with the flags its stream was begun with, not what the upgraded ZFS can do; new streams use the new flags; flags survive a rebuild', async (t) => {
  const setup = await fuseRepo(t);
  if (!setup) return;
  const { pool, ds, mnt, repo, caps } = setup;
  onePartAtATime(repo);
  const fake = fakeZfs(repo);

  // ≈ 12 MiB: 5 MiB parts in 10 MiB volumes. Killed at the 3rd part: volume 0 is complete.
  writeRandomFiles(mnt, { files: 3, bytesEach: 4 * 1024 * 1024, seed: 'flags-a' });
  await pool.zfs.snapshot(`${ds}@s1`);
  await pushKilledAt(repo, ds, 'part-acked:3');
  const begun = withManifest(repo, (m) => m.findInFlightStream(ds));
  assert.ok(begun, 'the upload is in flight');
  assert.deepEqual(begun.sendFlags, [], 'zfs-fuse: recorded with no optional flag');
  assert.equal(begun.volumes[0]?.state, 'complete');
  assert.deepEqual(fake.sends(), [`${ds}@s1`]);

  // The ZFS now has -c -L -e and estimates. The resume must not use them: other bytes would abandon volume 0.
  fake.newer(true);
  const upgraded: ZfsCapabilities = { ...caps, compressedSend: true, largeBlocks: true, embeddedData: true, sendEstimate: true };
  const progress: PushProgress[] = [];
  const resumed = await pushWith(repo, fake.path, upgraded, ds, progress);
  const r1 = resumed.results[0]!;
  assert.equal(r1.resumed, true);
  assert.equal(r1.streamId, begun.streamId, 'the same stream, not restarted');
  assert.ok(r1.partsSkipped >= 2, `parts verified and skipped: ${r1.partsSkipped}`);
  assert.doesNotMatch(resumed.warnings.join('\n'), /differs/);
  assert.deepEqual(r1.sendFlags, []);
  assert.deepEqual(fake.sends().slice(1), [`-nP ${ds}@s1`, `${ds}@s1`], 'estimated and re-sent with the recorded (empty) flags');
  assert.equal(r1.estimatedBytes, ESTIMATE, 'the send -nP estimate of the real push is in its result');
  assert.ok(progress.length > 0 && progress.every((p) => p.estimatedBytes === ESTIMATE));
  assert.deepEqual((await streamRecord(repo, begun.streamId)).sendFlags, []);

  // A new stream is begun with what the ZFS can do now, recorded, and sent with exactly that.
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 1024 * 1024, seed: 'flags-b' });
  await pool.zfs.snapshot(`${ds}@s2`);
  const next = (await pushWith(repo, fake.path, upgraded, ds)).results[0]!;
  assert.equal(next.kind, 'incremental');
  assert.deepEqual(next.sendFlags, ['-c', '-L', '-e']);
  assert.deepEqual(fake.sends().slice(3), [`-nP -c -L -e -i ${ds}@s1 ${ds}@s2`, `-c -L -e -i ${ds}@s1 ${ds}@s2`]);
  assert.deepEqual((await streamRecord(repo, next.streamId!)).sendFlags, ['-c', '-L', '-e']);
  const expected = [['s1', 'complete', []], ['s2', 'complete', ['-c', '-L', '-e']]];
  assert.deepEqual(withManifest(repo, (m) => flagsOf(m.streams(ds))), expected);

  // From the bucket alone (stream records, no mirror), and from the mirror.
  for (const args of [['--ignore-mirrors'], []]) {
    const rb = await startZbk(['manifest', 'rebuild', '--force', '--json', ...args], repo.env).done;
    assert.equal(rb.code, 0, rb.stderr);
    assert.deepEqual(withManifest(repo, (m) => flagsOf(m.streams(ds))), expected, `rebuild ${args.join(' ')}`);
  }
  await restoreLatestDirect(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, `${pool.name}/restored`, pool.zfs);
  const dst = await pool.zfs.mount(`${pool.name}/restored`).catch(() => mountOf(pool, `${pool.name}/restored`));
  assert.deepEqual(await hashTree(dst), await hashTree(mnt), 'restored files differ from the source');
});

test('a resume whose recorded flags this ZFS cannot send fails with SEND_FLAGS_UNAVAILABLE and keeps the upload; with them back it resumes', async (t) => {
  const setup = await fuseRepo(t);
  if (!setup) return;
  const { pool, ds, mnt, repo } = setup;
  onePartAtATime(repo);
  const fake = fakeZfs(repo);
  fake.newer(true);

  writeRandomFiles(mnt, { files: 3, bytesEach: 4 * 1024 * 1024, seed: 'flags-c' });
  await pool.zfs.snapshot(`${ds}@s1`);
  await pushKilledAt(repo, ds, 'part-acked:3');
  const begun = withManifest(repo, (m) => m.findInFlightStream(ds));
  assert.ok(begun);
  assert.deepEqual(begun.sendFlags, ['-c', '-L', '-e'], 'begun where the ZFS documented -c -L -e');

  // The ZFS lost them (a downgrade, another machine): no silent change of the stream.
  fake.newer(false);
  const sendsBefore = fake.sends().length;
  const refused = await startZbk(['push', ds, '--json'], repo.env).done;
  assert.equal(refused.code, 1, refused.stderr);
  const err = jsonOf<{ error: { code: string; message: string } }>(refused).error;
  assert.equal(err.code, 'SEND_FLAGS_UNAVAILABLE');
  assert.match(err.message, new RegExp(`the upload of ${ds}@s1 was started with "zfs send -c -L -e", and zfs-fuse cannot send -c, -L, -e`));
  assert.equal(fake.sends().length, sendsBefore, 'no zfs send was run');
  const kept = withManifest(repo, (m) => m.findInFlightStream(ds));
  assert.equal(kept?.streamId, begun.streamId, 'the upload is kept for a resume');
  assert.deepEqual(kept?.volumes.map((v) => v.state), begun.volumes.map((v) => v.state));

  // Back on a ZFS with those flags, a CLI push resumes it; --json carries the estimate and the flags.
  fake.newer(true);
  const ok = await startZbk(['push', ds, '--json'], repo.env).done;
  assert.equal(ok.code, 0, ok.stderr);
  const r = jsonOf<PushResult>(ok).results[0]!;
  assert.equal(r.resumed, true);
  assert.equal(r.streamId, begun.streamId);
  assert.ok(r.partsSkipped >= 2);
  assert.deepEqual(r.sendFlags, ['-c', '-L', '-e']);
  assert.equal(r.estimatedBytes, ESTIMATE);
  assert.equal(fake.sends().at(-1), `-c -L -e ${ds}@s1`);
  assert.deepEqual((await streamRecord(repo, begun.streamId)).sendFlags, ['-c', '-L', '-e']);
});

test('raw = true is refused on zfs-fuse before anything is sent, and doctor says so; zfs-fuse (no bookmarks) holds the base, and doctor says why', async (t) => {
  const setup = await fuseRepo(t);
  if (!setup) return;
  const { pool, ds, mnt, repo } = setup;
  const text = readFileSync(repo.configPath, 'utf8');
  const entry = `name = "${ds}"\n`;
  assert.ok(text.includes(entry), text);
  writeFileSync(repo.configPath, text.replace(entry, `${entry}raw = true\n`));
  writeRandomFiles(mnt, { files: 1, bytesEach: 1024 * 1024, seed: 'raw-true' });
  await pool.zfs.snapshot(`${ds}@s1`);

  const refused = await startZbk(['push', ds, '--json'], repo.env).done;
  assert.equal(refused.code, 3, refused.stderr);
  const err = jsonOf<{ error: { code: string; message: string } }>(refused).error;
  assert.equal(err.code, 'RAW_SEND_UNAVAILABLE');
  assert.match(err.message, /raw = true .* zfs-fuse cannot send raw \(zfs send -w\)/);
  assert.deepEqual(withManifest(repo, (m) => m.streams(ds)), [], 'no stream was begun');
  assert.equal(await pool.zfs.userRefs(`${ds}@s1`), 0, 'no hold left behind');

  const doc = jsonOf<DoctorResult>(await startZbk(['doctor', '--json'], repo.env).done);
  const row = (name: string) => doc.checks.find((c) => c.name === name);
  assert.equal(row(`dataset ${ds}`)?.status, 'fail');
  assert.match(row(`dataset ${ds}`)?.fix ?? '', /raw = "auto" or false/);
  assert.match(row('base protection')?.detail ?? '', /hold "zbk" on the last pushed snapshot \(this ZFS has no bookmarks\)/);

  writeFileSync(repo.configPath, readFileSync(repo.configPath, 'utf8').replace('raw = true', 'raw = "auto"'));
  const ok = await startZbk(['push', ds, '--json'], repo.env).done;
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(jsonOf<PushResult>(ok).results[0]!.sendFlags, []);
  assert.equal(await pool.zfs.userRefs(`${ds}@s1`), 1, 'protect_base = "bookmark" (the default) falls back to the hold on zfs-fuse');
  const after = jsonOf<DoctorResult>(await startZbk(['doctor', '--json'], repo.env).done);
  assert.equal(after.checks.find((c) => c.name === `dataset ${ds}`)?.status, 'ok');
});
