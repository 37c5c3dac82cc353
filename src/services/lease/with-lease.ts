/**
 * Run a writing use case under the writer lease: take it (after the manifest
 * lock, so one process per machine asks), hand the use case a context whose
 * store refuses writes once the lease is lost, release it at the end.
 */
import type { Keyring } from '../../crypto/types.js';
import type { ServiceContext } from '../context.js';
import { LeaseGuardedStore } from './guarded-store.js';
import { WriterLease, describeLease } from './writer-lease.js';

export async function underWriterLease<T>(
  ctx: ServiceContext,
  keyring: Keyring,
  command: string,
  fn: (leased: ServiceContext) => Promise<T>,
  opts: { wait?: boolean } = {},
): Promise<T> {
  const lease = await WriterLease.acquire(
    {
      store: ctx.store,
      keyring,
      stateDir: ctx.config.stateDir,
      storageClass: ctx.config.store.metaStorageClass,
      now: ctx.now,
      warn: (m) => ctx.log.warn(m),
    },
    command,
    { wait: opts.wait ?? true, onWait: (r) => ctx.log.info(`waiting for the writer lease of ${describeLease(r)}…`) },
  );
  try {
    return await fn({ ...ctx, store: new LeaseGuardedStore(ctx.store, () => lease.assertHeld(), () => lease.confirm()) });
  } finally {
    await lease.release();
  }
}
