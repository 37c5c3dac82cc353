/**
 * `zbk verify`: every object the manifest relies on is in the store with the
 * recorded size and storage class, the ETag the store reports is the one it
 * reported when the push completed (so an object overwritten with other
 * bytes of the same size, metadata and class copied back, is found), its
 * sealed metadata decrypts and names the right stream/volume/snapshot, and
 * every stream record opens. Volumes pushed before zbk recorded ETags are
 * checked for size and metadata only, and the result says so. Uses LIST,
 * HEAD and small GETs only, so it is cheap even for archived data (HEAD
 * works on DEEP_ARCHIVE objects; nothing is restored). It does not prove
 * the bytes still decrypt: that takes `--deep` (verify-deep.ts), a restore
 * drill on top of this.
 *
 * Findings are recorded in the manifest (`damage`, see Manifest.recordDamage),
 * so `zbk status`, `zbk check` and restores see a broken chain without
 * asking the store again; an object found intact again is cleared. Only
 * findings are recorded: a store error other than not-found (network after
 * retries, access denied, expired credentials) stops verify with that error
 * (exit 5). A finding whose only evidence is the ETag or storage class (size
 * and sealed metadata right) is a `mismatch`: reported (exit 6, check
 * CRITICAL), but restores still try the volume and authentication decides.
 */
import { forEachInOrder } from '../concurrency.js';
import type { Keyring } from '../crypto/types.js';
import { BLOB_STREAM_RECORD, DATA_PREFIX, VOLUME_META_HEADER, streamRecordKey } from '../layout.js';
import type { Manifest } from '../manifest/manifest.js';
import { parseStreamRecord } from '../manifest/rebuild.js';
import type { DamageKind, DamageRow, StreamRow, VolumeRow } from '../manifest/types.js';
import { NotFoundError } from '../store/errors.js';
import type { ObjectInfo } from '../store/object-store.js';
import { chainHealth, type ChainHealth } from './chain-health.js';
import { openKeyring, openManifest, type ServiceContext } from './context.js';

export interface VerifyProblem {
  key: string;
  dataset: string | null;
  streamId: string | null;
  problem: string;
}

/** What the check proved, so nobody reads "intact" into more than that. */
export interface VerifyCoverage {
  /** Volumes present with the recorded size, storage class and sealed metadata. */
  volumes: number;
  /** Of those, volumes whose ETag equals the one the store reported at push: not replaced or rewritten since. */
  etagMatched: number;
  /** Volumes checked for size and metadata only (no ETag recorded at push): an overwrite of the same size would not show. */
  sizeAndMetadataOnly: string[];
  /** Stream records that opened and name the right stream. */
  streamRecords: number;
  /** In words: what this run proved. */
  proved: string;
  /** In words: what it did not, and what does. */
  needsDeep: string;
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
  coverage: VerifyCoverage;
  /** Per dataset checked: whether its newest snapshot is restorable, which snapshots are, and what to do. */
  chains: ChainHealth[];
}

/** Objects checked at once (each one HEAD or small GET): a long-lived repository has tens of thousands. */
const VERIFY_CONCURRENCY = 16;

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'error';
}

interface VolumeCheck {
  problem: string | null;
  /** `bad`: missing or proven bad; `mismatch`: only the ETag or class differs (or no ETag now), size and sealed metadata right. */
  kind: DamageKind;
  /** The object as HEAD saw it (null: missing). */
  info: ObjectInfo | null;
  /** The ETag was compared with the one recorded at push. */
  etagChecked: boolean;
}

/**
 * Why one volume is wrong (or null), and what was compared. Only findings
 * are problems; any store error other than not-found (network, access
 * denied, expired credentials) is thrown: verify stops with it and records
 * nothing for the object.
 */
async function volumeCheck(ctx: ServiceContext, keyring: Keyring, s: StreamRow, v: VolumeRow, listedSize: number | undefined): Promise<VolumeCheck> {
  const fail = (problem: string, info: ObjectInfo | null = null, kind: DamageKind = 'bad'): VolumeCheck => ({ problem, kind, info, etagChecked: false });
  if (listedSize === undefined) return fail('missing from the store');
  if (v.storedSize !== null && listedSize !== v.storedSize) return fail(`is ${listedSize} bytes, the manifest says ${v.storedSize}`);
  let info: ObjectInfo;
  try {
    info = await ctx.store.head(v.key);
  } catch (err) {
    if (err instanceof NotFoundError) return fail('missing from the store');
    throw err;
  }
  if (v.storedSize !== null && info.size !== v.storedSize) return fail(`is ${info.size} bytes, the manifest says ${v.storedSize}`, info);
  // Sealed metadata first: wrong there is proven bad; right there, an ETag or class difference is a mismatch.
  // Absent metadata is no finding: tools that copy buckets (aws s3 sync of a file:// store, some
  // migrations) drop user metadata, and it is only a second index of what the sealed record says.
  // The ETag below still tells whether the bytes are the pushed ones. Present, it must be right.
  // Metadata that does not open or names another volume is reported, but it is not proof that the
  // data is damaged (it can be swapped or garbled on its own): a mismatch, which a restore settles
  // by authenticating the parts, instead of damage that makes restores skip an intact volume.
  const meta = (info.metadata[VOLUME_META_HEADER] ?? '') === '' ? null : sealedMetadataProblem(keyring, s, v, info);
  if (meta) return fail(meta, info, 'mismatch');
  if (v.etag !== null && info.etag === undefined) {
    return fail(`the store reports no ETag, the push recorded ${v.etag}: whether it was replaced cannot be told (a restore authenticates it)`, info, 'mismatch');
  }
  const etagChecked = v.etag !== null;
  if (etagChecked && info.etag !== v.etag) {
    return fail(`was replaced since the push: the store reports ETag ${info.etag}, the push recorded ${v.etag} (other bytes, or a copy with other part sizes; a restore authenticates it)`, info, 'mismatch');
  }
  if (info.storageClass !== v.storageClass) return fail(`storage class is ${info.storageClass}, the manifest says ${v.storageClass}`, info, 'mismatch');
  return { problem: null, kind: 'bad', info, etagChecked };
}

/** Why the sealed metadata HEAD reports is wrong, or null. */
function sealedMetadataProblem(keyring: Keyring, s: StreamRow, v: VolumeRow, info: ObjectInfo): string | null {
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

/** Why a stream record is wrong, or null; store errors other than not-found are thrown (not findings). */
async function streamRecordProblem(ctx: ServiceContext, keyring: Keyring, s: StreamRow): Promise<string | null> {
  let bytes: Uint8Array;
  try {
    bytes = await ctx.store.getBytes(streamRecordKey(s.streamId));
  } catch (err) {
    if (err instanceof NotFoundError) return 'stream record missing (a rebuild could not find this stream)';
    throw err;
  }
  try {
    const rec = parseStreamRecord(keyring.openBlob(BLOB_STREAM_RECORD, bytes), s.streamId);
    if (rec.to.guid !== s.to.guid.toString() || rec.dataset !== s.dataset) return 'stream record names another dataset or snapshot';
    return null;
  } catch (err) {
    return `stream record unusable: ${messageOf(err)}`;
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
  let volumesOk = 0;
  let etagMatched = 0;
  let streamRecords = 0;
  const sizeAndMetadataOnly: string[] = [];
  const datasets = dataset !== undefined ? [dataset] : manifest.datasets().map((d) => d.name);
  const streams = datasets.flatMap((ds) => manifest.restorableStreams(ds));
  const recorded = new Map(manifest.damagedObjects(dataset).map((o) => [o.key, o]));
  const found = (s: StreamRow, key: string, problem: string, etagSeen: string | null, kind: DamageKind = 'bad'): void => {
    const before = recorded.get(key);
    if (kind === 'mismatch' && before?.foundBy === 'restore' && before.kind === 'bad' && before.etagSeen !== null && before.etagSeen === etagSeen) {
      // The bytes a restore found failing are still there (same ETag): keep its finding, restores keep skipping them.
      problems.push({ key, dataset: s.dataset, streamId: s.streamId, problem: `${problem}; ${before.problem} (found by a restore at ${before.foundAt.toISOString()})` });
      return;
    }
    problems.push({ key, dataset: s.dataset, streamId: s.streamId, problem });
    manifest.recordDamage({ key, problem, foundBy: 'verify', etagSeen, kind, at: ctx.now() });
  };
  // Each object is one HEAD or GET: VERIFY_CONCURRENCY of them in flight, the findings handled one
  // by one in the order of the sequential check (a store error stops it where that check would have).
  const volumesOf = manifest.volumesByStream(dataset);
  const items = streams.flatMap((s) => [...(volumesOf.get(s.streamId) ?? []).map((v) => ({ s, v })), { s, v: null }]);
  type Checked = { kind: 'volume'; check: VolumeCheck } | { kind: 'not-complete' } | { kind: 'record'; problem: string | null };
  await forEachInOrder(
    items,
    VERIFY_CONCURRENCY,
    async ({ s, v }): Promise<Checked> => {
      if (v === null) return { kind: 'record', problem: await streamRecordProblem(ctx, keyring, s) };
      if (v.state !== 'complete') return { kind: 'not-complete' };
      return { kind: 'volume', check: await volumeCheck(ctx, keyring, s, v, listed.get(v.key)) };
    },
    (r, { s, v }) => {
      if (v === null) {
        if (r.kind !== 'record') throw new Error('internal: verify result out of order');
        const recKey = streamRecordKey(s.streamId);
        if (r.problem) found(s, recKey, r.problem, null);
        else {
          streamRecords++;
          if (recorded.has(recKey)) manifest.clearDamage(recKey);
        }
        return;
      }
      referenced.add(v.key);
      if (r.kind === 'not-complete') {
        found(s, v.key, `volume is ${v.state} in the manifest, in a stream restores rely on`, null);
        return;
      }
      if (r.kind !== 'volume') throw new Error('internal: verify result out of order');
      objectsChecked++;
      bytesChecked += v.storedSize ?? 0;
      const c = r.check;
      if (c.problem) {
        found(s, v.key, c.problem, c.info?.etag ?? null, c.kind);
        return;
      }
      volumesOk++;
      if (c.etagChecked) etagMatched++;
      else sizeAndMetadataOnly.push(v.key);
      const before = recorded.get(v.key);
      if (before && clearable(before, v, c.info)) manifest.clearDamage(v.key);
      else if (before) problems.push({ key: v.key, dataset: s.dataset, streamId: s.streamId, problem: `${before.problem} (found by a restore at ${before.foundAt.toISOString()}; its HEAD looks right, but the bytes failed)` });
    },
  );
  // Superseded/abandoned streams still reference their objects: not "unreferenced".
  for (const vols of volumesOf.values()) for (const v of vols) referenced.add(v.key);
  const unreferenced = dataset ? [] : [...listed.keys()].filter((k) => !referenced.has(k));
  const coverage = coverageOf(volumesOk, etagMatched, sizeAndMetadataOnly, streamRecords);
  const chains = datasets.map((ds) => chainHealth(manifest, ds));
  return { ok: problems.length === 0, store: ctx.store.url, keyId: keyring.keyId, streams: streams.length, objectsChecked, bytesChecked, problems, unreferenced, coverage, chains };
}

/**
 * Whether a recorded damage is disproved by a volume that now checks out:
 * verify's own findings are (the object is back as pushed); a restore's
 * (its bytes failed authentication) only when the object was replaced since
 * and now has the ETag recorded at push (a good copy put back).
 */
function clearable(d: DamageRow, v: VolumeRow, info: ObjectInfo | null): boolean {
  if (d.foundBy === 'verify') return true;
  return info?.etag !== undefined && v.etag !== null && info.etag === v.etag && d.etagSeen !== null && d.etagSeen !== info.etag;
}

function coverageOf(volumes: number, etagMatched: number, sizeAndMetadataOnly: string[], streamRecords: number): VerifyCoverage {
  const parts = [`${volumes} volume(s) present with the recorded size, storage class and sealed metadata (naming their stream, volume and snapshot)`];
  if (etagMatched > 0) parts.push(`${etagMatched} of them with the ETag the store reported at push (not replaced or rewritten since)`);
  if (sizeAndMetadataOnly.length > 0) {
    parts.push(`${sizeAndMetadataOnly.length} checked for size and metadata only (pushed before zbk recorded ETags: an overwrite of the same size would not show)`);
  }
  parts.push(`${streamRecords} stream record(s) open`);
  return {
    volumes,
    etagMatched,
    sizeAndMetadataOnly,
    streamRecords,
    proved: parts.join('; '),
    needsDeep:
      'not proved: that the bytes still decrypt, authenticate and restore (damage the store does not report, e.g. a file changed in place in a file:// store); "zbk verify --deep" restores a snapshot and compares it',
  };
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
