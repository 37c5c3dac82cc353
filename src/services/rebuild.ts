/**
 * `zbk manifest rebuild`: recreate the local manifest from the bucket alone
 * (newest usable mirror, then stream records; archived data is never read).
 * A thin use case over `rebuildManifest`: open the key, take the manifest
 * lock, rebuild, report.
 */
import { ensureStateDir, lockManifest, manifestPath, openKeyring, type ServiceContext } from './context.js';
import { describeHolder } from '../manifest/lock.js';
import { rebuildManifest, type RebuildReport } from '../manifest/rebuild.js';

export interface RebuildOptions {
  /** Move an existing manifest aside (never deleted) and rebuild over it. */
  force?: boolean;
  /** Ignore mirrors: rebuild from stream records and volume metadata only. */
  ignoreMirrors?: boolean;
  /** Wait for another zbk holding the lock (default) or fail at once. */
  wait?: boolean;
}

export interface RebuildResult extends RebuildReport {
  manifestPath: string;
  store: string;
  keyId: string;
}

export async function rebuild(ctx: ServiceContext, opts: RebuildOptions = {}): Promise<RebuildResult> {
  const keyring = await openKeyring(ctx);
  ensureStateDir(ctx.config);
  const path = manifestPath(ctx.config);
  const lock = await lockManifest(ctx.config, {
    wait: opts.wait ?? true,
    command: 'zbk manifest rebuild',
    onWait: (h) => ctx.log.info(`waiting for ${describeHolder(h)} to finish…`),
  });
  try {
    const report = await rebuildManifest({
      store: ctx.store,
      keyring,
      targetPath: path,
      ...(opts.force ? { force: true } : {}),
      ...(opts.ignoreMirrors ? { ignoreMirrors: true } : {}),
      now: ctx.now,
    });
    return { ...report, manifestPath: path, store: ctx.store.url, keyId: keyring.keyId };
  } finally {
    lock.release();
  }
}
