/**
 * Running the independent decoder recovery/zbk-recover.py in tests: where
 * it is, the interpreter (Debian's, which has PyNaCl from python3-nacl) and
 * a process runner that keeps stdout as bytes (a `cat` of a stream is binary).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { repoRoot } from '../helpers/paths.js';

export const PYTHON = '/usr/bin/python3';
export const SCRIPT = resolve(repoRoot, 'recovery', 'zbk-recover.py');

/** True when /usr/bin/python3 has PyNaCl; otherwise fails under CI, else skips. */
export function requirePython(t: TestContext): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import nacl.bindings, nacl.pwhash.argon2id'], { encoding: 'utf8' });
  if (r.status === 0) return true;
  const why = `${PYTHON} with PyNaCl is needed (apt-get install python3-nacl): ${r.error ? r.error.message : r.stderr.trim().split('\n').pop()}`;
  if (process.env.CI) assert.fail(why);
  t.skip(why);
  return false;
}

export interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Run `cmd args` with PATH and `env` only; stdin closed. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}
