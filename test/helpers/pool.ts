/**
 * Real ZFS for tests: file-backed pools in fresh temp dirs that never leak
 * (destroyed by the test, and again on process exit/SIGINT/SIGTERM).
 *
 * Two ZFS implementations can be under test (ZBK_TEST_ZFS):
 * - `zfs-fuse` (default): the pool file and its mountpoint are in the temp dir.
 * - `openzfs`: the tests run under scripts/openzfs/run, so `zfs`/`zpool` run
 *   in a QEMU guest with the real module. The pool file lives in the guest's
 *   /zbk tmpfs; the pool is mounted in the guest at the temp dir's path, and
 *   that path is mounted on the host with sshfs, so tests read and write the
 *   datasets' files at the same paths as with zfs-fuse.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Zfs } from '../../src/zfs/zfs.js';

export interface TestPool {
  /** Pool name, e.g. `zbkt3f9a1c2d`. */
  name: string;
  /** Where the pool's root dataset is mounted (inside the temp dir). */
  mountpoint: string;
  /** A Zfs adapter with the default commands. */
  zfs: Zfs;
  /** Destroy the pool and remove its temp dir. Idempotent. */
  destroy(): Promise<void>;
}

/** The ZFS the tests run against. */
export const zfsUnderTest: 'zfs-fuse' | 'openzfs' = process.env.ZBK_TEST_ZFS === 'openzfs' ? 'openzfs' : 'zfs-fuse';

let zfsAvailable: { ok: boolean; why: string } | null = null;

function probe(): { ok: boolean; why: string } {
  if (zfsAvailable) return zfsAvailable;
  const r = spawnSync('zpool', ['list', '-H'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) zfsAvailable = { ok: false, why: `zpool cannot run (${r.error.message})` };
  else if (r.status !== 0) zfsAvailable = { ok: false, why: `zpool list failed: ${(r.stderr || r.stdout).trim().split('\n')[0]}` };
  else zfsAvailable = { ok: true, why: '' };
  if (zfsAvailable.ok && zfsUnderTest === 'openzfs') {
    const v = spawnSync('zfs', ['version'], { encoding: 'utf8', timeout: 30_000 });
    if (v.status !== 0 || !/^zfs-2\./m.test(v.stdout)) zfsAvailable = { ok: false, why: `ZBK_TEST_ZFS=openzfs but zfs version says: ${(v.stdout || v.stderr || String(v.error)).trim()}` };
  }
  return zfsAvailable;
}

/**
 * True when zfs/zpool work here. Otherwise: under CI the test fails (ZFS is
 * required there); elsewhere it is skipped with the reason, and false returned.
 */
export function requireZfs(t: TestContext): boolean {
  const p = probe();
  if (p.ok) return true;
  const fix = zfsUnderTest === 'openzfs' ? 'run scripts/openzfs/setup, then the tests through scripts/openzfs/run' : 'run scripts/install-zfs-fuse.sh as root';
  const msg = `ZFS not available: ${p.why} — ${fix}`;
  if (process.env.CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

/**
 * For tests of what only OpenZFS has (raw sends, bookmarks, resume tokens):
 * true under ZBK_TEST_ZFS=openzfs with the guest answering; otherwise the
 * test is skipped (they run in `npm run test:openzfs`), or fails under CI
 * when the OpenZFS lane was asked for and is not there.
 */
export function requireOpenZfs(t: TestContext): boolean {
  if (zfsUnderTest !== 'openzfs') {
    t.skip('needs OpenZFS: run `npm run test:openzfs`');
    return false;
  }
  return requireZfs(t);
}

const live = new Map<string, { dir: string; guestImage?: string; sshfs?: string }>();

function run(cmd: string, args: string[], timeout = 120_000): ReturnType<typeof spawnSync> & { stdout: string; stderr: string } {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}

/** The guest's sshfs mount of a pool's mountpoint: unmount (retried, then lazily). */
function unmountSshfs(path: string): void {
  for (let attempt = 0; attempt < 10; attempt++) {
    if (run('fusermount3', ['-u', path]).status === 0) return;
    if (!readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path)) return;
    sleepSync(300);
  }
  run('fusermount3', ['-uz', path]);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Destroy a pool we created and remove its temp dir. A pool can be briefly
 * busy (a zfs send being killed); retry, and never delete the backing file of
 * a pool that is still imported — that would wedge it for everyone.
 */
function destroySync(name: string): void {
  const entry = live.get(name);
  if (!entry) return;
  let why = '';
  for (let attempt = 0; attempt < 10; attempt++) {
    if (entry.sshfs) unmountSshfs(entry.sshfs);
    const r = spawnSync('zpool', ['destroy', '-f', name], { encoding: 'utf8', timeout: 60_000 });
    why = (r.stderr || r.stdout || String(r.error ?? '')).trim();
    if (r.status === 0 || /no such pool/i.test(why)) {
      live.delete(name);
      if (entry.guestImage) run('zbk-guest', ['rm', '-rf', entry.guestImage, entry.dir]);
      rmSync(entry.dir, { recursive: true, force: true });
      return;
    }
    sleepSync(500);
  }
  throw new Error(`could not destroy test pool ${name}: ${why} — run "zpool destroy -f ${name}" and remove ${entry.dir}`);
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const destroyAll = (): void => {
    for (const name of [...live.keys()]) {
      try {
        destroySync(name);
      } catch (err) {
        console.error(String(err));
      }
    }
  };
  process.once('exit', destroyAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      destroyAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

function zpool(args: string[]): void {
  const r = spawnSync('zpool', args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`zpool ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

/**
 * OpenZFS lane: the pool file in the guest's tmpfs, the pool mounted in the
 * guest at `mountpoint`, and that mounted here over sshfs (no caching, so the
 * host sees every receive and rollback at once).
 */
function createGuestPool(name: string, dir: string, mountpoint: string, sizeMiB: number): void {
  const state = process.env.ZBK_OPENZFS_STATE;
  const host = process.env.ZBK_OPENZFS_GUEST_HOST;
  if (!state || !host) throw new Error('ZBK_TEST_ZFS=openzfs needs the tests to run through scripts/openzfs/run');
  const guestImage = `/zbk/${name}.img`;
  live.set(name, { dir, guestImage });
  const t = run('zbk-guest', ['truncate', '-s', `${sizeMiB}M`, guestImage]);
  if (t.status !== 0) throw new Error(`guest truncate failed: ${t.stderr.trim()}`);
  zpool(['create', '-f', '-m', mountpoint, name, guestImage]);
  mkdirSync(mountpoint, { recursive: true });
  const m = run('sshfs', [
    '-F', join(state, 'ssh_config'),
    '-o', 'sftp_server=/usr/lib/openssh/sftp-server,dir_cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0,reconnect',
    `${host}:${mountpoint}`, mountpoint,
  ]);
  if (m.status !== 0) throw new Error(`sshfs of the guest's ${mountpoint} failed: ${(m.stderr || m.stdout).trim()}`);
  live.get(name)!.sshfs = mountpoint;
}

/** Create a file-backed pool with a unique name and its mountpoint in a fresh temp dir. */
export async function createTestPool(opts: { sizeMiB?: number } = {}): Promise<TestPool> {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), 'zbk-pool-'));
  const name = `zbkt${randomBytes(5).toString('hex')}`;
  const img = join(dir, 'pool.img');
  const mountpoint = join(dir, 'mnt');
  try {
    if (zfsUnderTest === 'openzfs') {
      createGuestPool(name, dir, mountpoint, opts.sizeMiB ?? 128);
    } else {
      writeFileSync(img, '');
      truncateSync(img, (opts.sizeMiB ?? 128) * 1024 * 1024);
      live.set(name, { dir });
      zpool(['create', '-f', '-m', mountpoint, name, img]);
    }
  } catch (err) {
    if (zfsUnderTest === 'openzfs') {
      // The pool may exist in the guest (sshfs failed): destroy it and the image.
      destroySync(name);
    } else {
      // zpool create failed: nothing is imported, only the temp dir to remove.
      live.delete(name);
      rmSync(dir, { recursive: true, force: true });
    }
    throw err;
  }
  return {
    name,
    mountpoint,
    zfs: new Zfs(),
    destroy: async () => destroySync(name),
  };
}

/** Run `fn` with a fresh pool, destroying it afterwards whatever happens. */
export async function withTestPool<T>(fn: (pool: TestPool) => Promise<T>, opts: { sizeMiB?: number } = {}): Promise<T> {
  const pool = await createTestPool(opts);
  try {
    return await fn(pool);
  } finally {
    await pool.destroy();
  }
}

/**
 * Write `files` deterministic pseudo-random files of `bytesEach` bytes under
 * `dir` (spread over a few subdirectories). Same seed → same bytes. Returns
 * the relative paths.
 */
export function writeRandomFiles(dir: string, opts: { files: number; bytesEach: number; seed: string | number }): string[] {
  const paths: string[] = [];
  for (let i = 0; i < opts.files; i++) {
    const rel = join(`d${i % 3}`, `file-${i}.bin`);
    mkdirSync(join(dir, `d${i % 3}`), { recursive: true });
    const buf = Buffer.alloc(opts.bytesEach);
    // SHA-256 in counter mode: cheap, reproducible, incompressible.
    for (let off = 0, n = 0; off < buf.length; n++) {
      const block = createHash('sha256').update(`${opts.seed}:${i}:${n}`).digest();
      off += block.copy(buf, off);
    }
    writeFileSync(join(dir, rel), buf);
    paths.push(rel);
  }
  return paths;
}
