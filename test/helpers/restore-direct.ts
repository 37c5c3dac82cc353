/**
 * Restore the latest pushed snapshot of a dataset straight from a store
 * whose objects are readable now (local store, S3 test server with
 * STANDARD data), through the library: chain from the manifest → open
 * volumes part by part → zfs receive. Independent of `zbk restore`, so push
 * tests check what was stored, not the restore command.
 */
import { loadConfig } from '../../src/config/config.js';
import { receiveChainFromStore } from '../../src/services/receive-chain.js';
import { createContext, openKeyring, openManifest } from '../../src/services/context.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import type { Zfs } from '../../src/zfs/zfs.js';

export async function restoreLatestDirect(configPath: string, passphraseFile: string, dataset: string, target: string, zfs: Zfs): Promise<string[]> {
  const config = loadConfig(configPath);
  const ctx = createContext(config, passphraseSource(passphraseFile), { zfs });
  const keyring = await openKeyring(ctx);
  const manifest = openManifest(ctx, keyring);
  try {
    const chain = manifest.chainFor(dataset);
    await receiveChainFromStore(ctx.store, keyring, zfs, chain, target);
    return chain.map((s) => s.to.name);
  } finally {
    manifest.close();
  }
}
