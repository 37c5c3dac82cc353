/**
 * Real ZFS for tests: file-backed pools in fresh temp dirs that never leak
 * (destroyed by the test, and again on process exit/SIGINT/SIGTERM).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
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

let zfsAvailable: { ok: boolean; why: string } | null = null;

function probe(): { ok: boolean; why: string } {
  if (zfsAvailable) return zfsAvailable;
  const r = spawnSync('zpool', ['list', '-H'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) zfsAvailable = { ok: false, why: `zpool cannot run (${r.error.message})` };
  else if (r.status !== 0) zfsAvailable = { ok: false, why: `zpool list failed: ${(r.stderr || r.stdout).trim().split('\n')[0]}` };
  else zfsAvailable = { ok: true, why: '' };
  return zfsAvailable;
}

/**
 * True when zfs/zpool work here. Otherwise: under CI the test fails (ZFS is
 * required there); elsewhere it is skipped with the reason, and false returned.
 */
export function requireZfs(t: TestContext): boolean {
  const p = probe();
  if (p.ok) return true;
  const msg = `ZFS not available: ${p.why} — run scripts/install-zfs-fuse.sh as root`;
  if (process.env.CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

const live = new Map<string, { dir: string }>();

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
    const r = spawnSync('zpool', ['destroy', '-f', name], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) {
      live.delete(name);
      rmSync(entry.dir, { recursive: true, force: true });
      return;
    }
    why = (r.stderr || r.stdout || String(r.error ?? '')).trim();
    if (/no such pool/i.test(why)) {
      live.delete(name);
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

/** Create a file-backed pool with a unique name and its mountpoint in a fresh temp dir. */
export async function createTestPool(opts: { sizeMiB?: number } = {}): Promise<TestPool> {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), 'zbk-pool-'));
  const name = `zbkt${randomBytes(5).toString('hex')}`;
  const img = join(dir, 'pool.img');
  const mountpoint = join(dir, 'mnt');
  try {
    writeFileSync(img, '');
    truncateSync(img, (opts.sizeMiB ?? 128) * 1024 * 1024);
    live.set(name, { dir });
    zpool(['create', '-f', '-m', mountpoint, name, img]);
  } catch (err) {
    // zpool create failed: nothing is imported, only the temp dir to remove.
    live.delete(name);
    rmSync(dir, { recursive: true, force: true });
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
