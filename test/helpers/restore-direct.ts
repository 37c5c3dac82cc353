/**
 * Restore the latest pushed snapshot of a dataset straight from a store
 * whose objects are readable now (local store, S3 test server with
 * STANDARD data), through the library: chain from the manifest → open
 * volumes part by part → zfs receive (or btrfs receive). Independent of
 * `zbk restore`, so push tests check what was stored, not the restore command.
 */
import type { Readable } from 'node:stream';
import type { Btrfs } from '../../src/btrfs/btrfs.js';
import { loadConfig } from '../../src/config/config.js';
import { receiveChainFromStore, zfsChainReceiver } from '../../src/services/receive-chain.js';
import { createContext, openKeyring, openManifest } from '../../src/services/context.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import type { Zfs } from '../../src/zfs/zfs.js';

async function restoreChain(
  configPath: string,
  passphraseFile: string,
  dataset: string,
  receive: (plaintext: Readable, index: number) => Promise<unknown>,
): Promise<string[]> {
  const config = loadConfig(configPath);
  const ctx = createContext(config, passphraseSource(passphraseFile));
  const keyring = await openKeyring(ctx);
  const manifest = openManifest(ctx, keyring);
  try {
    const chain = manifest.chainFor(dataset);
    await receiveChainFromStore(ctx.store, keyring, chain, receive);
    return chain.map((s) => s.to.name);
  } finally {
    manifest.close();
  }
}

export function restoreLatestDirect(configPath: string, passphraseFile: string, dataset: string, target: string, zfs: Zfs): Promise<string[]> {
  return restoreChain(configPath, passphraseFile, dataset, zfsChainReceiver(zfs, target));
}

/** The btrfs counterpart: every stream received into the directory `targetDir`; resolves with the path of the last received subvolume. */
export async function restoreLatestDirectBtrfs(configPath: string, passphraseFile: string, dataset: string, targetDir: string, btrfs: Btrfs): Promise<string> {
  let last = '';
  await restoreChain(configPath, passphraseFile, dataset, async (plaintext) => {
    last = (await btrfs.receive(targetDir, plaintext)).ref;
  });
  return last;
}
