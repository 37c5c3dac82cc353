#!/usr/bin/env node
// Restore throughput: download from the S3 test server on loopback (a
// separate process, as a real store would be) + open (authenticate,
// decrypt, hash) + stage to disk + zfs receive, against in the same rep:
//   raw   zfs receive < file                 (no staging, no crypto, no network)
//   tee   tee staged < file | zfs receive; sync staged
//         (the same disk work as zbk: every byte staged durably and received)
// Needs root, zfs (scripts/install-zfs-fuse.sh) and a build (npx tsc).
// Usage: node scripts/bench-restore.mjs [MiB=512] [reps=3] [partMiB=32] [volumeMiB=256]
// The runs alternate; the median of the per-rep ratios is reported (the
// machine is shared: compare ratios, not MB/s across runs).
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, openSync, rmSync, closeSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
const fuseCpu = () => { let t = 0; for (const n of readdirSync('/proc')) { if (!/^\d+$/.test(n)) continue; try { const st = readFileSync(`/proc/${n}/stat`, 'utf8'); if (!st.includes('(zfs-fuse)')) continue; const f = st.slice(st.lastIndexOf(')') + 2).split(' '); t += (Number(f[11]) + Number(f[12])) * 10; } catch { /* process gone */ } } return t; };

const dist = new URL('../dist/', import.meta.url);
const { createTestPool, writeRandomFiles } = await import(new URL('test/helpers/pool.js', dist));
const { createTestRepo } = await import(new URL('test/helpers/repo.js', dist));
const { loadConfig } = await import(new URL('src/config/config.js', dist));
const { createContext } = await import(new URL('src/services/context.js', dist));
const { passphraseSource } = await import(new URL('src/services/passphrase.js', dist));
const { openStore } = await import(new URL('src/store/open-store.js', dist));
const { restorePlan, restoreRun } = await import(new URL('src/services/restore/index.js', dist));

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 512) * MiB;
const reps = Math.max(1, Number(process.argv[3] ?? 3));
const partMiB = Number(process.argv[4] ?? 32);
const volumeMiB = Number(process.argv[5] ?? 256);
const tmp = mkdtempSync(join(tmpdir(), 'zbk-bench-'));
// The store in its own process, persisting to disk, like any real endpoint.
const serverProc = spawn(process.execPath, [fileURLToPath(new URL('test/s3-server/main.js', dist)), '--port', '0', '--dir', join(tmp, 's3'), '--restore-delay-ms', '1', '--bucket', 'zbk'], { stdio: ['ignore', 'pipe', 'inherit'] });
/** CPU ms (user + system) the S3 test server process has used so far. */
const serverCpu = () => { const f = readFileSync(`/proc/${serverProc.pid}/stat`, 'utf8'); const x = f.slice(f.lastIndexOf(')') + 2).split(' '); return (Number(x[11]) + Number(x[12])) * 10; };
const server = await new Promise((resolve, reject) => {
  serverProc.once('exit', (code) => reject(new Error(`S3 test server exited (${code})`)));
  createInterface({ input: serverProc.stdout }).once('line', (l) => resolve(JSON.parse(l)));
});
server.credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
const pool = await createTestPool({ sizeMiB: Math.max(512, Math.ceil((size * 4) / MiB) + 256) });
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
  repo = await createTestRepo({ storeUrl: 's3://zbk/bench', endpoint: server.endpoint, datasets: [ds], extraEnv: env, partSize: `${partMiB}MiB`, volumeSize: `${volumeMiB}MiB` });
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

    // Tee: the same stream staged durably to a file while zfs receive reads it (zbk's disk work, nothing else).
    const staged = join(tmp, 'staged');
    const tf0 = fuseCpu();
    t0 = performance.now();
    const tee = spawnSync('sh', ['-c', 'tee "$1" < "$2" | zfs receive "$3" && sync "$1"', 'sh', staged, file, `${pool.name}/tee`], { stdio: ['ignore', 'ignore', 'inherit'] });
    const teeS = (performance.now() - t0) / 1000;
    const teeFuseMs = fuseCpu() - tf0;
    if (tee.status !== 0) throw new Error('tee | zfs receive failed');
    rmSync(staged, { force: true });
    await destroy(`${pool.name}/tee`);

    // zbk: the copies stay restored, so a run after the target is destroyed downloads and receives everything again.
    // A finished restore stays done: plan it anew (untimed); the copies are still restored.
    await restorePlan(ctx, { dataset: ds, asap: true });
    // ZBK_BENCH_PROFILE=FILE: a CPU profile of the zbk restore of the last rep (open it in Chrome DevTools).
    const profiler = process.env.ZBK_BENCH_PROFILE && i === reps - 1 ? new (await import('node:inspector/promises')).Session() : null;
    if (profiler) { profiler.connect(); await profiler.post('Profiler.enable'); await profiler.post('Profiler.start'); }
    // Peak RSS of this rep alone: reset the process's high-water mark first (Linux: clear_refs 5).
    globalThis.gc?.();
    try { writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not Linux: the peak covers the whole run */ }
    f0 = fuseCpu(); const c0 = process.cpuUsage(); const s0 = serverCpu();
    t0 = performance.now();
    if (process.env.ZBK_BENCH_LOG) console.error(`${t0.toFixed(0)} restore run starts`);
    const r = await restoreRun(ctx, { dataset: ds, target });
    const zbkS = (performance.now() - t0) / 1000;
    const peakRssMB = Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024);
    const c = process.cpuUsage(c0); const fuseMs = fuseCpu() - f0; const serverMs = serverCpu() - s0;
    if (process.env.ZBK_BENCH_LOG) console.error(`zbk: ${zbkS.toFixed(2)} s, zfs-fuse cpu ${fuseMs} ms, node cpu user ${(c.user / 1000).toFixed(0)} sys ${(c.system / 1000).toFixed(0)} ms, S3 server cpu ${serverMs} ms`);
    if (profiler) { const { profile } = await profiler.post('Profiler.stop'); writeFileSync(process.env.ZBK_BENCH_PROFILE, JSON.stringify(profile)); profiler.disconnect(); }
    if (!r.done) throw new Error(`restore not done: ${r.next.what}`);
    storedBytes = r.bytesDownloaded;
    await destroy(target);
    // CPU seconds per GB of stream: the zbk process (download, open, hash, stage, feed), the zfs-fuse daemon (the
    // receive's work, also for tee: its figure is the floor), the S3 test server (what a real store would spend).
    const perGB = (ms) => +(ms / 1000 / (streamBytes / 1e9)).toFixed(2);
    rows.push({
      rawMBps: +(mb / rawS).toFixed(1), teeMBps: +(mb / teeS).toFixed(1), zbkMBps: +(mb / zbkS).toFixed(1), ratio: +(rawS / zbkS).toFixed(2), ratioTee: +(teeS / zbkS).toFixed(2), peakRssMB,
      zbkCpuPerGB: perGB((c.user + c.system) / 1000), fuseCpuPerGB: perGB(fuseMs), teeFuseCpuPerGB: perGB(teeFuseMs), serverCpuPerGB: perGB(serverMs),
    });
  }
  console.log(JSON.stringify({ streamBytes, storedBytes, partMiB, volumeMiB, reps: rows, medianRatio: median(rows.map((x) => x.ratio)), medianRatioTee: median(rows.map((x) => x.ratioTee)), medianZbkCpuPerGB: median(rows.map((x) => x.zbkCpuPerGB)), load1: +loadavg()[0].toFixed(2) }));
} finally {
  repo?.cleanup();
  await pool.destroy();
  serverProc.removeAllListeners('exit');
  serverProc.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
}
