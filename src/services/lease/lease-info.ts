/**
 * `zbk lease` and `zbk lease break`: show who may write the repository, and
 * take the lease from a machine that is gone for good.
 */
import type { Keyring } from '../../crypto/types.js';
import { openKeyring, type ServiceContext } from '../context.js';
import { LEASE_TTL_MS, WriterLease, describeLease, holderId, readLease, type LeaseRecord } from './writer-lease.js';

export interface LeaseStatus {
  /** `free`: absent or released; `held`: valid, another machine's or this one's; `expired`; `unreadable`: does not open with this key. */
  state: 'free' | 'held' | 'expired' | 'unreadable';
  /** The holder is this machine (and state dir). */
  mine: boolean;
  lease: LeaseRecord | null;
  /** One line for people. */
  summary: string;
  ttlSeconds: number;
}

export async function leaseStatus(ctx: ServiceContext, keyring?: Keyring): Promise<LeaseStatus> {
  keyring ??= await openKeyring(ctx);
  const cur = await readLease({ store: ctx.store, keyring });
  const me = holderId(ctx.config.stateDir);
  const base = { ttlSeconds: LEASE_TTL_MS / 1000 };
  if (!cur) return { ...base, state: 'free', mine: false, lease: null, summary: 'no writer lease: the next push takes it' };
  const r = cur.record;
  if (!r) return { ...base, state: 'unreadable', mine: false, lease: null, summary: 'the writer lease does not open with this key (damaged, or another repository\'s): the next push takes it over' };
  const mine = r.holder === me;
  if (r.released) return { ...base, state: 'free', mine, lease: r, summary: `free (last released by ${r.host}, ${r.command}, at ${r.renewedAt.slice(0, 19)}Z)` };
  if (Date.parse(r.expiresAt) <= ctx.now().getTime()) return { ...base, state: 'expired', mine, lease: r, summary: `expired: ${describeLease(r)}; the next push takes it` };
  return { ...base, state: 'held', mine, lease: r, summary: `held by ${mine ? 'this machine: ' : ''}${describeLease(r)}` };
}

/** Take the lease from whoever holds it and release it at once. Returns the lease that was broken, if any. */
export async function breakLease(ctx: ServiceContext): Promise<LeaseRecord | null> {
  const keyring = await openKeyring(ctx);
  const before = await leaseStatus(ctx, keyring);
  const lease = await WriterLease.acquire(
    { store: ctx.store, keyring, stateDir: ctx.config.stateDir, storageClass: ctx.config.store.metaStorageClass, now: ctx.now, warn: (m) => ctx.log.warn(m) },
    'zbk lease break',
    { takeOver: true, renew: false },
  );
  await lease.release();
  return before.state === 'held' ? before.lease : null;
}
