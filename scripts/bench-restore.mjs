#!/usr/bin/env node
// Restore throughput: download from the S3 test server on loopback + open
// (authenticate, decrypt) + zfs receive, against a raw `zfs receive < file`
// of the same stream. Needs root, zfs (scripts/install-zfs-fuse.sh) and a
// build (npx tsc). Usage: node scripts/bench-restore.mjs [MiB=128] [reps=3]
// Raw and zbk runs alternate; the median of the per-rep ratios is reported
// (the machine is shared: compare ratios, not MB/s across runs).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, closeSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readFileSync, readdirSync } from 'node:fs';
const fuseCpu = () => { let t = 0; for (const n of readdirSync('/proc')) { if (!/^\d+$/.test(n)) continue; try { const st = readFileSync(`/proc/${n}/stat`, 'utf8'); if (!st.includes('(zfs-fuse)')) continue; const f = st.slice(st.lastIndexOf(')') + 2).split(' '); t += (Number(f[11]) + Number(f[12])) * 10; } catch { /* process gone */ } } return t; };

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
const reps = Math.max(1, Number(process.argv[3] ?? 3));
const server = await startS3TestServer({ buckets: ['zbk'], restoreDelayMs: 1 });
const pool = await createTestPool({ sizeMiB: Math.max(512, Math.ceil((size * 3) / MiB) + 256) });
const tmp = mkdtempSync(join(tmpdir(), 'zbk-bench-'));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const destroy = async (ds) => {
  // zfs-fuse may still be busy mounting what it just received: retry a while.
  for (let i = 0; ; i++) {
    const r = spawnSync('zfs', ['destroy', '-f', '-r', ds], { encoding: 'utf8' });
    if (r.status === 0) return;
    if (i === 50) throw new Error(`zfs destroy ${ds}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
};
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
  const mb = streamBytes / 1e6;

  const config = loadConfig(repo.configPath);
  const ctx = createContext(config, passphraseSource(repo.env.ZBK_PASSPHRASE_FILE), {
    store: openStore(config.store, { credentials: server.credentials }),
    // ZBK_BENCH_LOG=1: the restore's log lines with times (where the time goes).
    ...(process.env.ZBK_BENCH_LOG ? { log: { info: (m) => console.error(`${performance.now().toFixed(0)} ${m}`), warn: (m) => console.error(`${performance.now().toFixed(0)} WARN ${m}`) } } : {}),
  });
  await restorePlan(ctx, { dataset: ds, asap: true });
  const target = `${pool.name}/restored`;
  // Restores requested and completed first (the thaw is not throughput).
  await restoreRun(ctx, { dataset: ds, target });
  await new Promise((r) => setTimeout(r, 50));

  const rows = [];
  let storedBytes = 0;
  for (let i = 0; i < reps; i++) {
    const rin = openSync(file, 'r');
    let f0 = fuseCpu();
    let t0 = performance.now();
    const recv = spawnSync('zfs', ['receive', `${pool.name}/raw`], { stdio: [rin, 'inherit', 'inherit'] });
    const rawS = (performance.now() - t0) / 1000;
    if (process.env.ZBK_BENCH_LOG) console.error(`raw: ${rawS.toFixed(2)} s, zfs-fuse cpu ${fuseCpu() - f0} ms`);
    closeSync(rin);
    if (recv.status !== 0) throw new Error('raw zfs receive failed');
    await destroy(`${pool.name}/raw`);

    // zbk: the copies stay restored, so a run after the target is destroyed downloads and receives everything again.
    f0 = fuseCpu(); const c0 = process.cpuUsage();
    t0 = performance.now();
    if (process.env.ZBK_BENCH_LOG) console.error(`${t0.toFixed(0)} restore run starts`);
    const r = await restoreRun(ctx, { dataset: ds, target });
    const zbkS = (performance.now() - t0) / 1000;
    if (process.env.ZBK_BENCH_LOG) { const c = process.cpuUsage(c0); console.error(`zbk: ${zbkS.toFixed(2)} s, zfs-fuse cpu ${fuseCpu() - f0} ms, node cpu user ${(c.user / 1000).toFixed(0)} sys ${(c.system / 1000).toFixed(0)} ms`); }
    if (!r.done) throw new Error(`restore not done: ${r.next.what}`);
    storedBytes = r.bytesDownloaded;
    await destroy(target);
    rows.push({ rawMBps: +(mb / rawS).toFixed(1), zbkMBps: +(mb / zbkS).toFixed(1), ratio: +(rawS / zbkS).toFixed(2) });
  }
  console.log(JSON.stringify({ streamBytes, storedBytes, reps: rows, medianRatio: median(rows.map((x) => x.ratio)), load1: +loadavg()[0].toFixed(2) }));
} finally {
  repo?.cleanup();
  await pool.destroy();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
}
