#!/usr/bin/env node
/**
 * How zbk's commands grow with the repository (issue #22, item 1); run it
 * through `scripts/bench-scale`, which builds first when dist is stale.
 *
 * For each size (default 1, 10 and 50 thousand streams) a repository is
 * built directly through the library, in the S3 test server (its own
 * process, persisting to a directory) with a zfs-fuse dataset for the push:
 *   - `zbk init` (CLI, --kdf min) makes the key file and the manifest;
 *   - a synthetic history is imported with `Manifest.importCompleteStream`:
 *     5–15 datasets pushed daily (10 years × 14 datasets at 50 k streams),
 *     a new chain every ~6 months the way `zbk consolidate` makes one (a
 *     full of the latest pushed snapshot, the old chain marked superseded
 *     with `markSuperseded`), then what retention ([retention] keep_last 7,
 *     keep_monthly 12, keep_yearly 10) no longer needs and is past Deep
 *     Archive's 180 days is marked deleted (`deletableObjects`,
 *     `markVolumesDeleted`), the rest is stored: every volume a real sealed
 *     part of a few bytes with real sealed `zbk-meta` metadata, every stream
 *     a real sealed stream record (PUTs through the library's S3 store);
 *   - dataset 0 is a real zfs-fuse dataset: its last stream ends at a real
 *     snapshot (real guid), so `zbk push` sends a real small incremental.
 * Then each command runs as its own process (`node bin/run.js ...`, as a
 * user runs it) --reps times; the table has the median wall time, the
 * manifest and mirror sizes, and the growth exponent of each command
 * (log-log slope between sizes; also of the time above a bare `zbk
 * --version`, which is node + oclif start-up).
 *
 * Usage (root, zfs-fuse): scripts/bench-scale [--sizes 1000,10000,50000]
 *   [--reps 3] [--only status,cost,...] [--keep] [--profile DIR]
 * --profile DIR writes a CPU profile of every command run (node --cpu-prof).
 * Internal: `node scripts/bench-scale.mjs generate|mirror|unmirror ...`.
 */
import { spawnSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(REPO, 'dist', 'src');
const log = (m) => process.stderr.write(`${m}\n`);
const DAY = 86_400_000;

// ---------------------------------------------------------------- deterministic randomness

function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const bytes = (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
    return b;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), bytes, hex: (n) => bytes(n).toString('hex') };
}

/** Datasets for a size: 5 at ≤ 1 k streams, 10 at ≤ 10 k, 14 above (10 years daily ≈ 3,650 each). */
export function datasetsFor(streams) {
  return streams <= 1000 ? 5 : streams <= 10000 ? 10 : 14;
}

// ---------------------------------------------------------------- generate (a child process)

async function pool(items, concurrency, fn) {
  let i = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (i < items.length) {
      const item = items[i++];
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/**
 * Build the synthetic repository: manifest (state dir of `config`) and the
 * objects in its store. `real`: the zfs snapshot dataset 0's history ends at.
 */
async function generate(opts) {
  const { loadConfig } = await import(join(DIST, 'config/config.js'));
  const { createContext, openKeyring, manifestPath } = await import(join(DIST, 'services/context.js'));
  const { passphraseSource } = await import(join(DIST, 'services/passphrase.js'));
  const { Manifest } = await import(join(DIST, 'manifest/manifest.js'));
  const { deletableObjects } = await import(join(DIST, 'services/consolidate/retention.js'));
  const { BLOB_STREAM_RECORD, VOLUME_META_HEADER, streamRecordKey, volumeKey } = await import(join(DIST, 'layout.js'));

  const config = loadConfig(opts.config);
  const ctx = createContext(config, passphraseSource(undefined));
  const keyring = await openKeyring(ctx);
  const real = JSON.parse(opts.real);
  const total = Number(opts.streams);
  const nDatasets = datasetsFor(total);
  const rnd = prng(total);
  const now = Date.now();
  const dataClass = config.store.dataStorageClass;
  const metaClass = config.store.metaStorageClass;
  const partSize = config.upload.partSize;
  const volumeSize = config.upload.volumeSize;
  const sendFlags = ['-c', '-L', '-e'];

  // The manifest is filled on tmpfs (each import is a synchronous=FULL transaction), then copied back.
  const statePath = manifestPath(config);
  const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const work = mkdtempSync(join(shm, 'zbk-scale-'));
  const tmpPath = join(work, 'manifest.db');
  copyFileSync(statePath, tmpPath);
  const m = Manifest.open(tmpPath, { create: false });

  const t0 = Date.now();
  const bodies = new Map(); // volume key -> sealed bytes (kept until uploaded; a few hundred bytes each)
  const records = new Map(); // stream id -> sealed record
  const chains = []; // per dataset: arrays of stream ids per chain
  let made = 0;
  for (let di = 0; di < nDatasets; di++) {
    const dataset = di === 0 ? real.dataset : `${real.pool}/ds${String(di).padStart(2, '0')}`;
    const quota = Math.floor(total / nDatasets) + (di < total % nDatasets ? 1 : 0);
    // Days such that days + (chains - 1) extra consolidation fulls = quota.
    const chainLen = rnd.int(170, 195);
    const days = Math.max(1, Math.round((quota + 1) / (1 + 1 / chainLen)));
    const firstDay = now - (days + 1) * DAY;
    const dsChains = [];
    let chain = [];
    let txg = 1000n;
    let prev = null; // { name, guid, createtxg, creation }
    let sinceFull = 0;
    let count = 0;
    const stream = (from, to, at, kind) => {
      const streamId = rnd.hex(16);
      const nVol = kind === 'full' ? 8 : rnd.next() < 0.05 ? 2 : 1;
      const vols = [];
      const recVols = [];
      for (let i = 0; i < nVol; i++) {
        const key = volumeKey(streamId, i);
        const plain = rnd.bytes(rnd.int(16, 64));
        const sealed = Buffer.from(keyring.sealPart({ streamId: Buffer.from(streamId, 'hex'), volumeIndex: i, partIndex: 0, final: true }, plain));
        const sha = createHash('sha256').update(plain).digest('hex');
        const etag = createHash('md5').update(sealed).digest('hex');
        const meta = keyring.sealVolumeMetadata({
          dataset,
          streamId,
          fromSnapshot: from ? { name: from.name, guid: from.guid.toString() } : null,
          toSnapshot: { name: to.name, guid: to.guid.toString(), createtxg: to.createtxg.toString(), creation: to.creation },
          volumeIndex: i,
          volumeSize,
          partSize,
          startedAt: new Date(at).toISOString(),
        });
        bodies.set(key, { sealed, meta });
        vols.push({ index: i, key, storageClass: dataClass, storedSize: sealed.length, partCount: 1, plaintextSize: plain.length, plaintextSha256: sha, etag, uploadedAt: new Date(at + 60_000) });
        recVols.push({ index: i, key, plaintextSize: plain.length, plaintextSha256: sha, storedSize: sealed.length, partCount: 1, partSize, etag });
      }
      const plaintextSize = vols.reduce((a, v) => a + v.plaintextSize, 0);
      const storedSize = vols.reduce((a, v) => a + v.storedSize, 0);
      const startedAt = new Date(at);
      const completedAt = new Date(at + 120_000);
      m.importCompleteStream({ streamId, dataset, from: from ? { name: from.name, guid: from.guid } : null, to, plaintextSize, storedSize, volumeSize, partSize, startedAt, completedAt, sendFlags, volumes: vols });
      const record = {
        v: 1, streamId, dataset,
        from: from ? { name: from.name, guid: from.guid.toString() } : null,
        to: { name: to.name, guid: to.guid.toString(), createtxg: to.createtxg.toString(), creation: to.creation },
        plaintextSize, storedSize, volumes: recVols, startedAt: startedAt.toISOString(), completedAt: completedAt.toISOString(), sendFlags,
      };
      records.set(streamId, keyring.sealBlob(BLOB_STREAM_RECORD, Buffer.from(JSON.stringify(record), 'utf8')));
      chain.push(streamId);
      count++;
      made++;
    };
    for (let day = 0; count < quota; day++) {
      const at = firstDay + day * DAY + di * 60_000;
      const last = count === quota - 1;
      if (prev && sinceFull >= chainLen && count < quota - 1) {
        // zbk consolidate: a new full of the latest pushed snapshot starts the next chain.
        dsChains.push(chain);
        chain = [];
        stream(null, prev, at - DAY / 2, 'full');
        sinceFull = 0;
        continue;
      }
      txg += BigInt(rnd.int(20, 400));
      const d = new Date(at);
      const to = last && di === 0
        ? { name: real.name, guid: BigInt(real.guid), createtxg: txg, creation: real.creation }
        : { name: `zbk-daily-${d.toISOString().slice(0, 10)}`, guid: BigInt(`0x${rnd.hex(8)}`) | 1n, createtxg: txg, creation: Math.floor(at / 1000) };
      stream(prev, to, at, prev ? 'incremental' : 'full');
      prev = to;
      sinceFull++;
    }
    dsChains.push(chain);
    chains.push({ dataset, chains: dsChains });
  }
  log(`  imported ${made} streams (${nDatasets} datasets) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Consolidation's marks: every chain but the newest superseded; what no kept snapshot needs and is
  // past its minimum storage duration deleted (consolidate --apply), the rest scheduled.
  const t1 = Date.now();
  for (const c of chains) {
    const old = c.chains.slice(0, -1).flat();
    if (old.length > 0) m.markSuperseded(old, new Date(now - DAY));
  }
  const rules = config.retention;
  const deletable = deletableObjects(m, rules);
  const due = deletable.filter((o) => o.uploadedAt && now - o.uploadedAt.getTime() > 180 * DAY);
  const stillComplete = [...new Set(due.map((o) => o.streamId))].filter((id) => m.stream(id)?.state === 'complete');
  if (stillComplete.length > 0) m.markSuperseded(stillComplete, new Date(now - DAY));
  m.markVolumesDeleted(due.map((o) => o.key), new Date(now - DAY));
  log(`  superseded old chains, ${deletable.length} volumes unneeded, ${due.length} deleted, in ${((Date.now() - t1) / 1000).toFixed(1)} s`);

  // What the store holds: the volumes still complete, the records of streams not wholly deleted.
  const stored = m.streams().filter((s) => s.state === 'complete' || s.state === 'superseded');
  const puts = [];
  for (const s of stored) {
    puts.push({ key: streamRecordKey(s.streamId), body: records.get(s.streamId), opts: { storageClass: metaClass } });
    for (const v of m.volumes(s.streamId)) {
      if (v.state !== 'complete') continue;
      const b = bodies.get(v.key);
      puts.push({ key: v.key, body: b.sealed, opts: { storageClass: dataClass, metadata: { [VOLUME_META_HEADER]: b.meta } } });
    }
  }
  const counts = { total: 0 };
  for (const s of m.streams()) {
    counts[s.state] = (counts[s.state] ?? 0) + 1;
    counts.total++;
  }
  m.close();
  copyFileSync(tmpPath, statePath);
  rmSync(work, { recursive: true, force: true });

  const t2 = Date.now();
  let done = 0;
  await pool(puts, 32, async (p) => {
    await ctx.store.put(p.key, p.body, p.opts);
    if (++done % 10000 === 0) log(`    ${done}/${puts.length} objects stored`);
  });
  log(`  stored ${puts.length} objects in ${((Date.now() - t2) / 1000).toFixed(1)} s`);
  process.stdout.write(JSON.stringify({ streams: counts, datasets: nDatasets, objects: puts.length + 1 }) + '\n');
}

/** Time writeMirror (the push's mirror upload) on the repository of `config`, in this process. */
async function mirror(opts) {
  const { loadConfig } = await import(join(DIST, 'config/config.js'));
  const { createContext, openKeyring, openManifest } = await import(join(DIST, 'services/context.js'));
  const { passphraseSource } = await import(join(DIST, 'services/passphrase.js'));
  const { writeMirror } = await import(join(DIST, 'manifest/mirror.js'));
  const config = loadConfig(opts.config);
  const ctx = createContext(config, passphraseSource(undefined));
  const keyring = await openKeyring(ctx);
  const m = openManifest(ctx, keyring);
  const t0 = performance.now();
  const check = m.integrityCheck();
  const t1 = performance.now();
  const copy = m.compactedCopy();
  const t2 = performance.now();
  const r = await writeMirror(m, ctx.store, keyring, { keep: config.mirrors, storageClass: config.store.metaStorageClass });
  const t3 = performance.now();
  m.close();
  process.stdout.write(JSON.stringify({ seconds: (t3 - t2) / 1000, integritySeconds: (t1 - t0) / 1000, compactSeconds: (t2 - t1) / 1000, ok: check.ok, size: r.size, plainSize: copy.length }) + '\n');
}

/** Delete every mirror from the store (for the rebuild from the listing alone). */
async function unmirror(opts) {
  const { loadConfig } = await import(join(DIST, 'config/config.js'));
  const { createContext } = await import(join(DIST, 'services/context.js'));
  const { passphraseSource } = await import(join(DIST, 'services/passphrase.js'));
  const { listMirrors } = await import(join(DIST, 'manifest/mirror.js'));
  const ctx = createContext(loadConfig(opts.config), passphraseSource(undefined));
  const keys = (await listMirrors(ctx.store)).map((x) => x.key);
  if (keys.length > 0) await ctx.store.deleteMany(keys);
  process.stdout.write(JSON.stringify({ deleted: keys.length }) + '\n');
}

// ---------------------------------------------------------------- the driver

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function startS3(dir) {
  mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [join(REPO, 'dist/test/s3-server/main.js'), '--port', '0', '--dir', dir, '--bucket', 'scale'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((res, rej) => {
    let buf = '';
    child.stdout.on('data', (c) => {
      buf += c;
      if (buf.includes('\n')) res(buf.split('\n')[0]);
    });
    child.once('exit', (code) => rej(new Error(`S3 test server exited ${code}`)));
  });
  return { child, info: JSON.parse(line) };
}

async function stopS3(s3) {
  if (s3.child.exitCode !== null) return;
  const done = new Promise((res) => s3.child.once('exit', res));
  s3.child.kill('SIGTERM');
  await done;
}

async function driver(values) {
  if (process.getuid?.() !== 0) throw new Error('run as root (zpool create)');
  const sizes = (values.sizes ?? '1000,10000,50000').split(',').map(Number);
  const reps = Number(values.reps ?? 3);
  const ALL = ['version', 'status', 'status-json', 'cost', 'cost-simulate', 'plan-free', 'plan-budget', 'consolidate', 'verify', 'mirror', 'push', 'rebuild-mirror', 'rebuild-listing'];
  const only = new Set((values.only ?? ALL.join(',')).split(','));
  const base = process.env.TMPDIR ?? '/tmp';
  const work = mkdtempSync(join(base, 'zbk-scale.'));
  const poolName = `zbkscale${process.pid}`;
  const dataset = `${poolName}/ds00`;
  const profileDir = values.profile ? resolve(values.profile) : null;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  let s3 = null;
  let poolMade = false;
  const cleanup = async () => {
    if (s3) await stopS3(s3).catch(() => {});
    if (poolMade) {
      for (let i = 0; i < 5; i++) {
        if (sh('zpool', ['destroy', '-f', poolName], { allowFail: true }).status === 0) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    if (!values.keep) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    sh('bash', [join(REPO, 'scripts/install-zfs-fuse.sh')]);
    sh('truncate', ['-s', '512M', join(work, 'pool.img')]);
    sh('zpool', ['create', '-f', '-m', join(work, 'mnt'), poolName, join(work, 'pool.img')]);
    poolMade = true;
    sh('zfs', ['create', dataset]);
    const mnt = join(work, 'mnt', 'ds00');
    writeFileSync(join(work, 'pass'), 'bench passphrase, not for real use\n', { mode: 0o600 });
    const loads = [readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')];
    const results = []; // { size, cmd, secs[] , extra }
    const meta = [];
    let fileNo = 0;
    const snapshot = (name) => {
      writeFileSync(join(mnt, `file-${fileNo++}`), Buffer.alloc(64 * 1024, fileNo));
      sh('zfs', ['snapshot', `${dataset}@${name}`]);
      const [guid, createtxg, creation] = sh('zfs', ['get', '-Hp', '-o', 'value', 'guid,createtxg,creation', `${dataset}@${name}`]).stdout.trim().split('\n');
      return { dataset, pool: poolName, name, guid, createtxg, creation: Number(creation) };
    };

    for (const size of sizes) {
      const dir = join(work, `n${size}`);
      mkdirSync(dir, { recursive: true });
      log(`== ${size} streams (load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
      s3 = await startS3(join(dir, 's3'));
      const env = {
        ...process.env,
        ZBK_CONFIG: join(dir, 'config.toml'),
        ZBK_PASSPHRASE_FILE: join(work, 'pass'),
        AWS_ACCESS_KEY_ID: s3.info.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.info.secretAccessKey,
        ZBK_TEST_ALLOW_WEAK_KDF: '1',
      };
      sh(process.execPath, [join(REPO, 'bin/run.js'), 'init', '--store', 's3://scale/zbk', '--endpoint', s3.info.endpoint, '--region', s3.info.region, '--path-style',
        '--dataset', dataset, '--state-dir', join(dir, 'state'), '--kdf', 'min'], { env });
      appendFileSync(env.ZBK_CONFIG, '\n[retention]\nkeep_last = 7\nkeep_monthly = 12\nkeep_yearly = 10\n');
      const real = snapshot(`base-${size}`);
      const self = fileURLToPath(import.meta.url);
      const gen = sh(process.execPath, [self, 'generate', '--config', env.ZBK_CONFIG, '--streams', String(size), '--real', JSON.stringify(real)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      const g = JSON.parse(gen.stdout.trim().split('\n').pop());
      const dbPath = join(dir, 'state', 'manifest.db');
      const row = { size, datasets: g.datasets, states: g.streams, objects: g.objects, manifestBytes: statSync(dbPath).size };
      meta.push(row);
      log(`  streams by state ${JSON.stringify(g.streams)}; ${g.objects} objects in the store; manifest ${(row.manifestBytes / 1e6).toFixed(1)} MB`);

      const zbk = (name, args, rep) => {
        const prof = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${size}-${name}-${rep}.cpuprofile`] : [];
        const t0 = performance.now();
        const r = spawnSync(process.execPath, [...prof, join(REPO, 'bin/run.js'), ...args], { env, encoding: 'utf8', maxBuffer: 1 << 30 });
        const secs = (performance.now() - t0) / 1000;
        if (r.status !== 0) throw new Error(`zbk ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-2000)}`);
        return { secs, stdout: r.stdout };
      };
      const time = (name, args, { n = reps, before } = {}) => {
        if (!only.has(name)) return;
        const secs = [];
        let out = '';
        for (let i = 0; i < n; i++) {
          before?.();
          const r = zbk(name, args, i);
          secs.push(r.secs);
          out = r.stdout;
          // One slow rep is enough to place it on the table.
          if (r.secs > 30) break;
        }
        results.push({ size, cmd: name, secs });
        log(`  ${name}: ${secs.map((s) => s.toFixed(2)).join(' / ')} s`);
        return out;
      };
      time('version', ['--version']);
      time('status', ['status']);
      time('status-json', ['status', '--json']);
      time('cost', ['cost']);
      time('cost-simulate', ['cost', 'simulate']);
      time('plan-free', ['restore', 'plan', dataset, '--dry-run']);
      time('plan-budget', ['restore', 'plan', dataset, '--budget', '25', '--dry-run']);
      time('consolidate', ['consolidate']);
      const v = time('verify', ['verify', '--json']);
      if (v) {
        const vr = JSON.parse(v);
        if (!vr.ok) throw new Error(`verify found problems: ${JSON.stringify(vr.problems.slice(0, 3))}`);
        log(`    verify: ${vr.objectsChecked} volumes, ${vr.coverage.streamRecords} stream records checked`);
      }
      if (only.has('mirror')) {
        const secs = [];
        let mr;
        for (let i = 0; i < reps; i++) {
          const r = sh(process.execPath, [self, 'mirror', '--config', env.ZBK_CONFIG], { env, stdio: ['ignore', 'pipe', 'inherit'] });
          mr = JSON.parse(r.stdout.trim().split('\n').pop());
          secs.push(mr.seconds);
        }
        results.push({ size, cmd: 'mirror', secs });
        row.mirrorBytes = mr.size;
        row.integritySeconds = mr.integritySeconds;
        row.compactSeconds = mr.compactSeconds;
        log(`  mirror (writeMirror, in process): ${secs.map((s) => s.toFixed(2)).join(' / ')} s, ${mr.size} B sealed; integrity check ${mr.integritySeconds.toFixed(2)} s, compacted copy ${mr.compactSeconds.toFixed(2)} s`);
      }
      let pushNo = 0;
      time('push', ['push', dataset], { before: () => snapshot(`next-${size}-${pushNo++}`) });
      time('rebuild-mirror', ['manifest', 'rebuild', '--force']);
      if (only.has('rebuild-listing')) {
        sh(process.execPath, [self, 'unmirror', '--config', env.ZBK_CONFIG], { env, stdio: ['ignore', 'pipe', 'inherit'] });
        time('rebuild-listing', ['manifest', 'rebuild', '--force']);
      }
      await stopS3(s3);
      s3 = null;
      rmSync(join(dir, 's3'), { recursive: true, force: true });
      loads.push(readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '));
    }
    report(sizes, results, meta, loads);
  } finally {
    await cleanup();
  }
}

function report(sizes, results, meta, loads) {
  const names = {
    version: '`zbk --version` (start-up)',
    status: '`zbk status`',
    'status-json': '`zbk status --json`',
    cost: '`zbk cost`',
    'cost-simulate': '`zbk cost simulate`',
    'plan-free': '`zbk restore plan DS --dry-run` (free egress)',
    'plan-budget': '`zbk restore plan DS --budget 25 --dry-run`',
    consolidate: '`zbk consolidate` (report)',
    verify: '`zbk verify`',
    mirror: 'mirror upload (`writeMirror`, in process)',
    push: '`zbk push DS` (one small incremental, mirror included)',
    'rebuild-mirror': '`zbk manifest rebuild --force` (from the mirror)',
    'rebuild-listing': '`zbk manifest rebuild --force`, mirrors removed (listing alone)',
  };
  // Start-up does not depend on the repository: one figure from every size's reps.
  const startupAll = median(results.filter((r) => r.cmd === 'version').flatMap((r) => r.secs).concat(results.some((r) => r.cmd === 'version') ? [] : [0]));
  const startup = new Map(sizes.map((n) => [n, startupAll]));
  const slope = (t1, t2, n1, n2) => (t1 > 0 && t2 > 0 ? Math.log(t2 / t1) / Math.log(n2 / n1) : NaN);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
  const head = ['command', ...sizes.map((n) => `${n / 1000} k s`)];
  const pairs = sizes.slice(1).map((n, i) => [sizes[i], n]);
  head.push(...pairs.map(([a, b]) => `slope ${a / 1000}→${b / 1000} k`), ...pairs.map(([a, b]) => `slope above start-up ${a / 1000}→${b / 1000} k`));
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
  for (const cmd of Object.keys(names)) {
    const per = sizes.map((n) => results.find((r) => r.size === n && r.cmd === cmd));
    if (per.every((x) => !x)) continue;
    const med = per.map((x) => (x ? median(x.secs) : NaN));
    const cells = [names[cmd], ...med.map((x) => (Number.isFinite(x) ? x.toFixed(2) : '–'))];
    cells.push(...pairs.map(([a, b]) => f(slope(med[sizes.indexOf(a)], med[sizes.indexOf(b)], a, b))));
    const inProcess = cmd === 'mirror' || cmd === 'version';
    cells.push(...pairs.map(([a, b]) => (inProcess ? '' : f(slope(med[sizes.indexOf(a)] - startup.get(a), med[sizes.indexOf(b)] - startup.get(b), a, b)))));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const m = (k, fmt) => sizes.map((n) => fmt(meta.find((x) => x.size === n)?.[k]));
  const mb = (x) => (x === undefined ? '–' : (x / 1e6).toFixed(2));
  lines.push(`| manifest.db MB | ${m('manifestBytes', mb).join(' | ')} |${' |'.repeat(pairs.length * 2)}`);
  lines.push(`| mirror (sealed, compacted) MB | ${m('mirrorBytes', mb).join(' | ')} |${' |'.repeat(pairs.length * 2)}`);
  const out = [
    `streams by state: ${meta.map((x) => `${x.size}: ${JSON.stringify(x.states)}, ${x.datasets} datasets, ${x.objects} objects`).join('; ')}`,
    `median wall seconds of --reps runs (one run when the first took over 30 s); "above start-up": minus the median \`zbk --version\` (${startupAll.toFixed(2)} s)`,
    `load average at the start and after each size: ${loads.join(' → ')}`,
    '',
    ...lines,
  ];
  process.stdout.write(out.join('\n') + '\n');
}

// ---------------------------------------------------------------- entry

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    sizes: { type: 'string' },
    reps: { type: 'string' },
    only: { type: 'string' },
    keep: { type: 'boolean' },
    profile: { type: 'string' },
    config: { type: 'string' },
    streams: { type: 'string' },
    real: { type: 'string' },
  },
});
const sub = positionals[0];
const run = sub === 'generate' ? generate : sub === 'mirror' ? mirror : sub === 'unmirror' ? unmirror : driver;
run(values).catch((e) => {
  log(`bench-scale: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
