/**
 * `zbk manifest rebuild`: recreate the local manifest from the bucket alone.
 *
 * 1. The newest mirror, by its sealed sequence number, that decrypts and
 *    passes every check is the base; one older than the newest this machine
 *    has seen (the existing manifest's `mirror.seq`) is refused as a rollback.
 * 2. Stream records (`streams/*.zbks`, sealed, instantly readable) are then
 *    merged in: they cover pushes completed after that mirror, or everything
 *    when no mirror is usable. Each record's volumes are checked against the
 *    listing (presence, size, class, time). A HEAD cross-checks the sealed
 *    `zbk-meta` metadata where there is some; the record is the authority, so
 *    a volume without metadata (a bucket copied by a tool that drops user
 *    metadata) or whose HEAD fails is still placed, with a warning.
 * 3. The mirror's own streams are checked against the listing too: a mirror
 *    can predate deletions (a consolidation killed, or whose mirror write
 *    failed, after deleting an old chain). Their missing volumes are marked
 *    deleted and reported (`goneFromStore`), so no restore picks them.
 *
 * Archived data is never read (no GET under `data/`). Objects that cannot be
 * placed — volumes without a stream record (incomplete uploads), metadata
 * that does not open, records whose volumes are missing — are reported, not
 * guessed. The result is built under a temporary name and moved into place;
 * an existing manifest is only replaced with `force`, and then moved aside.
 */
import { existsSync, linkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { forEachInOrder } from '../concurrency.js';
import type { Keyring, VolumeMetadata } from '../crypto/types.js';
import { ManifestError } from '../errors.js';
import { BLOB_STREAM_RECORD, DATA_PREFIX, STREAMS_PREFIX, VOLUME_META_HEADER, parseVolumeKey, streamRecordKey, volumeKey } from '../layout.js';
import type { StreamRecord } from '../layout.js';
import { NotFoundError, StoreError } from '../store/errors.js';
import type { ListEntry, ObjectStore } from '../store/object-store.js';
import { stampPath } from './check-stamp.js';
import { textToId, textToU64 } from './guid.js';
import { type ImportStreamInput, Manifest } from './manifest.js';
import { MIRROR_SEQ_KV, localMirrorSeq, newerAuthenticMirror, readNewestMirror, type SkippedMirror } from './mirror.js';

export interface RebuildOptions {
  store: ObjectStore;
  keyring: Keyring;
  targetPath: string;
  /** Replace an existing manifest (it is renamed aside, never deleted). */
  force?: boolean;
  /** Ignore mirrors and rebuild from stream records and volume metadata only. */
  ignoreMirrors?: boolean;
  now?: () => Date;
}

export interface RebuildReport {
  source: 'mirror' | 'listing';
  mirrorKey?: string;
  /** Complete streams in the rebuilt manifest. */
  streams: number;
  /** Streams added from stream records (all of them when source is 'listing'). */
  streamsFromRecords: number;
  datasets: string[];
  /** Objects that could not be placed, with the reason. */
  unplaced: { key: string; reason: string }[];
  /**
   * Volumes the mirror records but the store no longer has (deleted after
   * that mirror was written, e.g. by a consolidation that did not get to
   * write a newer one): marked deleted, their streams deleted (all gone) or
   * superseded (partly gone), never offered for restore.
   */
  goneFromStore: { key: string; streamId: string; dataset: string; streamState: string }[];
  skippedMirrors: SkippedMirror[];
  /** Things that did not stop the rebuild but a user should know (missing metadata, HEAD errors). */
  warnings: string[];
  /** Where the replaced manifest was moved (force only). */
  movedAside?: string;
}

const STREAM_RECORD_KEY = /^streams\/([0-9a-f]{32})\.zbks$/;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isU64Text(v: unknown): v is string {
  return typeof v === 'string' && /^(0|[1-9][0-9]*)$/.test(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Decode and shape-check a decrypted stream record; throws with a reason. */
export function parseStreamRecord(plain: Uint8Array, expectedStreamId: string): StreamRecord {
  const r = JSON.parse(Buffer.from(plain).toString('utf8')) as unknown;
  const bad = (what: string): never => {
    throw new Error(`malformed stream record: ${what}`);
  };
  if (!isObj(r) || r.v !== 1) return bad('unknown version');
  if (r.streamId !== expectedStreamId) return bad(`stream id ${String(r.streamId)} does not match its key`);
  if (typeof r.dataset !== 'string' || r.dataset === '') return bad('dataset');
  const from = r.from;
  if (from !== null && !(isObj(from) && typeof from.name === 'string' && isU64Text(from.guid))) return bad('from');
  const to = r.to;
  if (!(isObj(to) && typeof to.name === 'string' && isU64Text(to.guid) && isU64Text(to.createtxg) && typeof to.creation === 'number')) return bad('to');
  if (!isCount(r.plaintextSize) || !isCount(r.storedSize)) return bad('sizes');
  if (typeof r.startedAt !== 'string' || typeof r.completedAt !== 'string') return bad('times');
  if (r.sendFlags !== undefined && !(Array.isArray(r.sendFlags) && r.sendFlags.every((f) => typeof f === 'string' && f.startsWith('-')))) return bad('sendFlags');
  if (!Array.isArray(r.volumes) || r.volumes.length === 0) return bad('volumes');
  r.volumes.forEach((v: unknown, i: number) => {
    if (!isObj(v) || v.index !== i || v.key !== volumeKey(expectedStreamId, i)) bad(`volume ${i}`);
    const vol = v as Record<string, unknown>;
    if (![vol.plaintextSize, vol.storedSize, vol.partCount, vol.partSize].every(isCount)) bad(`volume ${i} sizes`);
    if (typeof vol.plaintextSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(vol.plaintextSha256)) bad(`volume ${i} hash`);
    if (vol.etag !== undefined && (typeof vol.etag !== 'string' || vol.etag === '')) bad(`volume ${i} etag`);
  });
  return r as unknown as StreamRecord;
}

/** Why the sealed volume metadata disagrees with the stream record, or null. */
function metadataMismatch(meta: VolumeMetadata, rec: StreamRecord, index: number): string | null {
  if (meta.streamId !== rec.streamId) return 'metadata names another stream';
  if (meta.volumeIndex !== index) return `metadata says volume ${meta.volumeIndex}`;
  if (meta.dataset !== rec.dataset) return 'metadata names another dataset';
  if (meta.toSnapshot.guid !== rec.to.guid || meta.toSnapshot.name !== rec.to.name || meta.toSnapshot.createtxg !== rec.to.createtxg) {
    return 'metadata names another target snapshot';
  }
  if ((meta.fromSnapshot?.guid ?? null) !== (rec.from?.guid ?? null)) return 'metadata names another base snapshot';
  if (meta.partSize !== rec.volumes[index]!.partSize) return 'metadata part size differs from the record';
  return null;
}

interface Collected {
  streams: ImportStreamInput[];
  unplaced: { key: string; reason: string }[];
  warnings: string[];
  /** The listing of `data/`. */
  listed: ReadonlyMap<string, ListEntry>;
}

/** What one stream record gave: the stream to import, or why it cannot be; and what its volumes' HEADs said. */
interface RecordResult {
  stream: ImportStreamInput | null;
  unplaced: { key: string; reason: string } | null;
  noMetadata: string[];
  badMetadata: string[];
  headFailed: string[];
}

/** Stream records fetched (and their volumes' HEADs made) at once: the requests overlap, results are merged in listing order. */
const RECORD_CONCURRENCY = 16;

/** Fetch one stream record and cross-check its volumes against the listing and their HEADs. */
async function examineRecord(store: ObjectStore, keyring: Keyring, key: string, id: string, listed: ReadonlyMap<string, ListEntry>): Promise<RecordResult> {
  const out: RecordResult = { stream: null, unplaced: null, noMetadata: [], badMetadata: [], headFailed: [] };
  let rec: StreamRecord;
  try {
    rec = parseStreamRecord(keyring.openBlob(BLOB_STREAM_RECORD, await store.getBytes(key)), id);
  } catch (err) {
    out.unplaced = { key, reason: `stream record unusable: ${(err as Error).message}` };
    return out;
  }
  const vols: ImportStreamInput['volumes'] = [];
  let volumeSize = 0;
  let problem: string | null = null;
  for (const v of rec.volumes) {
    const entry = listed.get(v.key);
    if (!entry) {
      problem = `volume ${v.key} is missing from the store`;
      break;
    }
    if (entry.size !== v.storedSize) {
      problem = `volume ${v.key} has ${entry.size} bytes, the record says ${v.storedSize}`;
      break;
    }
    // The metadata is a second index, not the authority: the sealed record is. Absent
    // metadata or a failed HEAD leaves the volume placed; metadata that is there must agree.
    let sealedMeta: string | undefined;
    let headOk = true;
    try {
      sealedMeta = (await store.head(v.key)).metadata[VOLUME_META_HEADER];
    } catch (err) {
      if (err instanceof NotFoundError) {
        problem = `volume ${v.key} is missing from the store`;
        break;
      }
      headOk = false;
      out.headFailed.push(`${v.key} (${(err as Error).message})`);
    }
    if (sealedMeta === undefined || sealedMeta === '') {
      if (headOk) out.noMetadata.push(v.key);
    } else {
      // Metadata that does not open or names another volume is a warning, not a reason to drop
      // the stream: it can be garbled or swapped on its own, and the sealed record is the authority
      // (a restore authenticates every part against it).
      let meta: VolumeMetadata | null = null;
      try {
        meta = keyring.openVolumeMetadata(sealedMeta);
      } catch (err) {
        out.badMetadata.push(`${v.key} (does not open: ${(err as Error).message})`);
      }
      const disagrees = meta ? metadataMismatch(meta, rec, v.index) : null;
      if (disagrees) out.badMetadata.push(`${v.key} (${disagrees})`);
      else if (meta) volumeSize = Math.max(volumeSize, meta.volumeSize);
    }
    // Without metadata the configured volume size is not known; every volume but the last is full.
    volumeSize = Math.max(volumeSize, v.plaintextSize);
    vols.push({
      index: v.index, key: v.key, storageClass: entry.storageClass, storedSize: v.storedSize, partCount: v.partCount,
      plaintextSize: v.plaintextSize, plaintextSha256: v.plaintextSha256, uploadedAt: entry.lastModified,
      // The push-time ETag from the (sealed) record, not today's HEAD: "zbk verify" compares the two.
      etag: v.etag ?? null,
    });
  }
  if (problem) {
    out.unplaced = { key, reason: `stream not restorable: ${problem}` };
    return out;
  }
  out.stream = {
    streamId: rec.streamId,
    dataset: rec.dataset,
    from: rec.from ? { name: rec.from.name, guid: textToId(rec.from.guid) } : null,
    to: { name: rec.to.name, guid: textToId(rec.to.guid), createtxg: textToU64(rec.to.createtxg), creation: rec.to.creation },
    plaintextSize: rec.plaintextSize,
    storedSize: rec.storedSize,
    volumeSize,
    partSize: rec.volumes[0]!.partSize,
    startedAt: new Date(rec.startedAt),
    completedAt: new Date(rec.completedAt),
    sendFlags: rec.sendFlags ?? null,
    volumes: vols,
  };
  return out;
}

/** Read every stream record and cross-check its volumes (LIST + HEAD only). */
async function collectFromStore(store: ObjectStore, keyring: Keyring, skipStream: (id: string) => boolean): Promise<Collected> {
  const unplaced: { key: string; reason: string }[] = [];
  const listed = new Map<string, ListEntry>();
  // The listed volumes by stream, so a skipped stream's are placed without a pass over the whole listing.
  const volumesOf = new Map<string, string[]>();
  for await (const e of store.list(DATA_PREFIX)) {
    listed.set(e.key, e);
    const pk = parseVolumeKey(e.key);
    if (pk) {
      const keys = volumesOf.get(pk.streamId);
      if (keys) keys.push(e.key);
      else volumesOf.set(pk.streamId, [e.key]);
    }
  }
  const placed = new Set<string>();
  const streams: ImportStreamInput[] = [];
  const noMetadata: string[] = [];
  const badMetadata: string[] = [];
  const headFailed: string[] = [];

  // In listing order: a name that is no record, a skipped stream, or a record to fetch.
  const records: ({ key: string; id: null } | { key: string; id: string; skip: boolean })[] = [];
  for await (const e of store.list(STREAMS_PREFIX)) {
    const m = STREAM_RECORD_KEY.exec(e.key);
    records.push(m ? { key: e.key, id: m[1]!, skip: skipStream(m[1]!) } : { key: e.key, id: null });
  }
  const fetched = (r: (typeof records)[number]): r is { key: string; id: string; skip: false } => r.id !== null && !r.skip;
  await forEachInOrder(
    records,
    RECORD_CONCURRENCY,
    (r) => (fetched(r) ? examineRecord(store, keyring, r.key, r.id, listed) : Promise.resolve(null)),
    (result, r) => {
      if (r.id === null) {
        unplaced.push({ key: r.key, reason: 'not a stream record name' });
        return;
      }
      if (!result) {
        for (const k of volumesOf.get(r.id) ?? []) placed.add(k);
        return;
      }
      noMetadata.push(...result.noMetadata);
      badMetadata.push(...result.badMetadata);
      headFailed.push(...result.headFailed);
      if (result.unplaced) unplaced.push(result.unplaced);
      if (result.stream) {
        for (const v of result.stream.volumes) placed.add(v.key);
        streams.push(result.stream);
      }
    },
  );

  for (const key of listed.keys()) {
    if (placed.has(key)) continue;
    const pk = parseVolumeKey(key);
    if (!pk) {
      unplaced.push({ key, reason: 'not a volume name' });
      continue;
    }
    let reason: string;
    try {
      const sealedMeta = (await store.head(key)).metadata[VOLUME_META_HEADER];
      if (sealedMeta === undefined || sealedMeta === '') reason = `no usable stream record for stream ${pk.streamId} (incomplete or abandoned upload; no metadata)`;
      else {
        const meta = keyring.openVolumeMetadata(sealedMeta);
        reason = `no usable stream record for stream ${pk.streamId} of ${meta.dataset} (incomplete or abandoned upload)`;
      }
    } catch (err) {
      reason = err instanceof StoreError ? `no usable stream record for stream ${pk.streamId} (HEAD failed: ${err.message})` : `metadata does not open: ${(err as Error).message}`;
    }
    unplaced.push({ key, reason });
  }
  const warnings: string[] = [];
  if (noMetadata.length > 0) {
    warnings.push(
      `${noMetadata.length} volume(s) have no zbk metadata (copied by a tool that drops user metadata?), e.g. ${noMetadata[0]}: placed from their sealed stream records; "zbk verify" reports them until they are pushed again`,
    );
  }
  if (badMetadata.length > 0) {
    warnings.push(`${badMetadata.length} volume(s) carry metadata that does not match their stream record, placed from the record (zbk verify reports them): ${badMetadata.slice(0, 3).join('; ')}`);
  }
  if (headFailed.length > 0) warnings.push(`HEAD failed for ${headFailed.length} volume(s), placed from their stream records without a metadata check: ${headFailed.slice(0, 3).join('; ')}`);
  return { streams, unplaced, warnings, listed };
}

/** `mirror.seq` of the manifest at `path`, or 0 if it has none or does not open (it is being replaced). */
function seenSeqOf(path: string, now: () => Date): number {
  let old: Manifest | undefined;
  try {
    old = Manifest.open(path, { readonly: true, now });
    return localMirrorSeq(old);
  } catch {
    return 0;
  } finally {
    old?.close();
  }
}

function removeDbFiles(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`, stampPath(path)]) rmSync(p, { force: true });
}

/** Rebuild the manifest at `targetPath` from the bucket. See the module comment. */
export async function rebuildManifest(opts: RebuildOptions): Promise<RebuildReport> {
  const { store, keyring, targetPath } = opts;
  const now = opts.now ?? (() => new Date());
  if (existsSync(targetPath) && !opts.force) {
    throw new ManifestError(`a manifest already exists at ${targetPath}; pass --force to replace it (it will be moved aside, not deleted)`, 'MANIFEST_EXISTS');
  }
  // The newest mirror this machine has seen: older ones are a rollback.
  const lastSeenSeq = existsSync(targetPath) ? seenSeqOf(targetPath, now) : 0;
  const tmp = `${targetPath}.rebuild-${process.pid}`;
  removeDbFiles(tmp);
  let m: Manifest | undefined;
  try {
    const validate = (bytes: Uint8Array): string | null => {
      removeDbFiles(tmp);
      writeFileSync(tmp, bytes, { mode: 0o600 });
      let probe: Manifest | undefined;
      try {
        probe = Manifest.open(tmp, { create: false, now });
        const repo = probe.repository();
        if (repo && repo.keyId !== keyring.keyId) return `belongs to key ${repo.keyId}, not ${keyring.keyId}`;
        const check = probe.integrityCheck();
        return check.ok ? null : `integrity: ${check.problems.slice(0, 2).join('; ')}`;
      } catch (err) {
        return (err as Error).message;
      } finally {
        probe?.close();
      }
    };
    const mirror = opts.ignoreMirrors
      ? { bytes: null, key: null, seq: null, skipped: [] }
      : await readNewestMirror(store, keyring, { validate, now, ...(lastSeenSeq > 0 ? { lastSeenSeq } : {}) });
    if (!mirror.bytes) removeDbFiles(tmp);
    // With a mirror, tmp already holds it (validated last); else create fresh.
    m = Manifest.open(tmp, { now });
    // A mirror of this key written where the repository was before (a copied or moved bucket):
    // the repository is the key, so record where it is now.
    const was = m.repository();
    const relocated = was && was.keyId === keyring.keyId && was.storeUrl !== store.url ? was.storeUrl : null;
    if (relocated) m.relocateRepository(store.url, keyring.keyId);
    m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
    // The next mirror written continues after both, so it sorts after every authentic one seen.
    // From the records alone (mirrors ignored), this manifest is as new as the newest mirror.
    const newest = opts.ignoreMirrors ? ((await newerAuthenticMirror(store, keyring, 0))?.seq ?? 0) : 0;
    const seq = Math.max(lastSeenSeq, mirror.seq ?? 0, newest);
    if (seq > localMirrorSeq(m)) m.setValue(MIRROR_SEQ_KV, seq);

    const known = new Set(m.streams().filter((s) => s.state !== 'uploading' && s.state !== 'abandoned').map((s) => s.streamId));
    const collected = await collectFromStore(store, keyring, (id) => known.has(id));
    // One stream the manifest refuses must not keep the bucket's other streams from a restore.
    const added = m.importCompleteStreams(collected.streams, (s, err) => {
      collected.unplaced.push({ key: streamRecordKey(s.streamId), reason: `stream not imported: ${err.message}` });
      for (const v of s.volumes) collected.unplaced.push({ key: v.key, reason: `its stream ${s.streamId} was not imported` });
    });
    // A mirror may predate deletions: what it records must still be listed.
    const goneFromStore = mirror.bytes ? m.markMissingVolumes((key) => collected.listed.has(key), now()) : [];

    const check = m.integrityCheck();
    if (!check.ok) throw new ManifestError(`the rebuilt manifest fails its integrity check: ${check.problems.slice(0, 3).join('; ')}`, 'REBUILD_FAILED');
    const report: RebuildReport = {
      source: mirror.bytes ? 'mirror' : 'listing',
      streams: m.streams(undefined, ['complete']).length,
      streamsFromRecords: added,
      datasets: m.datasets().map((d) => d.name),
      unplaced: collected.unplaced,
      goneFromStore,
      skippedMirrors: mirror.skipped,
      warnings: collected.warnings,
    };
    if (relocated) report.warnings.push(`the mirror was written when this repository was at ${relocated}; it is now recorded at ${store.url} (a copied or moved bucket)`);
    const refused = mirror.skipped.filter((x) => x.refused);
    if (refused.length > 0) {
      report.warnings.unshift(`${refused.length} authentic mirror(s) refused (rolled back, or dated in the future): ${refused[0]!.reason}`);
    }
    if (mirror.key) report.mirrorKey = mirror.key;
    m.logEvent('manifest-rebuilt', null, { source: report.source, mirrorKey: mirror.key, streams: report.streams, unplaced: report.unplaced.length, goneFromStore: goneFromStore.length });
    m.close();
    m = undefined;

    if (existsSync(targetPath)) {
      // force (checked above): keep the old file and its WAL next to it.
      const aside = `${targetPath}.replaced-${now().toISOString().replace(/[-:.]/g, '')}`;
      for (const suffix of ['', '-wal', '-shm']) {
        if (existsSync(targetPath + suffix)) renameSync(targetPath + suffix, aside + suffix);
      }
      report.movedAside = aside;
    }
    // link: never clobber a manifest that appeared meanwhile.
    linkSync(tmp, targetPath);
    return report;
  } finally {
    m?.close();
    removeDbFiles(tmp);
  }
}
