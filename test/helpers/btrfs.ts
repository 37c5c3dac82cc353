/**
 * Real btrfs for tests: file-backed filesystems (truncate + mkfs.btrfs +
 * mount -o loop) in fresh temp dirs that never leak — unmounted, their loop
 * device detached and their dir removed by the test (t.after), and again
 * on process exit/SIGINT/SIGTERM.
 *
 * Needs root, btrfs-progs (scripts/install-btrfs.sh) and a kernel with btrfs
 * (built in, or `modprobe btrfs`). Under CI a missing piece fails the test;
 * elsewhere the test is skipped with the reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Btrfs } from '../../src/btrfs/btrfs.js';

export interface TestBtrfs {
  /** The temp dir holding the image and the mount point. */
  dir: string;
  /** Where the filesystem's top level is mounted. */
  mountpoint: string;
  /** The image file. */
  image: string;
  btrfs: Btrfs;
  /** `btrfs subvolume create <mountpoint>/<rel>`; returns the absolute path. */
  subvolume(rel: string): string;
  /** `btrfs subvolume snapshot -r <source> <mountpoint>/<rel>`; returns the absolute path. */
  snapshot(source: string, rel: string): string;
  /** Unmount, detach, remove. Idempotent. */
  destroy(): void;
}

let available: { ok: boolean; why: string } | null = null;

function sh(cmd: string, args: string[], timeout = 120_000): { status: number | null; out: string; error?: Error } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(), ...(r.error ? { error: r.error } : {}) };
}

function kernelHasBtrfs(): boolean {
  try {
    return /\tbtrfs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

function probe(): { ok: boolean; why: string } {
  if (available) return available;
  const mkfs = sh('mkfs.btrfs', ['--version']);
  const progs = sh('btrfs', ['--version']);
  if (mkfs.error || mkfs.status !== 0) available = { ok: false, why: `mkfs.btrfs cannot run (${mkfs.error?.message ?? mkfs.out})` };
  else if (progs.error || progs.status !== 0) available = { ok: false, why: `btrfs cannot run (${progs.error?.message ?? progs.out})` };
  else if (process.getuid?.() !== 0) available = { ok: false, why: 'mounting a loop device needs root' };
  else {
    if (!kernelHasBtrfs()) sh('modprobe', ['btrfs']);
    available = kernelHasBtrfs() ? { ok: true, why: '' } : { ok: false, why: 'the kernel has no btrfs (not in /proc/filesystems after modprobe btrfs)' };
  }
  return available;
}

/** True when btrfs works here. Otherwise: under CI the test fails; elsewhere it is skipped with the reason, and false returned. */
export function requireBtrfs(t: TestContext): boolean {
  const p = probe();
  if (p.ok) return true;
  const msg = `btrfs not available: ${p.why} — run scripts/install-btrfs.sh as root`;
  if (process.env.CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

const live = new Map<string, { mountpoints: string[]; image: string }>();

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

/** Unmount (retried: a killed `btrfs send` may hold it a moment; lazily at last), detach the loop device, remove the dir. */
function destroySync(dir: string): void {
  const entry = live.get(dir);
  if (!entry) return;
  for (const mp of [...entry.mountpoints].reverse()) {
    for (let attempt = 0; attempt < 20 && mounted(mp); attempt++) {
      if (sh('umount', [mp]).status === 0) break;
      sleepSync(250);
    }
    if (mounted(mp)) sh('umount', ['-l', mp]);
  }
  // mount -o loop sets autoclear; detach anything still backed by the image.
  for (const line of sh('losetup', ['-j', entry.image]).out.split('\n')) {
    const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
    if (dev) sh('losetup', ['-d', dev]);
  }
  live.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const all = (): void => {
    for (const dir of [...live.keys()]) {
      try {
        destroySync(dir);
      } catch (err) {
        console.error(String(err));
      }
    }
  };
  process.once('exit', all);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      all();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

function must(cmd: string, args: string[]): string {
  const r = sh(cmd, args);
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.out}`);
  return r.out;
}

/** Mount `image` (already in `dir`'s registration) again at `mountpoint` with extra options, e.g. `subvol=data`; unmounted by destroy. */
export function mountAgain(fs: TestBtrfs, mountpoint: string, options: string): void {
  mkdirSync(mountpoint, { recursive: true });
  live.get(fs.dir)!.mountpoints.push(mountpoint);
  must('mount', ['-o', `loop,${options}`, fs.image, mountpoint]);
}

/**
 * A fresh btrfs of `sizeMiB` (at least 128) mounted in a new temp dir. With
 * `t`, it is destroyed after the test, whatever the test did.
 */
export function createTestBtrfs(t?: TestContext, opts: { sizeMiB?: number } = {}): TestBtrfs {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), 'zbk-btrfs-'));
  const image = join(dir, 'fs.img');
  const mountpoint = join(dir, 'mnt');
  live.set(dir, { mountpoints: [mountpoint], image });
  const fs: TestBtrfs = {
    dir,
    mountpoint,
    image,
    btrfs: new Btrfs(),
    subvolume(rel) {
      const p = join(mountpoint, rel);
      must('btrfs', ['subvolume', 'create', p]);
      return p;
    },
    snapshot(source, rel) {
      const p = join(mountpoint, rel);
      must('btrfs', ['subvolume', 'snapshot', '-r', source, p]);
      return p;
    },
    destroy: () => destroySync(dir),
  };
  t?.after(() => fs.destroy());
  try {
    writeFileSync(image, '');
    truncateSync(image, Math.max(128, opts.sizeMiB ?? 256) * 1024 * 1024);
    must('mkfs.btrfs', ['-q', '-f', image]);
    mkdirSync(mountpoint);
    must('mount', ['-o', 'loop', image, mountpoint]);
  } catch (err) {
    fs.destroy();
    throw err;
  }
  return fs;
}

/** True while `dir` is a test filesystem that has not been destroyed. */
export function isLive(fs: TestBtrfs): boolean {
  return live.has(fs.dir) && existsSync(fs.dir);
}

/** Relative path → permission bits (and type letter) of everything below `dir`, symlinks not followed: what hashTree does not compare. */
export function modesOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      out.set(r, `${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'}${(st.mode & 0o7777).toString(8)}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}
