#!/usr/bin/env node
// Restore throughput: download from the S3 test server on loopback + open
// (authenticate, decrypt) + zfs receive, against a raw `zfs receive < file`
// of the same stream. Needs root, zfs (scripts/install-zfs-fuse.sh) and a
// build (npx tsc). Usage: node scripts/bench-restore.mjs [MiB=128]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const dist = new URL('../dist/', import.meta.url);
const { startS3TestServer } = await import(new URL('test/s3-server/index.js', dist));
const { createTestPool, writeRandomFiles } = await import(new URL('test/helpers/pool.js', dist));
const { createTestRepo } = await import(new URL('test/helpers/repo.js', dist));
const { loadConfig } = await import(new URL('src/config/config.js', dist));
const { createContext } = await import(new URL('src/services/context.js', dist));
const { passphraseSource } = await import(new URL('src/services/passphrase.js', dist));
const { openStore } = await import(new URL('src/store/open-store.js', dist));
const { restorePlan, restoreRun } = await import(new URL('src/services/restore/index.js', dist));

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 128) * MiB;
const server = await startS3TestServer({ buckets: ['zbk'], restoreDelayMs: 1 });
const pool = await createTestPool({ sizeMiB: Math.max(512, Math.ceil((size * 3) / MiB) + 256) });
const tmp = mkdtempSync(join(tmpdir(), 'zbk-bench-'));
let repo;
try {
  const ds = `${pool.name}/data`;
  await pool.zfs.createDataset(ds);
  const mnt = await pool.zfs.mountpoint(ds);
  writeRandomFiles(mnt, { files: Math.max(1, Math.round(size / (8 * MiB))), bytesEach: 8 * MiB, seed: 'bench' });
  await pool.zfs.snapshot(`${ds}@b`);
  const env = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  repo = await createTestRepo({ storeUrl: 's3://zbk/bench', endpoint: server.endpoint, datasets: [ds], extraEnv: env, partSize: '8MiB', volumeSize: '64MiB' });
  const p = await repo.zbk(['push', ds]);
  if (p.code !== 0) throw new Error(p.stderr);

  // Raw: the same stream from a file.
  const file = join(tmp, 'stream');
  const fd = openSync(file, 'w');
  const send = spawnSync('zfs', ['send', `${ds}@b`], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  if (send.status !== 0) throw new Error('zfs send failed');
  const streamBytes = Number(spawnSync('stat', ['-c', '%s', file], { encoding: 'utf8' }).stdout);
  const rin = openSync(file, 'r');
  let t0 = performance.now();
  const recv = spawnSync('zfs', ['receive', `${pool.name}/raw`], { stdio: [rin, 'inherit', 'inherit'] });
  const rawS = (performance.now() - t0) / 1000;
  closeSync(rin);
  if (recv.status !== 0) throw new Error('raw zfs receive failed');

  // zbk: restores requested and completed first (the thaw is not throughput), then timed.
  const config = loadConfig(repo.configPath);
  const ctx = createContext(config, passphraseSource(repo.env.ZBK_PASSPHRASE_FILE), { store: openStore(config.store, { credentials: server.credentials }) });
  await restorePlan(ctx, { dataset: ds, asap: true });
  const target = `${pool.name}/restored`;
  await restoreRun(ctx, { dataset: ds, target });
  await new Promise((r) => setTimeout(r, 50));
  t0 = performance.now();
  const r = await restoreRun(ctx, { dataset: ds, target });
  const zbkS = (performance.now() - t0) / 1000;
  if (!r.done) throw new Error(`restore not done: ${r.next.what}`);
  const mb = streamBytes / 1e6;
  console.log(JSON.stringify({ streamBytes, storedBytes: r.bytesDownloaded, rawReceiveMBps: +(mb / rawS).toFixed(1), zbkRestoreMBps: +(mb / zbkS).toFixed(1), ratio: +(rawS / zbkS).toFixed(2) }));
} finally {
  repo?.cleanup();
  await pool.destroy();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
}
