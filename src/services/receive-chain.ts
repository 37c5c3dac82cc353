/**
 * Receive a chain of streams straight from a store whose objects are
 * readable now (local store, thawed copies): each stream's volumes are read
 * with ranged GETs, every part authenticated before its plaintext reaches
 * the receiving tool. `receive` gets each stream's plaintext in chain order
 * (index 0: the full stream). Used by `verify --deep` and by tests.
 */
import type { Readable } from 'node:stream';
import { sealedPartSize } from '../crypto/index.js';
import type { Keyring } from '../crypto/types.js';
import { volumeRecordsOf } from '../manifest/records.js';
import type { StreamWithVolumes } from '../manifest/types.js';
import { openVolumesFromStore } from '../pipeline/download.js';
import type { ObjectStore, TransferPacer } from '../store/object-store.js';
import type { Zfs } from '../zfs/zfs.js';

export async function receiveChainFromStore(
  store: ObjectStore,
  keyring: Keyring,
  chain: readonly StreamWithVolumes[],
  receive: (plaintext: Readable, index: number, stream: StreamWithVolumes) => Promise<unknown>,
  /** A bandwidth limit on the bytes read (the run's download limiter, src/services/bandwidth.ts). */
  pacer?: TransferPacer,
): Promise<void> {
  for (const [i, s] of chain.entries()) {
    const plaintext = openVolumesFromStore({
      store,
      keyring,
      streamId: Buffer.from(s.streamId, 'hex'),
      volumes: volumeRecordsOf(s),
      sealedSize: sealedPartSize,
      ...(pacer ? { pacer } : {}),
    });
    await receive(plaintext, i, s);
  }
}

/**
 * The ZFS receiver of a chain into `target`: the full stream creates it;
 * incrementals are received on top (`-F`: zfs-fuse counts atime updates as
 * modifications).
 */
export function zfsChainReceiver(zfs: Zfs, target: string): (plaintext: Readable, index: number) => Promise<unknown> {
  return (plaintext, i) => zfs.receive(target, plaintext, { force: i > 0 });
}
