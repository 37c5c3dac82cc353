/**
 * One-writer process lock for a manifest: the file `<manifest>.lock`.
 *
 * Created atomically with its content (written to a temporary file, then
 * hard-linked into place: link fails with EEXIST like O_EXCL, and a reader
 * never sees a half-written holder). A lock of this host is stale, and taken
 * over, when its holder is gone: written before the last boot (boot id), its
 * pid dead, its pid now another process (start time differs: pids are reused,
 * and in a container zbk may be pid 1 on every run), or its pid ours while
 * this process does not hold it. Otherwise a killed push would leave a lock
 * that makes every later run wait forever. Taking over is serialised by a
 * short-lived taking over is serialised by a short-lived
 * `<manifest>.lock.takeover` file so two newcomers cannot both "take over" and
 * delete each other's fresh lock. Locks held by another host are never
 * judged stale (we cannot see its processes): remove them by hand.
 */
import { hostname } from 'node:os';
import { linkSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError } from '../errors.js';

/** Who holds a lock, as written in the lock file. */
export interface LockHolder {
  pid: number;
  hostname: string;
  /** ISO time the lock was taken. */
  startedAt: string;
  /** e.g. `zbk push tank/photos` (no secrets: callers pass the command name, not argv). */
  command: string;
  /** Random token telling our own lock from a successor's. */
  token: string;
  /** Linux boot id when the lock was taken (absent elsewhere and in older locks). */
  bootId?: string;
  /** Start time of the holder process (clock ticks since boot, /proc/PID/stat), to tell a reused pid. */
  processStart?: string;
}

/** Tokens of the locks this process holds now (a lock naming our pid but none of these is stale). */
const heldHere = new Set<string>();

export interface AcquireOptions {
  /** Wait for the holder to finish (true) or fail at once with LockedError (false). */
  wait: boolean;
  /** Called once, when the first attempt finds the lock held and `wait` is true. */
  onWait?: (holder: LockHolder) => void;
  /** Give up waiting after this long (LockedError). Default: wait forever. */
  timeoutMs?: number;
  /** Poll interval while waiting. Default 250 ms. */
  pollMs?: number;
  /** Written into the lock for `describeHolder`. Default `zbk`. */
  command?: string;
}

export interface Lock {
  readonly path: string;
  readonly holder: LockHolder;
  /** Remove the lock if it is still ours. Idempotent. */
  release(): void;
}

/** "zbk push (pid 123 on host, since 2024-…)" for messages. */
export function describeHolder(h: LockHolder): string {
  return `${h.command} (pid ${h.pid} on ${h.hostname}, since ${h.startedAt})`;
}

/** The lock file guarding the manifest at `manifestPath`. */
export function lockPathFor(manifestPath: string): string {
  return `${manifestPath}.lock`;
}

function readHolder(path: string): LockHolder | null | 'missing' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.hostname === 'string' && typeof h.token === 'string') {
      return {
        pid: h.pid,
        hostname: h.hostname,
        startedAt: String(h.startedAt),
        command: String(h.command ?? 'zbk'),
        token: h.token,
        ...(typeof h.bootId === 'string' ? { bootId: h.bootId } : {}),
        ...(typeof h.processStart === 'string' ? { processStart: h.processStart } : {}),
      };
    }
  } catch {
    // fall through: unreadable content
  }
  return null;
}

/** True when a process with this pid exists (whoever owns it). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This boot's id (Linux); undefined where /proc does not have it. */
function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Start time of process `pid` (field 22 of /proc/PID/stat); undefined when unknown. */
export function processStartOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function isStale(h: LockHolder): boolean {
  if (h.hostname !== hostname()) return false;
  const boot = currentBootId();
  if (h.bootId !== undefined && boot !== undefined && h.bootId !== boot) return true;
  if (h.pid === process.pid) return !heldHere.has(h.token);
  if (!pidAlive(h.pid)) return true;
  const start = h.processStart !== undefined ? processStartOf(h.pid) : undefined;
  return start !== undefined && start !== h.processStart;
}

/** Atomically create `path` holding `content`; false if it already exists. */
function createExclusive(path: string, content: string): boolean {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Remove a stale lock whose content is still exactly `stale`. */
function takeOver(path: string, stale: LockHolder): void {
  const guard = `${path}.takeover`;
  const me = JSON.stringify({ pid: process.pid, hostname: hostname(), token: randomBytes(8).toString('hex'), startedAt: new Date().toISOString(), command: 'takeover' });
  if (!createExclusive(guard, me)) {
    const g = readHolder(guard);
    // A takeover guard left by a dead process would block everyone forever.
    if (g !== 'missing' && (g === null || isStale(g))) rmSync(guard, { force: true });
    return;
  }
  try {
    const cur = readHolder(path);
    if (cur !== 'missing' && cur !== null && cur.token === stale.token) unlinkSync(path);
  } finally {
    rmSync(guard, { force: true });
  }
}

/**
 * Take the lock for the manifest at `manifestPath` (lock file
 * `<manifestPath>.lock`). Waits or throws LockedError per `opts.wait`.
 * The lock is released by `release()` or when the process exits normally;
 * after a crash the next acquirer on this host finds the pid dead and takes over.
 */
export async function acquireLock(manifestPath: string, opts: AcquireOptions): Promise<Lock> {
  const path = lockPathFor(manifestPath);
  const pollMs = opts.pollMs ?? 250;
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  const holder: LockHolder = {
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
    command: opts.command ?? 'zbk',
    token: randomBytes(16).toString('hex'),
  };
  const bootId = currentBootId();
  const processStart = processStartOf(process.pid);
  if (bootId !== undefined) holder.bootId = bootId;
  if (processStart !== undefined) holder.processStart = processStart;
  const content = JSON.stringify(holder);
  let notified = false;
  let unreadableSince: number | null = null;
  for (;;) {
    if (createExclusive(path, content)) {
      heldHere.add(holder.token);
      return makeLock(path, holder);
    }
    const cur = readHolder(path);
    if (cur === 'missing') continue; // released between our attempt and the read
    if (cur === null) {
      // Content is always complete (link after write), so unreadable means
      // damaged; give a racing writer a moment before treating it as stale.
      unreadableSince ??= Date.now();
      if (Date.now() - unreadableSince > 2000) rmSync(path, { force: true });
    } else if (isStale(cur)) {
      takeOver(path, cur);
      continue;
    } else {
      if (!opts.wait) throw new LockedError(`the manifest is locked by ${describeHolder(cur)}; try again later, or wait without --no-wait`);
      if (!notified) {
        notified = true;
        opts.onWait?.(cur);
      }
      if (Date.now() >= deadline) throw new LockedError(`gave up waiting for the manifest lock held by ${describeHolder(cur)}`);
    }
    await sleep(Math.max(1, Math.min(pollMs, deadline - Date.now())));
  }
}

function makeLock(path: string, holder: LockHolder): Lock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    heldHere.delete(holder.token);
    process.removeListener('exit', release);
    const cur = readHolder(path);
    // Never remove a successor's lock (ours may have been judged stale and taken over).
    if (cur !== 'missing' && cur !== null && cur.token === holder.token) rmSync(path, { force: true });
  };
  process.on('exit', release);
  return { path, holder, release };
}
