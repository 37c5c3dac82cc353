/**
 * The writer lease through the CLI on real zfs-fuse: while another machine
 * (another state dir) holds the lease, a push fails with LEASE_HELD (exit 8)
 * naming it and writes nothing; `zbk lease` shows it; `zbk lease break`
 * wants --yes, then frees it; the next push works, and the old holder finds
 * its lease lost.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { createContext, openKeyring } from '../../src/services/context.js';
import type { LeaseStatus } from '../../src/services/lease/lease-info.js';
import { LeaseLostError, WriterLease } from '../../src/services/lease/writer-lease.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import type { PushResult } from '../../src/services/push.js';
import { LocalStore } from '../../src/store/local-store.js';
import { jsonOf, runZbk } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { datasetRepo } from '../e2e/fixture.js';

test('a push while another machine holds the writer lease is refused (exit 8) and writes nothing; lease break frees it', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'leased' });
  writeRandomFiles(mnt, { files: 1, bytesEach: 256 * 1024, seed: 'lease' });
  await pool.zfs.snapshot(`${ds}@s1`);

  // "The other machine": another state dir, the same store and key.
  const ctx = createContext(loadConfig(repo.configPath), passphraseSource(repo.env.ZBK_PASSPHRASE_FILE));
  const keyring = await openKeyring(ctx);
  const otherState = join(repo.dir, 'other-machine-state');
  mkdirSync(otherState);
  const store = new LocalStore(join(repo.dir, 'store'));
  const other = await WriterLease.acquire({ store, keyring, stateDir: otherState, storageClass: 'STANDARD', now: () => new Date(), warn: () => undefined }, 'zbk push', { renew: false });

  const refused = await repo.zbk(['push', ds, '--json', '--no-wait']);
  assert.equal(refused.code, 8, refused.stderr);
  const err = jsonOf<{ error: { code: string; message: string } }>(refused).error;
  assert.equal(err.code, 'LEASE_HELD');
  assert.match(err.message, /being written by another (machine|state directory on this host): .*\(zbk push, pid \d+\).*zbk lease break --yes/);
  const dataDir = join(repo.dir, 'store', 'data');
  assert.deepEqual(readdirSync(join(repo.dir, 'store')).includes('data') ? readdirSync(dataDir) : [], [], 'nothing was uploaded');

  const shown = jsonOf<LeaseStatus>(await repo.zbk(['lease', '--json']));
  assert.equal(shown.state, 'held');
  assert.equal(shown.mine, false);
  const unconfirmed = await repo.zbk(['lease', 'break']);
  assert.equal(unconfirmed.code, 2, unconfirmed.stderr);
  assert.match(unconfirmed.stderr, /lease break --yes/);
  const broken = await repo.zbk(['lease', 'break', '--yes']);
  assert.equal(broken.code, 0, broken.stderr);
  assert.match(broken.stdout, /broke the writer lease of .* \(zbk push, pid \d+\)/);

  const ok = await repo.zbk(['push', ds, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(jsonOf<PushResult>(ok).results[0]!.kind, 'full');
  assert.equal(jsonOf<LeaseStatus>(await repo.zbk(['lease', '--json'])).state, 'free', 'the push released the lease');
  await other.renew();
  assert.throws(() => other.assertHeld(), LeaseLostError, 'the old holder stops before its next write');
});

test('a machine whose manifest is behind the store (another machine pushed since) is refused with MANIFEST_STALE until it rebuilds; no duplicate stream', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'two' });
  writeRandomFiles(mnt, { files: 1, bytesEach: 256 * 1024, seed: 'stale-a' });
  await pool.zfs.snapshot(`${ds}@s1`);
  assert.equal((await repo.zbk(['push', ds])).code, 0);

  // Machine B: the same store and key, its own state dir, its manifest rebuilt from the bucket.
  const text = readFileSync(repo.configPath, 'utf8');
  const configB = join(repo.dir, 'b.toml');
  writeFileSync(configB, text.replace(/^state_dir = .*$/m, `state_dir = "${join(repo.dir, 'b-state')}"`), { mode: 0o600 });
  const envB = { ...repo.env, ZBK_CONFIG: configB };
  assert.equal((await runZbk(['manifest', 'rebuild'], envB)).code, 0);

  // A pushes again; B has not seen it.
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 128 * 1024, seed: 'stale-b' });
  await pool.zfs.snapshot(`${ds}@s2`);
  assert.equal((await repo.zbk(['push', ds])).code, 0);
  const records = (): string[] => readdirSync(join(repo.dir, 'store', 'streams'));
  const before = records();

  const stale = await runZbk(['push', ds, '--json'], envB);
  assert.equal(stale.code, 9, stale.stderr);
  const err = jsonOf<{ error: { code: string; message: string } }>(stale).error;
  assert.equal(err.code, 'MANIFEST_STALE');
  assert.match(err.message, /newer than this machine's manifest .*zbk manifest rebuild --force/);
  assert.deepEqual(records(), before, 'no stream was pushed from the stale manifest');

  assert.equal((await runZbk(['manifest', 'rebuild', '--force'], envB)).code, 0);
  const ok = await runZbk(['push', ds, '--json'], envB);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(jsonOf<PushResult>(ok).results[0]!.kind, 'none', 'B now knows @s2 was pushed: nothing to send');
  assert.deepEqual(records(), before);
});
