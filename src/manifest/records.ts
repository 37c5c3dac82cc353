/**
 * Conversions between manifest rows and the records written to the store
 * (src/layout.ts). Pure.
 */
import type { StreamRecord, VolumeRecord } from '../layout.js';
import type { StreamRow, VolumeRow } from './types.js';

/**
 * The VolumeRecord of a completed volume (what the pipeline needs to read it
 * back), or null while the volume is still uploading.
 */
export function volumeRecordOf(stream: Pick<StreamRow, 'partSize'>, v: VolumeRow): VolumeRecord | null {
  if (v.storedSize === null || v.plaintextSize === null || v.plaintextSha256 === null || v.partCount === null) return null;
  return {
    index: v.volumeIndex,
    key: v.key,
    plaintextSize: v.plaintextSize,
    plaintextSha256: v.plaintextSha256,
    storedSize: v.storedSize,
    partCount: v.partCount,
    partSize: stream.partSize,
    ...(v.etag ? { etag: v.etag } : {}),
  };
}

/** Every volume of a complete stream as VolumeRecords; throws if one is not complete. */
export function volumeRecordsOf(stream: StreamRow & { volumes: VolumeRow[] }): VolumeRecord[] {
  return stream.volumes.map((v) => {
    const r = volumeRecordOf(stream, v);
    if (!r) throw new Error(`internal: volume ${v.key} of stream ${stream.streamId} is not complete`);
    return r;
  });
}

/** The snapshot identities of a stream as the store's records spell them (64-bit values as decimal strings). */
export function snapshotRefsOf(stream: Pick<StreamRow, 'from' | 'to'>): Pick<StreamRecord, 'from' | 'to'> {
  return {
    from: stream.from ? { name: stream.from.name, guid: stream.from.guid.toString() } : null,
    to: { name: stream.to.name, guid: stream.to.guid.toString(), createtxg: stream.to.createtxg.toString(), creation: stream.to.creation },
  };
}
