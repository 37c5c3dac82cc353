/**
 * Filesystems for state-directory tests (root only): a tmpfs of a given
 * size, mounted read-only or read-write and remounted later, inside a
 * scratch dir whose `after` unmounts it before removing the dir; and `zbk` run in a private mount
 * namespace whose /var/lib is a temp dir, so root's default state
 * directory (/var/lib/zbk) can be used without touching the machine's.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tmpdir } from 'node:os';
import { zbkBin } from '../helpers/paths.js';
import type { CliResult } from '../helpers/cli.js';

/** True as root; otherwise the test is skipped (failed under CI, where the suite runs as root). */
export function requireRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI) assert.fail('state directory tests need root (mount)');
  t.skip('needs root (mount)');
  return false;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

export interface Tmpfs {
  dir: string;
  remount(options: string): void;
}

/**
 * A fresh temp dir, removed when the test ends, after every filesystem
 * mounted below it (by `mountTmpfs`) is unmounted.
 */
export function scratchDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => {
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${dir}/`))
      .sort((x, y) => y.length - x.length);
    for (const m of mounts) if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Mount a tmpfs on `dir` (created; inside a `scratchDir`, which unmounts it) with `options`, e.g. `size=64k`, `ro,size=1m`. */
export function mountTmpfs(dir: string, options: string): Tmpfs {
  mkdirSync(dir, { recursive: true });
  sh('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  return { dir, remount: (o) => sh('mount', ['-o', `remount,${o}`, dir]) };
}

/** `zbk args...` as root with `varLib` in place of /var/lib (a private mount namespace per run). */
export function runZbkWithVarLib(varLib: string, args: string[], env: Record<string, string>): Promise<CliResult> {
  const child = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /var/lib && exec "$@"', varLib, process.execPath, zbkBin, ...args],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: env.HOME ?? tmpdir(), NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}
