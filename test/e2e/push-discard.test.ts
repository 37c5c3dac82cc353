/**
 * A push that throws away an interrupted stream (a resume found other bytes
 * than were checkpointed: ResumeMismatchError), end to end through the CLI on
 * real ZFS: a kill in the middle of the discard does not wedge the dataset,
 * and the discard aborts the upload the failed resume itself created, so no
 * multipart upload is left behind (billed at Standard rates).
 *
 * The mismatch is made by editing the interrupted stream's checkpoints through
 * the manifest API between runs, as if the earlier run had sent other bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import type { TestRepo } from '../helpers/repo.js';
import { jsonOf, startZbk } from '../helpers/cli.js';
import { hashTree } from '../helpers/tree-hash.js';
import { datasetRepo, mountOf } from './fixture.js';
import { restoreLatestDirect } from '../helpers/restore-direct.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { StreamWithVolumes } from '../../src/manifest/types.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { PushResult } from '../../src/services/push.js';

function withManifest<T>(repo: TestRepo, fn: (m: Manifest) => T): T {
  const m = Manifest.open(join(repo.stateDir, 'manifest.db'));
  try {
    return fn(m);
  } finally {
    m.close();
  }
}

function inFlightStream(repo: TestRepo, ds: string): StreamWithVolumes {
  const s = withManifest(repo, (m) => m.findInFlightStream(ds));
  assert.ok(s, `${ds} has no interrupted stream`);
  return s;
}

/** One part in flight at a time, so the n-th acknowledged part is part n (with two, part 2 may be acknowledged first). */
function onePartAtATime(repo: TestRepo): void {
  const text = readFileSync(repo.configPath, 'utf8');
  assert.ok(!/^parallel\s*=/m.test(text), 'the config already sets parallel');
  writeFileSync(repo.configPath, text.includes('[upload]') ? text.replace('[upload]', '[upload]\nparallel = 1') : `${text}\n[upload]\nparallel = 1\n`);
}

async function pushKilledAt(repo: TestRepo, ds: string, point: string): Promise<void> {
  const r = await startZbk(['push', ds], { ...repo.env, ZBK_CRASH_AT: point }).done;
  assert.equal(r.signal, 'SIGKILL', `the push was not killed at ${point} (exit ${r.code}): ${r.stderr}`);
}

async function pushOk(repo: TestRepo, ds: string): Promise<PushResult> {
  const r = await startZbk(['push', ds, '--json'], repo.env).done;
  assert.equal(r.code, 0, `push failed: ${r.stdout} ${r.stderr}`);
  return jsonOf<PushResult>(r);
}

test('a push killed while discarding a mismatched stream (uploads aborted, stream not yet abandoned) recovers on the next push', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t);
  onePartAtATime(repo);
  const store = new LocalStore(join(repo.dir, 'store'));

  // ≈ 12 MiB: three 5 MiB parts in two 10 MiB volumes. Killed after the first part.
  writeRandomFiles(mnt, { files: 3, bytesEach: 4 * 1024 * 1024, seed: 'discard-a' });
  await pool.zfs.snapshot(`${ds}@s1`);
  await pushKilledAt(repo, ds, 'part-acked:1');
  const first = inFlightStream(repo, ds);
  // The checkpoint of part 1 now claims other plaintext: the next resume must discard the stream.
  withManifest(repo, (m) => {
    const p = m.partsOf(first.streamId, 0).find((x) => x.partNumber === 1);
    assert.ok(p, 'part 1 of volume 0 is checkpointed');
    m.recordPartAcknowledged({ ...p, plaintextSha256: 'f'.repeat(64) });
  });

  // Killed in the discard, after the store's uploads were aborted.
  await pushKilledAt(repo, ds, 'discard-uploads-aborted');

  // The next pushes succeed (the interrupted stream resumes or is replaced), leaving no upload behind.
  const result = await pushOk(repo, ds);
  assert.equal(result.results[0]?.kind, 'full');
  assert.equal(result.results[0]?.snapshot, 's1');
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 1024 * 1024, seed: 'discard-a2' });
  await pool.zfs.snapshot(`${ds}@s2`);
  const second = await pushOk(repo, ds);
  assert.equal(second.results[0]?.kind, 'incremental');
  assert.deepEqual(await store.listMultipartUploads('data/'), [], 'no multipart upload is left in the store');
  withManifest(repo, (m) => {
    assert.equal(m.findInFlightStream(ds), null);
    assert.deepEqual(m.inFlightUploads(), []);
    const complete = m.streams(ds).filter((s) => s.state === 'complete');
    assert.deepEqual(complete.map((s) => `${s.from?.name ?? '-'}>${s.to.name}`), ['->s1', 's1>s2']);
  });
  await restoreLatestDirect(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, `${pool.name}/restored`, pool.zfs);
  const dst = await pool.zfs.mount(`${pool.name}/restored`).catch(() => mountOf(pool, `${pool.name}/restored`));
  assert.deepEqual(await hashTree(dst), await hashTree(mnt), 'restored files differ from the source');
});

test('discarding a mismatched stream aborts the upload its failed resume created for a vanished one', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'docs' });
  onePartAtATime(repo);
  const store = new LocalStore(join(repo.dir, 'store'));

  // ≈ 1 MiB: one part in one volume. Killed after the part was acknowledged, before the volume completed.
  writeRandomFiles(mnt, { files: 1, bytesEach: 1024 * 1024, seed: 'discard-b' });
  await pool.zfs.snapshot(`${ds}@s1`);
  await pushKilledAt(repo, ds, 'part-acked:1');
  const first = inFlightStream(repo, ds);
  const v0 = first.volumes[0];
  assert.ok(v0?.uploadId, 'volume 0 has an upload in flight');
  // The upload vanished from the store (the lifecycle rule, an operator) ...
  await store.abortMultipartUpload(v0.key, v0.uploadId);
  // ... and the earlier run's checkpoints say its stream was longer than the one zfs sends now.
  withManifest(repo, (m) => {
    const p = m.partsOf(first.streamId, 0).find((x) => x.partNumber === 1);
    assert.ok(p, 'part 1 of volume 0 is checkpointed');
    m.recordPartAcknowledged({ ...p, partNumber: 2 });
  });

  // The resume opens a new upload for volume 0, then finds the source ends early, and discards the stream.
  const result = await pushOk(repo, ds);
  assert.match(result.warnings.join('\n'), /differs from what was uploaded before/);
  assert.equal(result.results[0]?.kind, 'full');
  assert.notEqual(result.results[0]?.streamId, first.streamId, 'the stream was restarted under a new id');
  assert.deepEqual(await store.listMultipartUploads('data/'), [], 'the new upload of the discarded stream was aborted');
  withManifest(repo, (m) => {
    assert.equal(m.stream(first.streamId)?.state, 'abandoned');
    assert.deepEqual(m.volumes(first.streamId).map((v) => [v.state, v.uploadId]), [['aborted', null]]);
    assert.deepEqual(m.inFlightUploads(), []);
  });
});

test('a resumed push keeps the hold on the snapshot it resumes: no moment without protection from a pruner', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t);

  writeRandomFiles(mnt, { files: 3, bytesEach: 4 * 1024 * 1024, seed: 'hold-a' });
  await pool.zfs.snapshot(`${ds}@s1`);
  await pushKilledAt(repo, ds, 'part-acked:1');
  assert.equal(await pool.zfs.userRefs(`${ds}@s1`), 1, 'the killed push held @s1');
  // The next run dies right after it reconciled its holds, before it resumes the upload.
  await pushKilledAt(repo, ds, 'holds-reconciled');
  assert.equal(await pool.zfs.userRefs(`${ds}@s1`), 1, '@s1, whose upload is about to resume, lost its hold');
  const r = await pushOk(repo, ds);
  assert.equal(r.results[0]?.resumed, true);
  const baseHolds = (await pool.zfs.capabilities()).bookmarks ? 0 : 1;
  assert.equal(await pool.zfs.userRefs(`${ds}@s1`), baseHolds, 'the pushed @s1 keeps exactly the base hold (none where zbk\'s bookmark protects it)');
});
