/**
 * Bandwidth limits end to end, through the CLI and the S3 test server: a
 * push with `[upload] limit` killed after a few parts resumes (with
 * `--limit-upload` overriding the config, as a schedule) and the pushed
 * chain restores to identical files; `verify --deep --limit-download`
 * drills it through the paced download; bad limits are one line with the
 * documented exit codes (2 for a flag, 3 for the config). No timing is
 * asserted here (scripts/bench-limit measures the rate).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'smol-toml';
import { writeConfigFile } from '../../src/config/config.js';
import type { PushResult } from '../../src/services/push.js';
import type { DeepVerifyResult } from '../../src/services/verify-deep.js';
import { jsonOf, startZbk } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles, zfsUnderTest } from '../helpers/pool.js';
import { restoreLatestDirect } from '../helpers/restore-direct.js';
import { hashTree } from '../helpers/tree-hash.js';
import { startS3TestServer } from '../s3-server/index.js';
import { datasetRepo, mountOf } from './fixture.js';

/** Rewrite keys of the repository's config (as a user would edit it). */
function setConfig(path: string, patch: Record<string, Record<string, unknown>>): void {
  const doc = parse(readFileSync(path, 'utf8')) as Record<string, Record<string, unknown>>;
  for (const [section, keys] of Object.entries(patch)) doc[section] = { ...(doc[section] ?? {}), ...keys };
  writeConfigFile(path, doc);
}

test(
  'a push limited by [upload] limit through the S3 test server, killed after 3 parts, resumes under --limit-upload and restores identically; verify --deep --limit-download drills it',
  { skip: zfsUnderTest === 'openzfs' && 'the limit does not depend on the ZFS: run in the zfs-fuse lane' },
  async (t) => {
    if (!requireZfs(t)) return;
    const server = await startS3TestServer({ buckets: ['zbk'] });
    t.after(() => server.close());
    const env = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
    const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'limited', repo: { storeUrl: 's3://zbk/limited', endpoint: server.endpoint, extraEnv: env } });
    // Data readable at once (STANDARD), so the drill and the direct restore can read it back.
    setConfig(repo.configPath, { store: { data_storage_class: 'STANDARD' }, upload: { parallel: 3, limit: '16MiB/s' } });

    writeRandomFiles(mnt, { files: 4, bytesEach: 3 * 1024 * 1024, seed: 'limit' });
    await pool.zfs.snapshot(`${ds}@s1`);
    const killed = await startZbk(['push', ds], { ...repo.env, ZBK_CRASH_AT: 'part-acked:3' }).done;
    assert.equal(killed.signal, 'SIGKILL', `the push was to be killed after 3 parts: ${killed.stderr}`);
    assert.match(killed.stderr, /upload limited to 16 MiB\/s/);

    // The flag overrides the config, here with a schedule covering the day.
    const resumed = await startZbk(['push', ds, '--json', '--limit-upload', '00:00-12:00=12MiB/s, 12:00-24:00=20MiB/s'], repo.env).done;
    assert.equal(resumed.code, 0, resumed.stderr);
    const r1 = jsonOf<PushResult>(resumed).results[0]!;
    assert.equal(r1.kind, 'full');
    assert.ok(r1.resumed, 'the killed upload was resumed');
    assert.ok(r1.partsSkipped >= 1, `acknowledged parts are not sent again (${r1.partsSkipped} skipped)`);

    writeRandomFiles(join(mnt, 'more'), { files: 2, bytesEach: 2 * 1024 * 1024, seed: 'limit-2' });
    await pool.zfs.snapshot(`${ds}@s2`);
    const off = await startZbk(['push', ds, '--json', '--limit-upload', 'off'], repo.env).done;
    assert.equal(off.code, 0, off.stderr);
    assert.equal(jsonOf<PushResult>(off).results[0]!.kind, 'incremental');
    assert.doesNotMatch(off.stderr, /upload limited to/, '--limit-upload off disables the configured limit');

    const target = `${pool.name}/restored`;
    // The direct restore runs in this process: it needs the server's credentials too.
    for (const [k, v] of Object.entries(env)) process.env[k] = v;
    t.after(() => {
      for (const k of Object.keys(env)) delete process.env[k];
    });
    await restoreLatestDirect(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, target, pool.zfs);
    assert.deepEqual(await hashTree(await pool.zfs.mount(target).catch(() => mountOf(pool, target))), await hashTree(mnt), 'restored files differ from the source');

    const drill = await startZbk(['verify', '--deep', '--dataset', ds, '--limit-download', '24MiB/s', '--json'], repo.env).done;
    assert.equal(drill.code, 0, drill.stderr);
    const d = jsonOf<DeepVerifyResult>(drill);
    assert.equal(d.outcome, 'verified');
    assert.ok(d.comparedWithLocal && d.filesCompared > 0);
  },
);

test('bad limits: a flag is one line, exit 2, before the config is read; the config is one line naming file, line and key, exit 3', async (t) => {
  if (!requireZfs(t)) return;
  const { ds, repo } = await datasetRepo(t, { name: 'badlimit', sizeMiB: 128 });
  for (const [args, flag] of [
    [['push', ds, '--limit-upload', 'fast'], 'limit-upload'],
    [['restore', 'run', ds, '--target', 'x/y', '--limit-download', '2MiB/s, 08:00-09:00=off'], 'limit-download'],
    [['verify', '--deep', '--limit-download', '08:00-23:00=2MiB/s'], 'limit-download'],
  ] as const) {
    const r = await startZbk([...args], { ...repo.env, ZBK_CONFIG: '/nonexistent/config.toml' }).done;
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^zbk: --${flag}: `));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  setConfig(repo.configPath, { upload: { limit: '08:00-23:00=2MiB/s' } });
  const r = await startZbk(['push', ds], repo.env).done;
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^zbk: .*config\.toml:\d+: upload\.limit is not a bandwidth limit: the schedule leaves 00:00-08:00 without a rate/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});
