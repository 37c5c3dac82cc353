/**
 * Receive a chain of streams straight from a store whose objects are
 * readable now (local store, thawed copies) into `target`: each stream's
 * volumes are read with ranged GETs, every part authenticated before its
 * plaintext reaches `zfs receive`. The full stream creates `target`;
 * incrementals are received on top (`-F`: zfs-fuse counts atime updates as
 * modifications). Used by the restore drill and by tests.
 */
import { sealedPartSize } from '../crypto/index.js';
import type { Keyring } from '../crypto/types.js';
import { volumeRecordsOf } from '../manifest/records.js';
import type { StreamWithVolumes } from '../manifest/types.js';
import { openVolumesFromStore } from '../pipeline/download.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Zfs } from '../zfs/zfs.js';

export async function receiveChainFromStore(store: ObjectStore, keyring: Keyring, zfs: Zfs, chain: readonly StreamWithVolumes[], target: string): Promise<void> {
  for (const [i, s] of chain.entries()) {
    const plaintext = openVolumesFromStore({
      store,
      keyring,
      streamId: Buffer.from(s.streamId, 'hex'),
      volumes: volumeRecordsOf(s),
      sealedSize: sealedPartSize,
    });
    await zfs.receive(target, plaintext, { force: i > 0 });
  }
}
