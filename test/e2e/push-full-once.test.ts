/**
 * Two consolidations at once upload one new full, not two: a full push with
 * `fullUnlessMadeSince` (the streams that existed when consolidation
 * decided) does nothing once another run has pushed that full meanwhile.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { createContext } from '../../src/services/context.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { push } from '../../src/services/push.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { datasetRepo } from './fixture.js';

test('a full push asked for "unless made since" pushes once, however often it is asked', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t);
  writeRandomFiles(mnt, { files: 2, bytesEach: 2 * 1024 * 1024, seed: 'once' });
  await pool.zfs.snapshot(`${ds}@s1`);
  const ctx = createContext(loadConfig(repo.configPath), passphraseSource(repo.env.ZBK_PASSPHRASE_FILE));
  const first = await push(ctx, { datasets: [ds] });
  assert.equal(first.results[0]!.kind, 'full');
  const decidedWith = [first.results[0]!.streamId!];

  // Both "consolidations" decided with the same streams; the first one's push makes the full, the second's finds it.
  const a = await push(ctx, { datasets: [ds], full: true, snapshot: 's1', fullUnlessMadeSince: decidedWith });
  assert.equal(a.results[0]!.kind, 'full');
  const b = await push(ctx, { datasets: [ds], full: true, snapshot: 's1', fullUnlessMadeSince: decidedWith });
  assert.equal(b.results[0]!.kind, 'none', JSON.stringify(b.results[0]));
  // Without the option a full is pushed as asked.
  const c = await push(ctx, { datasets: [ds], full: true, snapshot: 's1' });
  assert.equal(c.results[0]!.kind, 'full');
});
