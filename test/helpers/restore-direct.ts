/**
 * Restore the latest pushed snapshot of a dataset straight from a store
 * whose objects are readable now (local store, S3 test server with
 * STANDARD data), through the library: chain from the manifest → open
 * volumes part by part → zfs receive. Independent of `zbk restore`, so push
 * tests check what was stored, not the restore command.
 */
import { loadConfig } from '../../src/config/config.js';
import { sealedPartSize } from '../../src/crypto/index.js';
import { openVolumesFromStore } from '../../src/pipeline/download.js';
import { volumeRecordsOf } from '../../src/manifest/records.js';
import { createContext, openKeyring, openManifest } from '../../src/services/context.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import type { Zfs } from '../../src/zfs/zfs.js';

export async function restoreLatestDirect(configPath: string, passphraseFile: string, dataset: string, target: string, zfs: Zfs): Promise<string[]> {
  const config = loadConfig(configPath);
  const ctx = createContext(config, passphraseSource(passphraseFile), { zfs });
  const keyring = await openKeyring(ctx);
  const manifest = openManifest(ctx, keyring);
  const received: string[] = [];
  try {
    const chain = manifest.chainFor(dataset);
    for (const [i, s] of chain.entries()) {
      const plaintext = openVolumesFromStore({
        store: ctx.store,
        keyring,
        streamId: Buffer.from(s.streamId, 'hex'),
        volumes: volumeRecordsOf(s),
        sealedSize: sealedPartSize,
      });
      await zfs.receive(target, plaintext, { force: i > 0 });
      received.push(s.to.name);
    }
  } finally {
    manifest.close();
  }
  return received;
}
