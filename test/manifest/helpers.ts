/**
 * Test helpers for the manifest suites: temp dirs, a real keyring, and a
 * simulated push that goes through the Manifest API and writes what a real
 * push writes to the store (volumes with sealed metadata, stream record).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyringFromMasterKey, loadSodium } from '../../src/crypto/index.js';
import type { Keyring, VolumeMetadata } from '../../src/crypto/types.js';
import { BLOB_STREAM_RECORD, VOLUME_META_HEADER, streamRecordKey, volumeKey } from '../../src/layout.js';
import type { StreamRecord, VolumeRecord } from '../../src/layout.js';
import type { Manifest } from '../../src/manifest/manifest.js';
import type { StreamWithVolumes } from '../../src/manifest/types.js';
import type { ObjectStore } from '../../src/store/object-store.js';

/** A fresh temp dir and its cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-manifest-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real keyring over a random master key. */
export async function testKeyring(): Promise<Keyring> {
  const sodium = await loadSodium();
  return keyringFromMasterKey(sodium, new Uint8Array(randomBytes(32)));
}

export interface Snap {
  name: string;
  guid: bigint;
  createtxg: bigint;
  creation: number;
}

export function snap(name: string, guid: bigint, createtxg: bigint): Snap {
  return { name, guid, createtxg, creation: 1_700_000_000 + Number(createtxg) };
}

export interface PushSpec {
  dataset: string;
  from: Snap | null;
  to: Snap;
  /** Plaintext bytes per volume (each volume sent in 2 parts). */
  volumes: number[];
  at: Date;
  /** Stop after the volumes, before the stream record and completeStream (an interrupted push). */
  interrupt?: boolean;
  /** The stream's `zfs send` flags, recorded in the manifest and the stream record (absent: neither records any, as before flags were recorded). */
  sendFlags?: string[];
}

const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sha256b64 = (b: Uint8Array): string => createHash('sha256').update(b).digest('base64');

/**
 * Push-like sequence: beginStream, per volume multipart upload with sealed
 * metadata + part checkpoints + volume completion, stream record, completeStream.
 */
export async function simulatePush(m: Manifest, store: ObjectStore, keyring: Keyring, spec: PushSpec): Promise<StreamWithVolumes | null> {
  const streamId = randomBytes(16).toString('hex');
  const partSize = 8;
  const volumeSize = Math.max(...spec.volumes);
  m.beginStream({
    streamId,
    dataset: spec.dataset,
    from: spec.from ? { name: spec.from.name, guid: spec.from.guid } : null,
    to: spec.to,
    volumeSize,
    partSize,
    startedAt: spec.at,
    ...(spec.sendFlags ? { sendFlags: spec.sendFlags } : {}),
  });
  const records: VolumeRecord[] = [];
  for (let i = 0; i < spec.volumes.length; i++) {
    const key = volumeKey(streamId, i);
    const meta: VolumeMetadata = {
      dataset: spec.dataset,
      streamId,
      fromSnapshot: spec.from ? { name: spec.from.name, guid: spec.from.guid.toString() } : null,
      toSnapshot: { name: spec.to.name, guid: spec.to.guid.toString(), createtxg: spec.to.createtxg.toString(), creation: spec.to.creation },
      volumeIndex: i,
      volumeSize,
      partSize,
      startedAt: spec.at.toISOString(),
    };
    const uploadId = await store.createMultipartUpload(key, { storageClass: 'DEEP_ARCHIVE', metadata: { [VOLUME_META_HEADER]: keyring.sealVolumeMetadata(meta) } });
    m.recordVolumeStarted(streamId, i, key, uploadId, 'DEEP_ARCHIVE');
    const plain = new Uint8Array(randomBytes(spec.volumes[i]!));
    const parts = [];
    let stored = 0;
    let partCount = 0;
    for (let off = 0, n = 1; off < plain.length; off += partSize, n++) {
      const chunk = plain.subarray(off, off + partSize);
      const sealed = keyring.sealPart({ streamId: Buffer.from(streamId, 'hex'), volumeIndex: i, partIndex: n - 1, final: off + partSize >= plain.length }, chunk);
      const ack = await store.uploadPart(key, uploadId, n, sealed, sha256b64(sealed));
      parts.push(ack);
      m.recordPartAcknowledged({
        streamId, volumeIndex: i, partNumber: n, plaintextSize: chunk.length, plaintextSha256: sha256hex(chunk),
        sealedSize: sealed.length, etag: ack.etag, checksumSha256: sha256b64(sealed),
      });
      stored += sealed.length;
      partCount++;
    }
    await store.completeMultipartUpload(key, uploadId, parts);
    const head = await store.head(key);
    m.recordVolumeCompleted({ streamId, volumeIndex: i, storedSize: head.size, partCount, plaintextSize: plain.length, plaintextSha256: sha256hex(plain), etag: head.etag ?? null, uploadedAt: spec.at });
    records.push({ index: i, key, plaintextSize: plain.length, plaintextSha256: sha256hex(plain), storedSize: stored, partCount, partSize, ...(head.etag ? { etag: head.etag } : {}) });
  }
  if (spec.interrupt) return null;
  const plaintextSize = records.reduce((a, v) => a + v.plaintextSize, 0);
  const storedSize = records.reduce((a, v) => a + v.storedSize, 0);
  const record: StreamRecord = {
    v: 1,
    streamId,
    dataset: spec.dataset,
    from: spec.from ? { name: spec.from.name, guid: spec.from.guid.toString() } : null,
    to: { name: spec.to.name, guid: spec.to.guid.toString(), createtxg: spec.to.createtxg.toString(), creation: spec.to.creation },
    plaintextSize,
    storedSize,
    volumes: records,
    startedAt: spec.at.toISOString(),
    completedAt: spec.at.toISOString(),
    ...(spec.sendFlags ? { sendFlags: spec.sendFlags } : {}),
  };
  await store.put(streamRecordKey(streamId), keyring.sealBlob(BLOB_STREAM_RECORD, new TextEncoder().encode(JSON.stringify(record))));
  return m.completeStream(streamId, { plaintextSize, storedSize, completedAt: spec.at });
}

/** The comparable essence of a chain (what rebuild must reproduce exactly). */
export function chainEssence(chain: readonly StreamWithVolumes[]): unknown {
  return chain.map((s) => ({
    streamId: s.streamId,
    dataset: s.dataset,
    kind: s.kind,
    from: s.from,
    to: s.to,
    plaintextSize: s.plaintextSize,
    storedSize: s.storedSize,
    state: s.state,
    volumeSize: s.volumeSize,
    partSize: s.partSize,
    startedAt: s.startedAt.toISOString(),
    completedAt: s.completedAt?.toISOString(),
    sendFlags: s.sendFlags,
    volumes: s.volumes.map((v) => ({
      key: v.key, index: v.volumeIndex, state: v.state, storedSize: v.storedSize, partCount: v.partCount,
      plaintextSize: v.plaintextSize, plaintextSha256: v.plaintextSha256, storageClass: v.storageClass,
    })),
  }));
}
