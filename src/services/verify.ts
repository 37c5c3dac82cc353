/**
 * `zbk verify`: every object the manifest relies on is in the store with the
 * recorded size and storage class, its sealed metadata decrypts and names
 * the right stream/volume/snapshot, and every stream record opens. Uses
 * LIST, HEAD and small GETs only, so it is cheap even for archived data
 * (HEAD works on DEEP_ARCHIVE objects; nothing is restored).
 *
 * `--deep` (see verify-deep.ts) is a restore drill on top of this.
 */
import type { Keyring } from '../crypto/types.js';
import { BLOB_STREAM_RECORD, DATA_PREFIX, VOLUME_META_HEADER, streamRecordKey } from '../layout.js';
import type { Manifest } from '../manifest/manifest.js';
import { parseStreamRecord } from '../manifest/rebuild.js';
import type { StreamRow, VolumeRow } from '../manifest/types.js';
import { NotFoundError } from '../store/errors.js';
import { openKeyring, openManifest, type ServiceContext } from './context.js';

export interface VerifyProblem {
  key: string;
  dataset: string | null;
  streamId: string | null;
  problem: string;
}

export interface VerifyResult {
  ok: boolean;
  store: string;
  keyId: string;
  streams: number;
  objectsChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
  /** Objects under data/ the manifest does not reference (not a failure: abandoned uploads, other machines). */
  unreferenced: string[];
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'error';
}

/** Why one volume is wrong, or null. */
async function volumeProblem(ctx: ServiceContext, keyring: Keyring, s: StreamRow, v: VolumeRow, listedSize: number | undefined): Promise<string | null> {
  if (listedSize === undefined) return 'missing from the store';
  if (v.storedSize !== null && listedSize !== v.storedSize) return `is ${listedSize} bytes, the manifest says ${v.storedSize}`;
  let info;
  try {
    info = await ctx.store.head(v.key);
  } catch (err) {
    return err instanceof NotFoundError ? 'missing from the store' : `HEAD failed: ${messageOf(err)}`;
  }
  if (info.storageClass !== v.storageClass) return `storage class is ${info.storageClass}, the manifest says ${v.storageClass}`;
  let meta;
  try {
    meta = keyring.openVolumeMetadata(info.metadata[VOLUME_META_HEADER] ?? '');
  } catch (err) {
    return `metadata does not decrypt: ${messageOf(err)}`;
  }
  if (meta.streamId !== s.streamId || meta.volumeIndex !== v.volumeIndex) return `metadata names stream ${meta.streamId} volume ${meta.volumeIndex}`;
  if (meta.dataset !== s.dataset || meta.toSnapshot.guid !== s.to.guid.toString()) return 'metadata names another dataset or snapshot';
  return null;
}

async function streamRecordProblem(ctx: ServiceContext, keyring: Keyring, s: StreamRow): Promise<string | null> {
  try {
    const rec = parseStreamRecord(keyring.openBlob(BLOB_STREAM_RECORD, await ctx.store.getBytes(streamRecordKey(s.streamId))), s.streamId);
    if (rec.to.guid !== s.to.guid.toString() || rec.dataset !== s.dataset) return 'stream record names another dataset or snapshot';
    return null;
  } catch (err) {
    return err instanceof NotFoundError ? 'stream record missing (a rebuild could not find this stream)' : `stream record unusable: ${messageOf(err)}`;
  }
}

/**
 * Check every restorable stream of `dataset` (default all) against the store:
 * complete streams, and superseded ones still wholly stored (retention and
 * restores of older snapshots go through them, see
 * `Manifest.restorableStreams`).
 */
export async function verifyObjects(ctx: ServiceContext, keyring: Keyring, manifest: Manifest, dataset?: string): Promise<VerifyResult> {
  const problems: VerifyProblem[] = [];
  const listed = new Map<string, number>();
  for await (const e of ctx.store.list(DATA_PREFIX)) listed.set(e.key, e.size);
  const referenced = new Set<string>();
  let objectsChecked = 0;
  let bytesChecked = 0;
  const streams = (dataset !== undefined ? [dataset] : manifest.datasets().map((d) => d.name)).flatMap((ds) => manifest.restorableStreams(ds));
  for (const s of streams) {
    for (const v of manifest.volumes(s.streamId)) {
      referenced.add(v.key);
      if (v.state !== 'complete') {
        problems.push({ key: v.key, dataset: s.dataset, streamId: s.streamId, problem: `volume is ${v.state} in the manifest, in a stream restores rely on` });
        continue;
      }
      objectsChecked++;
      bytesChecked += v.storedSize ?? 0;
      const problem = await volumeProblem(ctx, keyring, s, v, listed.get(v.key));
      if (problem) problems.push({ key: v.key, dataset: s.dataset, streamId: s.streamId, problem });
    }
    const recProblem = await streamRecordProblem(ctx, keyring, s);
    if (recProblem) problems.push({ key: streamRecordKey(s.streamId), dataset: s.dataset, streamId: s.streamId, problem: recProblem });
  }
  // Superseded/abandoned streams still reference their objects: not "unreferenced".
  for (const s of manifest.streams(dataset)) for (const v of manifest.volumes(s.streamId)) referenced.add(v.key);
  const unreferenced = dataset ? [] : [...listed.keys()].filter((k) => !referenced.has(k));
  return { ok: problems.length === 0, store: ctx.store.url, keyId: keyring.keyId, streams: streams.length, objectsChecked, bytesChecked, problems, unreferenced };
}

/** `zbk verify` without --deep. */
export async function verify(ctx: ServiceContext, opts: { dataset?: string } = {}): Promise<VerifyResult> {
  const keyring = await openKeyring(ctx);
  const manifest = openManifest(ctx, keyring);
  try {
    const result = await verifyObjects(ctx, keyring, manifest, opts.dataset);
    manifest.logEvent('verified', opts.dataset ?? null, { objects: result.objectsChecked, problems: result.problems.length });
    return result;
  } finally {
    manifest.close();
  }
}
