import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { ExitCode, LockedError } from '../../src/errors.js';
import { acquireLock, lockPathFor, processStartOf } from '../../src/manifest/lock.js';
import type { LockHolder } from '../../src/manifest/lock.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { tempDir } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
const fresh = (): string => join(tmp.dir, `m${n++}.db`);
const writer = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'lock-writer.js');

interface Run {
  code: number | null;
  lines: Record<string, unknown>[];
}

function run(args: string[], onLine?: (line: Record<string, unknown>) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [writer, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        lines.push(line);
        onLine?.(line);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines }));
  });
}

/** A pid that certainly does not exist now: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('manifest lock', () => {
  it('fails at once with LockedError when held and wait=false; release is idempotent', async () => {
    const path = fresh();
    const first = await acquireLock(path, { wait: false, command: 'zbk push' });
    const holder = JSON.parse(readFileSync(lockPathFor(path), 'utf8')) as LockHolder;
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.hostname, hostname());
    assert.equal(holder.command, 'zbk push');
    await assert.rejects(acquireLock(path, { wait: false }), (e: unknown) => e instanceof LockedError && /zbk push \(pid \d+/.test(e.message));
    first.release();
    first.release();
    assert.equal(existsSync(lockPathFor(path)), false);
    const second = await acquireLock(path, { wait: false });
    first.release(); // must not remove the successor's lock
    assert.ok(existsSync(lockPathFor(path)));
    second.release();
  });

  it('a waiter calls onWait once with the holder, then gets the lock after release', async () => {
    const path = fresh();
    const first = await acquireLock(path, { wait: false, command: 'zbk push' });
    const seen: LockHolder[] = [];
    const waiting = acquireLock(path, { wait: true, pollMs: 5, onWait: (h) => seen.push(h) });
    // Let the waiter poll a few times before releasing.
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30));
    first.release();
    const second = await waiting;
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.command, 'zbk push');
    assert.equal(second.holder.pid, process.pid);
    second.release();
  });

  it('gives up after timeoutMs with LockedError', async () => {
    const path = fresh();
    const first = await acquireLock(path, { wait: false });
    try {
      await assert.rejects(acquireLock(path, { wait: true, timeoutMs: 30, pollMs: 5 }), (e: unknown) => e instanceof LockedError);
    } finally {
      first.release();
    }
  });

  it('takes over a lock whose pid is dead on this host, but not one from another host', async () => {
    const path = fresh();
    const stale: LockHolder = { pid: deadPid(), hostname: hostname(), startedAt: new Date().toISOString(), command: 'zbk push', token: 'x' };
    writeFileSync(lockPathFor(path), JSON.stringify(stale));
    const lock = await acquireLock(path, { wait: false });
    assert.equal((JSON.parse(readFileSync(lockPathFor(path), 'utf8')) as LockHolder).pid, process.pid);
    lock.release();
    writeFileSync(lockPathFor(path), JSON.stringify({ ...stale, hostname: `not-${hostname()}` }));
    await assert.rejects(acquireLock(path, { wait: false }), (e: unknown) => e instanceof LockedError);
    rmSync(lockPathFor(path));
  });

  it('records boot id and process start time, and takes over a lock left by a process that is gone though its pid lives', async () => {
    const path = fresh();
    const mine = await acquireLock(path, { wait: false });
    const written = JSON.parse(readFileSync(lockPathFor(path), 'utf8')) as LockHolder;
    assert.equal(written.processStart, processStartOf(process.pid));
    assert.match(written.bootId ?? '', /^[0-9a-f-]{36}$/);
    mine.release();

    // A live process of this host (this test's parent: alive for the whole test).
    const live = process.ppid;
    const base: LockHolder = { ...written, pid: live, processStart: processStartOf(live), token: 'y' };
    const takesOver = async (h: LockHolder, why: string): Promise<void> => {
      writeFileSync(lockPathFor(path), JSON.stringify(h));
      const lock = await acquireLock(path, { wait: false });
      assert.equal((JSON.parse(readFileSync(lockPathFor(path), 'utf8')) as LockHolder).token, lock.holder.token, why);
      lock.release();
    };
    // Still held: the recorded process is the live one.
    writeFileSync(lockPathFor(path), JSON.stringify(base));
    await assert.rejects(acquireLock(path, { wait: false }), (e: unknown) => e instanceof LockedError, 'a live holder keeps its lock');
    await takesOver({ ...base, processStart: String(Number(base.processStart) + 1) }, 'pid reused by another process');
    await takesOver({ ...base, bootId: '00000000-0000-0000-0000-000000000000' }, 'written before the last boot');
    // Our own pid (zbk is pid 1 in a container on every run), but not a lock this process holds.
    await takesOver({ ...base, pid: process.pid, processStart: processStartOf(process.pid), token: 'not-ours' }, 'our pid, not our lock');
    // A lock without the new fields (older zbk) of a live pid stays held.
    const { bootId: _b, processStart: _p, ...old } = base;
    writeFileSync(lockPathFor(path), JSON.stringify(old));
    await assert.rejects(acquireLock(path, { wait: false }), (e: unknown) => e instanceof LockedError, 'an old-format lock of a live pid');
    rmSync(lockPathFor(path));
  });

  it('two writer processes: the second waits, no update is lost, the DB stays consistent', async () => {
    const path = fresh();
    Manifest.open(path).close();
    const [a, b] = await Promise.all([run([path, 'a', '40', 'wait']), run([path, 'b', '40', 'wait'])]);
    assert.equal(a.code, 0);
    assert.equal(b.code, 0);
    const waited = [...a.lines, ...b.lines].filter((l) => 'waitedFor' in l && l.waitedFor !== null);
    // Both started together, so (unless one finished before the other even started) one waited for the other.
    for (const w of waited) assert.match(String(w.waitedFor), /^writer [ab]$/);
    const m = Manifest.open(path, { readonly: true });
    try {
      assert.equal(m.getValue('counter'), 80);
      assert.equal(m.events(1000).filter((e) => e.kind === 'writer').length, 80);
      assert.ok(m.integrityCheck().ok);
    } finally {
      m.close();
    }
    assert.equal(existsSync(lockPathFor(path)), false);
  });

  it('a second process with --no-wait exits with the LOCKED code while another holds the lock', async () => {
    const path = fresh();
    Manifest.open(path).close();
    const hold = join(tmp.dir, `hold${n++}`);
    writeFileSync(hold, '');
    let second: Promise<Run> | undefined;
    const holder = run([path, 'h', '1', 'wait', hold], (line) => {
      if (line.locked) second = run([path, 'x', '1', 'nowait']);
    });
    let holderDone = false;
    void holder.then(() => (holderDone = true));
    while (!second && !holderDone) await new Promise((r) => setTimeout(r, 5));
    assert.ok(second, 'the holder exited before taking the lock');
    const res = await second;
    rmSync(hold);
    assert.equal((await holder).code, 0);
    assert.equal(res.code, ExitCode.LOCKED);
    const m = Manifest.open(path, { readonly: true });
    try {
      assert.equal(m.getValue('counter'), 1);
    } finally {
      m.close();
    }
  });
});
