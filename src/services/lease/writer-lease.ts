/**
 * One writer per repository, across machines: the writer lease.
 *
 * Two machines pushing to one repository (the old one still alive after a
 * disaster-recovery "resume pushing", two configs, a cron job copied to a
 * new host) would each write streams, mirrors and deletions from their own
 * manifest and damage each other's view. The manifest lock only excludes
 * processes on one machine. The lease is an object in the store
 * (`zbk.lease`, a sealed blob: the bucket learns no host names) written only
 * with conditional PUTs (If-None-Match / If-Match), so of two machines
 * racing for it exactly one wins.
 *
 * - A writer (push, consolidate --apply) takes the lease when it is absent,
 *   released, expired, unreadable (not ours: garbage or another key) or
 *   already this machine's, and renews it every RENEW_MS while it works; the
 *   lease expires TTL_MS after its last renewal, so a machine that died
 *   holds it at most that long.
 * - A lease held by another machine and not expired refuses the command
 *   with LEASE_HELD (exit 8), naming the host, command and expiry.
 *   `zbk lease break` takes it over (documented for the machine that is
 *   gone for good).
 * - A writer that loses the lease (broken by another machine, or unrenewed
 *   past its expiry) stops before its next store write (`guardStore`).
 * - "This machine" is a holder id derived from /etc/machine-id (or a random
 *   id kept in the state dir) and the state dir, so a copy of the state dir
 *   on a new machine is another holder.
 *
 * A conditional PUT whose reply was lost and that is repeated fails its own
 * condition: every write carries a random `writeId`, and a refused write is
 * followed by a read that tells whether it was in fact ours.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Keyring } from '../../crypto/types.js';
import { ExitCode, ZbkError } from '../../errors.js';
import { BLOB_LEASE, LEASE_KEY } from '../../layout.js';
import { NotFoundError, PreconditionFailedError } from '../../store/errors.js';
import type { ObjectStore, PutCondition, StorageClass } from '../../store/object-store.js';

/** A lease expires this long after its last renewal. */
export const LEASE_TTL_MS = 60 * 60_000;
/** A working writer renews this often (a few renewals may fail before the lease lapses). */
export const LEASE_RENEW_MS = 10 * 60_000;
const MAX_RACES = 5;
/** How often a writer waiting for another machine's lease looks again. */
export const LEASE_POLL_MS = 30_000;

export interface AcquireLeaseOptions {
  /** Take it from another machine whatever its state (`zbk lease break`). */
  takeOver?: boolean;
  /** Renew it in the background (default true). */
  renew?: boolean;
  /** Wait while another machine holds it (like the manifest lock without --no-wait) instead of failing. */
  wait?: boolean;
  /** Called once when the first attempt finds it held and `wait` is set. */
  onWait?: (held: LeaseRecord) => void;
  /** Poll interval while waiting (default LEASE_POLL_MS). */
  pollMs?: number;
}

/** What the lease object holds (sealed). */
export interface LeaseRecord {
  v: 1;
  holder: string;
  host: string;
  pid: number;
  command: string;
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
  released: boolean;
  writeId: string;
}

/** Another machine holds the lease (exit 8, like the manifest lock). */
export class LeaseHeldError extends ZbkError {
  constructor(
    message: string,
    readonly lease: LeaseRecord,
  ) {
    super(message, 'LEASE_HELD', ExitCode.LOCKED);
  }
}

/** This writer lost the lease while working: it stops before writing more. */
export class LeaseLostError extends ZbkError {
  constructor(message: string) {
    super(message, 'LEASE_LOST', ExitCode.LOCKED);
  }
}

export interface LeaseEnv {
  /** The store without the guard (the lease writes itself). */
  store: ObjectStore;
  keyring: Keyring;
  stateDir: string;
  storageClass: StorageClass;
  now: () => Date;
  warn: (message: string) => void;
}

/** A lease object is a few hundred bytes; anything much larger is not ours and is not downloaded. */
const MAX_LEASE_BYTES = 64 * 1024;

/**
 * The current lease object: its record (null when it does not open, or is
 * too large to be one) and its ETag (null when the store reports none: a
 * file:// object without its sidecar); null when absent.
 */
export async function readLease(env: Pick<LeaseEnv, 'store' | 'keyring'>): Promise<{ record: LeaseRecord | null; etag: string | null } | null> {
  let etag: string | undefined;
  let bytes: Uint8Array;
  try {
    // HEAD first: the ETag a conditional write is made against is never newer than what was read,
    // so a change in between makes that write fail and the loop look again.
    const info = await env.store.head(LEASE_KEY);
    etag = info.etag;
    if (info.size > MAX_LEASE_BYTES) return { record: null, etag: etag ?? null };
    bytes = await env.store.getBytes(LEASE_KEY);
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
  try {
    const r = JSON.parse(Buffer.from(env.keyring.openBlob(BLOB_LEASE, bytes)).toString('utf8')) as LeaseRecord;
    return { record: r.v === 1 && typeof r.holder === 'string' && typeof r.expiresAt === 'string' ? r : null, etag: etag ?? null };
  } catch {
    return { record: null, etag: etag ?? null };
  }
}

/** This machine and state dir, as a lease holder id. */
export function holderId(stateDir: string): string {
  let machine = '';
  try {
    machine = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    // no systemd machine id: a random one kept with the state
  }
  if (machine === '') {
    const file = join(stateDir, 'machine-id');
    if (!existsSync(file)) {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      writeFileSync(file, `${randomBytes(16).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    }
    machine = readFileSync(file, 'utf8').trim();
  }
  return createHash('sha256').update(`zbk-lease\0${machine}\0${stateDir}`).digest('hex').slice(0, 16);
}

/** Whether `r` lets `holder` take the lease at `now`. */
function takeable(r: LeaseRecord | null, holder: string, now: Date): boolean {
  return r === null || r.released || r.holder === holder || Date.parse(r.expiresAt) <= now.getTime();
}

function unguardedRecord(command: string, now: Date): LeaseRecord {
  const t = now.toISOString();
  return { v: 1, holder: '', host: hostname(), pid: process.pid, command, acquiredAt: t, renewedAt: t, expiresAt: t, released: false, writeId: '' };
}

export function describeLease(r: LeaseRecord): string {
  return `${r.host} (${r.command}, pid ${r.pid}) since ${r.acquiredAt.slice(0, 19)}Z, renewed ${r.renewedAt.slice(0, 19)}Z, until ${r.expiresAt.slice(0, 19)}Z`;
}

/**
 * Write `record` under `condition`: its ETag when it is stored (also when the
 * reply of an earlier attempt was lost), null when the condition failed.
 */
async function writeLease(env: LeaseEnv, record: LeaseRecord, condition: PutCondition): Promise<string | null> {
  const sealed = env.keyring.sealBlob(BLOB_LEASE, Buffer.from(JSON.stringify(record), 'utf8'));
  try {
    return await env.store.putConditional(LEASE_KEY, sealed, condition, { storageClass: env.storageClass });
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    const now = await readLease(env);
    return now?.record?.writeId === record.writeId ? now.etag : null;
  }
}

export class WriterLease {
  private etag: string;
  private record: LeaseRecord;
  private lost: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** The store cannot do conditional writes: nothing is written, nothing asserted. */
  private unguarded = false;

  private constructor(
    private readonly env: LeaseEnv,
    record: LeaseRecord,
    etag: string,
  ) {
    this.record = record;
    this.etag = etag;
  }

  /**
   * Take the lease for `command` (see the module comment), or throw
   * LeaseHeldError. `takeOver` takes it from another machine whatever its
   * state (`zbk lease break`).
   */
  static async acquire(env: LeaseEnv, command: string, opts: AcquireLeaseOptions = {}): Promise<WriterLease> {
    try {
      return await WriterLease.take(env, command, opts);
    } catch (err) {
      // S3-compatible stores without conditional writes answer 501: zbk still works there, unguarded.
      if (!(err instanceof ZbkError && err.code === 'NOT_IMPLEMENTED')) throw err;
      env.warn(`this store cannot do conditional writes (${err.message}): the writer lease is not enforced; make sure only one machine writes this repository`);
      const none = new WriterLease(env, unguardedRecord(command, env.now()), '');
      none.unguarded = true;
      return none;
    }
  }

  private static async take(env: LeaseEnv, command: string, opts: AcquireLeaseOptions): Promise<WriterLease> {
    const holder = holderId(env.stateDir);
    let waited = false;
    for (let i = 0; i < MAX_RACES; i++) {
      const cur = await readLease(env);
      if (cur && cur.etag === null) {
        // No ETag to replace it conditionally against: a file:// object without its sidecar, so not
        // written by a conditional put in this store (junk, or a lease copied from elsewhere) — not a
        // lease of this store: remove it and take the lease afresh.
        await env.store.deleteMany([LEASE_KEY]);
        continue;
      }
      const now = env.now();
      if (cur && !opts.takeOver && !takeable(cur.record, holder, now)) {
        const r = cur.record!;
        if (opts.wait) {
          if (!waited) opts.onWait?.(r);
          waited = true;
          i--; // waiting is not a race
          await new Promise((res) => setTimeout(res, opts.pollMs ?? LEASE_POLL_MS));
          continue;
        }
        const who = r.host === hostname() ? `another state directory on this host: ${describeLease(r)}` : `another machine: ${describeLease(r)}`;
        throw new LeaseHeldError(
          `the repository is being written by ${who}. Wait until it finishes (or the lease expires; without --no-wait zbk waits), or, if that writer is gone for good, run "zbk lease break --yes"`,
          r,
        );
      }
      if (cur && cur.record === null) env.warn('the writer lease in the store does not open with this key (damaged, or written by another repository): taking it over');
      if (cur?.record && !cur.record.released && cur.record.holder !== holder && Date.parse(cur.record.expiresAt) > now.getTime()) {
        env.warn(`taking the writer lease over from ${describeLease(cur.record)}`);
      }
      const record: LeaseRecord = {
        v: 1,
        holder,
        host: hostname(),
        pid: process.pid,
        command,
        acquiredAt: now.toISOString(),
        renewedAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + LEASE_TTL_MS).toISOString(),
        released: false,
        writeId: randomBytes(8).toString('hex'),
      };
      const etag = await writeLease(env, record, cur ? { ifMatch: cur.etag! } : { ifNoneMatch: '*' });
      if (etag === null) continue; // another machine wrote it meanwhile: look again
      const lease = new WriterLease(env, record, etag);
      if (opts.renew !== false) lease.startRenewing();
      return lease;
    }
    throw new ZbkError(`the writer lease changed ${MAX_RACES} times while zbk tried to take it: another machine is taking it too`, 'LEASE_CONTENDED', ExitCode.LOCKED);
  }

  /** Throws LeaseLostError when another machine took the lease, or it lapsed unrenewed. */
  assertHeld(): void {
    if (this.unguarded) return;
    if (this.lost === null && this.env.now().getTime() >= Date.parse(this.record.expiresAt)) {
      this.lost = `the writer lease expired at ${this.record.expiresAt} (it could not be renewed)`;
    }
    if (this.lost !== null) throw new LeaseLostError(`stopped: ${this.lost}; nothing more was written. Another machine may be writing the repository`);
  }

  /**
   * `assertHeld`, and the lease object in the store is still the one this
   * writer last wrote (one HEAD): a lease broken by another machine is
   * noticed before a commit point (a stream record, a mirror, a deletion),
   * not only at the next renewal. A store error leaves the local verdict.
   */
  async confirm(): Promise<void> {
    this.assertHeld();
    if (this.unguarded) return;
    let etag: string | undefined;
    try {
      etag = (await this.env.store.head(LEASE_KEY)).etag;
    } catch (err) {
      if (!(err instanceof NotFoundError)) return;
    }
    if (etag === this.etag) return;
    const cur = await readLease(this.env).catch(() => null);
    this.lost = cur?.record ? `the writer lease was taken by ${describeLease(cur.record)}` : 'the writer lease was removed from the store';
    this.assertHeld();
  }

  /** Renew now (also called by the timer). A lease taken by another machine is marked lost. */
  async renew(): Promise<void> {
    if (this.lost !== null || this.unguarded) return;
    const now = this.env.now();
    const next: LeaseRecord = {
      ...this.record,
      renewedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + LEASE_TTL_MS).toISOString(),
      writeId: randomBytes(8).toString('hex'),
    };
    const etag = await writeLease(this.env, next, { ifMatch: this.etag });
    if (etag === null) {
      const cur = await readLease(this.env);
      this.lost = cur?.record ? `the writer lease was taken by ${describeLease(cur.record)}` : 'the writer lease was removed from the store';
      return;
    }
    this.record = next;
    this.etag = etag;
  }

  /** Mark the lease released (if still ours), so the next writer need not wait for it to expire. */
  async release(): Promise<void> {
    this.stopRenewing();
    if (this.lost !== null || this.unguarded) return;
    try {
      await writeLease(this.env, { ...this.record, released: true, writeId: randomBytes(8).toString('hex') }, { ifMatch: this.etag });
    } catch (err) {
      this.env.warn(`could not release the writer lease (it expires by itself at ${this.record.expiresAt}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private startRenewing(): void {
    this.timer = setInterval(() => {
      this.renew().catch((err: unknown) => this.env.warn(`could not renew the writer lease (valid until ${this.record.expiresAt}): ${err instanceof Error ? err.message : String(err)}`));
    }, LEASE_RENEW_MS);
    this.timer.unref();
  }

  private stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
