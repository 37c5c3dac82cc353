/**
 * Encrypted copies of the manifest in the store
 * (`manifest/s<seq>-<time>-<rand>.zbkm`), so a new machine can rebuild from
 * the bucket. Every mirror goes under a new key (never overwritten); old
 * ones are pruned only after the new one is confirmed, so at every moment at
 * least one complete mirror exists.
 *
 * Rollback: each mirror carries, inside the sealed database (kv rows
 * `mirror.seq`, `mirror.key`, `mirror.written_at`), its sequence number and
 * its own key. Readers choose by that authenticated sequence and refuse a
 * mirror whose name does not match it (a renamed or replayed copy), one
 * older than the newest this machine has seen, and one dated in the future.
 * The sequence continues from the local manifest's own (authenticated: it
 * came from a mirror or from this machine's writes), never from an
 * unauthenticated name, so planted names cannot make pruning delete real
 * mirrors.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Keyring } from '../crypto/types.js';
import { ManifestError } from '../errors.js';
import { BLOB_MANIFEST, MANIFEST_PREFIX, MAX_MIRROR_SEQ, manifestMirrorKey, parseMirrorKey } from '../layout.js';
import { NotFoundError } from '../store/errors.js';
import type { ObjectStore, StorageClass } from '../store/object-store.js';
import type { Manifest } from './manifest.js';
import { SCHEMA_VERSION, schemaVersion } from './schema.js';

/** kv rows a mirror seals about itself (the local manifest keeps the last written or read). */
export const MIRROR_SEQ_KV = 'mirror.seq';
const MIRROR_KEY_KV = 'mirror.key';
const MIRROR_AT_KV = 'mirror.written_at';
/** A mirror written more than this far ahead of our clock is refused (skew allowance). */
const FUTURE_SLACK_MS = 24 * 3_600_000;
/** Listed names claiming a newer sequence than ours: at most this many are downloaded to catch up. */
const CATCH_UP_TRIES = 3;
/** A mirror larger than this is not downloaded by a rebuild (a planted giant object must not exhaust memory). */
export const MAX_MIRROR_BYTES = 2 * 1024 ** 3;

/**
 * The largest mirror worth downloading to compare with `db`: a mirror is a
 * compacted copy of a manifest like it, so a few times its size (and at
 * least 64 MiB). A planted giant object then costs no egress on every push.
 */
function mirrorSizeBound(db: Manifest): number {
  let size = 0;
  try {
    size = statSync(db.path).size;
  } catch {
    // an in-memory or vanished file: the floor applies
  }
  return Math.min(MAX_MIRROR_BYTES, Math.max(64 * 1024 ** 2, 4 * size));
}

export interface WriteMirrorOptions {
  /** Mirrors to keep, newest first, including the new one (≥ 1). Default 10. */
  keep?: number;
  /** Storage class for the mirror: an instantly readable one. */
  storageClass: StorageClass;
  now?: () => Date;
}

export interface MirrorInfo {
  key: string;
  size: number;
  lastModified: Date;
  /** The sequence the key claims (0: written before sequence numbers). Unauthenticated. */
  claimedSeq: number;
}

export interface WriteMirrorResult {
  key: string;
  size: number;
  /** The new mirror's sequence number. */
  seq: number;
  /** Older mirrors deleted by pruning. */
  pruned: string[];
}

/** What a mirror seals about itself. */
export interface MirrorStamp {
  seq: number;
  key: string;
  writtenAt: Date;
}

/** Mirror objects in the store, oldest first by claimed sequence, then key. */
export async function listMirrors(store: ObjectStore): Promise<MirrorInfo[]> {
  const out: MirrorInfo[] = [];
  for await (const e of store.list(MANIFEST_PREFIX)) {
    const k = parseMirrorKey(e.key);
    if (k) out.push({ key: e.key, size: e.size, lastModified: e.lastModified, claimedSeq: k.seq });
  }
  return out.sort((a, b) => a.claimedSeq - b.claimedSeq || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The authenticated sequence of the newest mirror the local manifest knows (written or rebuilt from), or 0. */
export function localMirrorSeq(db: Manifest): number {
  const v = db.getValue(MIRROR_SEQ_KV);
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_MIRROR_SEQ ? v : 0;
}

/**
 * Seal a compacted copy of `db` and store it under a new mirror key with the
 * next sequence number, verify it (HEAD: size), then delete this key's
 * mirrors whose sequence is `keep` or more below the new one. Refuses
 * (MANIFEST_UNHEALTHY) to mirror a manifest failing its integrity check, so
 * a damaged local copy never pushes good mirrors out.
 */
export async function writeMirror(db: Manifest, store: ObjectStore, keyring: Keyring, opts: WriteMirrorOptions): Promise<WriteMirrorResult> {
  const keep = opts.keep ?? 10;
  if (!Number.isInteger(keep) || keep < 1) throw new ManifestError(`mirrors to keep must be at least 1, got ${keep}`, 'BAD_INPUT');
  const check = db.integrityCheck();
  if (!check.ok) {
    throw new ManifestError(`refusing to mirror a manifest that fails its integrity check: ${check.problems.slice(0, 3).join('; ')}`, 'MANIFEST_UNHEALTHY');
  }
  const all = await listMirrors(store);
  // Another machine (or this one before a rebuild from records) wrote newer mirrors: continue after
  // the newest that authenticates, so ours sorts after it. Names alone are never trusted.
  const local = localMirrorSeq(db);
  const base = Math.max(local, (await newerAuthenticMirror(store, keyring, local, all, mirrorSizeBound(db)))?.seq ?? 0);
  if (base >= MAX_MIRROR_SEQ) throw new ManifestError(`mirror sequence exhausted (${base})`, 'BAD_INPUT');
  const seq = base + 1;
  const at = (opts.now ?? (() => new Date()))();
  const key = manifestMirrorKey(seq, at, randomBytes(6).toString('hex'));
  // Recorded before the copy, so the mirror seals its own sequence and key. A failed put leaves a
  // gap in the sequence, which is harmless.
  db.setValue(MIRROR_SEQ_KV, seq);
  db.setValue(MIRROR_KEY_KV, key);
  db.setValue(MIRROR_AT_KV, at.toISOString());
  const sealed = keyring.sealBlob(BLOB_MANIFEST, db.compactedCopy());
  await store.put(key, sealed, { storageClass: opts.storageClass });
  const info = await store.head(key);
  if (info.size !== sealed.length) {
    throw new ManifestError(`manifest mirror ${key} was stored with ${info.size} bytes, expected ${sealed.length}; older mirrors kept`, 'MIRROR_VERIFY');
  }
  const pruned: string[] = [];
  for (const m of all) {
    // By our authenticated sequence: a name claiming a high number keeps nothing of ours from
    // being kept, and one claiming a low number is at worst a planted object deleted. Only this
    // key's mirrors: those of a repository replaced by `init --force` (its key file kept aside)
    // stay, since they are all that describes its objects besides the records.
    if (m.key !== key && m.claimedSeq <= seq - keep && (await sealedWithKey(store, m.key, keyring.keyId))) pruned.push(m.key);
  }
  if (pruned.length > 0) await store.deleteMany(pruned);
  return { key, size: sealed.length, seq, pruned };
}

/**
 * The newest mirror in the store that authenticates and whose sealed
 * sequence is above `seq`, or null: a manifest that has seen `seq` is behind
 * it (another machine or state dir wrote since). Only names claiming more
 * are downloaded, newest first, at most a few (planted names cost a GET each).
 */
export async function newerAuthenticMirror(store: ObjectStore, keyring: Keyring, seq: number, listed?: MirrorInfo[], maxBytes = MAX_MIRROR_BYTES): Promise<MirrorStamp | null> {
  const all = listed ?? (await listMirrors(store));
  for (const m of all.filter((x) => x.claimedSeq > seq && x.size <= maxBytes).reverse().slice(0, CATCH_UP_TRIES)) {
    const stamp = await authenticStamp(store, keyring, m);
    if (stamp) return stamp;
  }
  return null;
}

/**
 * A ManifestError (MANIFEST_STALE, exit 9) when the store holds an authentic
 * mirror newer than any this manifest has seen: another machine or state dir
 * pushed since, and a push from here would duplicate its streams and write a
 * mirror that knows less. Null when this manifest is current.
 */
export async function manifestBehindStore(store: ObjectStore, keyring: Keyring, db: Manifest): Promise<ManifestError | null> {
  const seen = localMirrorSeq(db);
  const newer = await newerAuthenticMirror(store, keyring, seen, undefined, mirrorSizeBound(db));
  if (!newer) return null;
  return new ManifestError(
    `the store holds manifest mirror ${newer.seq} (written ${newer.writtenAt.toISOString().slice(0, 19)}Z), newer than this machine's manifest (mirror ${seen}): ` +
      `another machine or state dir pushed since. Run "zbk manifest rebuild --force" (this manifest is moved aside) to bring it up to date, then push`,
    'MANIFEST_STALE',
  );
}

/** A mirror fetched and checked: its plaintext and sealed stamp, or why it cannot be used. */
type ExaminedMirror = { plain: Uint8Array; stamp: MirrorStamp | null; reason: null } | { reason: string };

/**
 * Fetch the mirror at `m`, open it, check it is a healthy manifest whose
 * sealed stamp matches its name. Gone since the listing is a reason; any
 * other store failure is thrown: it is not a property of the mirror, and
 * falling back to an older one would silently lose recent state.
 */
async function examineMirror(store: ObjectStore, keyring: Keyring, m: MirrorInfo): Promise<ExaminedMirror> {
  let sealed: Uint8Array;
  try {
    sealed = await store.getBytes(m.key);
  } catch (err) {
    if (err instanceof NotFoundError) return { reason: 'deleted while reading' };
    throw err;
  }
  let plain: Uint8Array;
  try {
    plain = keyring.openBlob(BLOB_MANIFEST, sealed);
  } catch (err) {
    return { reason: `does not decrypt: ${(err as Error).message}` };
  }
  const { problem, stamp } = inspectMirrorBytes(plain);
  const reason = problem ?? stampMatches(stamp, m);
  return reason ? { reason } : { plain, stamp, reason: null };
}

/** The stamp of the mirror at `m` if it is an authentic, healthy mirror stored under its own name; else null. */
async function authenticStamp(store: ObjectStore, keyring: Keyring, m: MirrorInfo): Promise<MirrorStamp | null> {
  const e = await examineMirror(store, keyring, m);
  return e.reason === null ? e.stamp : null;
}

/**
 * Whether `bytes` is a usable manifest database (opens, passes quick_check,
 * has a schema this zbk knows: else `problem` says why), and the stamp it
 * seals (null: a mirror written before stamps). One open of the database.
 */
export function inspectMirrorBytes(bytes: Uint8Array): { problem: string | null; stamp: MirrorStamp | null } {
  if (Buffer.from(bytes.subarray(0, 16)).toString('latin1') !== 'SQLite format 3\0') return { problem: 'not an SQLite database', stamp: null };
  let mem: Database.Database | undefined;
  try {
    mem = new Database(Buffer.from(bytes));
    const qc = (mem.pragma('quick_check') as Record<string, unknown>[]).map((r) => String(Object.values(r)[0]));
    if (qc.length !== 1 || qc[0] !== 'ok') return { problem: `quick_check: ${qc.slice(0, 2).join('; ')}`, stamp: null };
    const v = schemaVersion(mem);
    if (v > SCHEMA_VERSION) return { problem: `written by a newer zbk (schema ${v})`, stamp: null };
    if (v < 1) return { problem: 'not a zbk manifest (no schema)', stamp: null };
    return { problem: null, stamp: stampOf(mem) };
  } catch (err) {
    return { problem: `does not open: ${(err as Error).message}`, stamp: null };
  } finally {
    mem?.close();
  }
}

/** The stamp sealed in an opened mirror database, or null. */
function stampOf(mem: Database.Database): MirrorStamp | null {
  try {
    const get = (k: string): unknown => {
      const r = mem.prepare('SELECT value FROM kv WHERE key = ?').get(k) as { value: string } | undefined;
      return r ? (JSON.parse(r.value) as unknown) : undefined;
    };
    const seq = get(MIRROR_SEQ_KV);
    const key = get(MIRROR_KEY_KV);
    const at = get(MIRROR_AT_KV);
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1 || typeof key !== 'string' || typeof at !== 'string') return null;
    const writtenAt = new Date(at);
    return Number.isNaN(writtenAt.getTime()) ? null : { seq, key, writtenAt };
  } catch {
    return null; // no kv table (not a manifest of ours), or a value that is not JSON
  }
}

/** Why a mirror's sealed stamp (or its absence) does not fit the name it is stored under, or null. */
function stampMatches(stamp: MirrorStamp | null, m: MirrorInfo): string | null {
  if (m.claimedSeq === 0) return stamp ? `holds mirror ${stamp.key} under another name (renamed or replayed copy)` : null;
  if (!stamp) return 'its name claims a sequence number the mirror does not seal (renamed or replayed copy)';
  if (stamp.key !== m.key || stamp.seq !== m.claimedSeq) return `holds mirror ${stamp.key} (sequence ${stamp.seq}) under another name (renamed or replayed copy)`;
  return null;
}

/** Whether the sealed blob at `key` names key `keyId` in its header (bytes 8–15, docs/FORMAT.md). */
async function sealedWithKey(store: ObjectStore, key: string, keyId: string): Promise<boolean> {
  let stream;
  try {
    stream = await store.get(key, { start: 0, end: 31 });
  } catch (err) {
    if (err instanceof NotFoundError) return false; // deleted meanwhile
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const header = Buffer.concat(chunks);
  return header.length >= 16 && header.subarray(8, 16).toString('hex') === keyId;
}

/** Result of `readNewestMirror`: `bytes`/`key` are null when no mirror is usable. */
export type NewestMirror =
  | { bytes: Uint8Array; key: string; seq: number; skipped: SkippedMirror[] }
  | { bytes: null; key: null; seq: null; skipped: SkippedMirror[] };

/** A mirror that could not be used, and why. `refused`: authentic, but a rollback or from the future. */
export interface SkippedMirror {
  key: string;
  reason: string;
  refused?: true;
}

export interface ReadMirrorOptions {
  /** Extra acceptance test on the plaintext (e.g. rebuild's full integrity check); returns a reason to skip, or null. */
  validate?: (bytes: Uint8Array, key: string) => string | null;
  /** The newest sequence this machine has seen: older mirrors are refused as a rollback. */
  lastSeenSeq?: number;
  now?: () => Date;
}

/**
 * The newest mirror, by authenticated sequence, that decrypts, opens as a
 * healthy manifest and whose sealed stamp matches its name; trying newest
 * claim first and skipping half-written, corrupt, foreign, renamed or
 * replayed objects. A mirror older than `lastSeenSeq` (a rolled-back bucket)
 * or dated more than a day ahead is refused (`refused: true` in `skipped`).
 * `bytes` is null when none is usable; `skipped` says why for each.
 * Store failures other than NotFound are thrown, not skipped.
 */
export async function readNewestMirror(store: ObjectStore, keyring: Keyring, opts: ReadMirrorOptions = {}): Promise<NewestMirror> {
  const now = (opts.now ?? (() => new Date()))();
  const skipped: SkippedMirror[] = [];
  const mirrors = await listMirrors(store);
  for (const m of mirrors.reverse()) {
    if (m.size > MAX_MIRROR_BYTES) {
      skipped.push({ key: m.key, reason: `${m.size} bytes, more than any mirror zbk writes (${MAX_MIRROR_BYTES}): not downloaded` });
      continue;
    }
    const e = await examineMirror(store, keyring, m);
    if (e.reason !== null) {
      skipped.push({ key: m.key, reason: e.reason });
      continue;
    }
    const { plain, stamp } = e;
    const seq = stamp?.seq ?? 0;
    if (stamp && stamp.writtenAt.getTime() > now.getTime() + FUTURE_SLACK_MS) {
      skipped.push({ key: m.key, reason: `dated ${stamp.writtenAt.toISOString()}, in the future (a clock set wrong where it was written?)`, refused: true });
      continue;
    }
    if (opts.lastSeenSeq !== undefined && seq < opts.lastSeenSeq) {
      skipped.push({ key: m.key, reason: `sequence ${seq} is older than mirror ${opts.lastSeenSeq}, which this machine has seen: the bucket was rolled back or newer mirrors were deleted`, refused: true });
      continue;
    }
    const problem = opts.validate?.(plain, m.key) ?? null;
    if (problem) {
      skipped.push({ key: m.key, reason: problem });
      continue;
    }
    return { bytes: plain, key: m.key, seq, skipped };
  }
  return { bytes: null, key: null, seq: null, skipped };
}
