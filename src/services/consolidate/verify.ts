/**
 * Verification of a freshly pushed full stream before anything it replaces
 * is marked superseded: every volume is in the store with the recorded size
 * and class, and its sealed metadata names this stream; the stream record
 * (what a rebuild from the bucket relies on) opens and names the snapshot.
 * HEAD and one small GET per stream: works on Deep Archive without a restore.
 */
import type { Keyring } from '../../crypto/types.js';
import { BLOB_STREAM_RECORD, DATA_PREFIX, VOLUME_META_HEADER, streamRecordKey } from '../../layout.js';
import { parseStreamRecord } from '../../manifest/rebuild.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { StreamWithVolumes } from '../../manifest/types.js';
import type { ObjectStore } from '../../store/object-store.js';

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'error';
}

/** Problems found with `stream` in the store; empty when it is sound. */
export async function verifyStreamInStore(store: ObjectStore, keyring: Keyring, stream: StreamWithVolumes): Promise<string[]> {
  const problems: string[] = [];
  if (stream.volumes.length === 0) problems.push('it has no volumes');
  for (const v of stream.volumes) {
    if (v.state !== 'complete') {
      problems.push(`${v.key}: volume is ${v.state}`);
      continue;
    }
    try {
      const info = await store.head(v.key);
      if (info.size !== v.storedSize) problems.push(`${v.key}: ${info.size} bytes in the store, ${v.storedSize} in the manifest`);
      if (info.storageClass !== v.storageClass) problems.push(`${v.key}: class ${info.storageClass}, the manifest says ${v.storageClass}`);
      const meta = keyring.openVolumeMetadata(info.metadata[VOLUME_META_HEADER] ?? '');
      if (meta.streamId !== stream.streamId || meta.volumeIndex !== v.volumeIndex || meta.toSnapshot.guid !== stream.to.guid.toString()) {
        problems.push(`${v.key}: metadata names another stream, volume or snapshot`);
      }
    } catch (err) {
      problems.push(`${v.key}: ${messageOf(err)}`);
    }
  }
  try {
    const rec = parseStreamRecord(keyring.openBlob(BLOB_STREAM_RECORD, await store.getBytes(streamRecordKey(stream.streamId))), stream.streamId);
    if (rec.to.guid !== stream.to.guid.toString() || rec.dataset !== stream.dataset || rec.volumes.length !== stream.volumes.length) {
      problems.push('stream record does not match the manifest');
    }
  } catch (err) {
    problems.push(`stream record: ${messageOf(err)}`);
  }
  return problems;
}

/**
 * Problems with the chains of `dataset`'s kept snapshots (`keptGuids`, the
 * latest among them) as the store lists them now: a volume missing or of
 * another size than recorded. One LIST of the data prefix. Checked right
 * before deleting anything of the dataset, since a deletion may come months
 * after the new full was verified (`verifyStreamInStore`): an old chain must
 * never go while what replaces it is no longer whole.
 */
export async function keptChainProblems(manifest: Manifest, store: ObjectStore, dataset: string, keptGuids: Iterable<string>): Promise<string[]> {
  const listed = new Map<string, number>();
  for await (const e of store.list(DATA_PREFIX)) listed.set(e.key, e.size);
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const guid of keptGuids) {
    for (const s of manifest.chainFor(dataset, BigInt(guid))) {
      for (const v of s.volumes) {
        if (seen.has(v.key)) continue;
        seen.add(v.key);
        const size = listed.get(v.key);
        if (size === undefined) problems.push(`${v.key} (needed for @${s.to.name}) is missing from the store`);
        else if (size !== v.storedSize) problems.push(`${v.key} (needed for @${s.to.name}) is ${size} bytes in the store, ${v.storedSize} recorded`);
      }
    }
  }
  return problems;
}
