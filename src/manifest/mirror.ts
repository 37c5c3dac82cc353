/**
 * Encrypted copies of the manifest in the store (`manifest/<time>-<rand>.zbkm`),
 * so a new machine can rebuild from the bucket. Every mirror goes under a new
 * key (never overwritten); old ones are pruned only after the new one is
 * confirmed, so at every moment at least one complete mirror exists.
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Keyring } from '../crypto/types.js';
import { ManifestError } from '../errors.js';
import { BLOB_MANIFEST, MANIFEST_PREFIX, manifestMirrorKey } from '../layout.js';
import { NotFoundError } from '../store/errors.js';
import type { ObjectStore, StorageClass } from '../store/object-store.js';
import type { Manifest } from './manifest.js';
import { SCHEMA_VERSION, schemaVersion } from './schema.js';

const MIRROR_KEY = /^manifest\/\d{8}T\d{6}Z-[0-9a-f]+\.zbkm$/;

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
}

export interface WriteMirrorResult {
  key: string;
  size: number;
  /** Older mirrors deleted by pruning. */
  pruned: string[];
}

/** Mirror objects in the store, oldest first (keys sort by time). */
export async function listMirrors(store: ObjectStore): Promise<MirrorInfo[]> {
  const out: MirrorInfo[] = [];
  for await (const e of store.list(MANIFEST_PREFIX)) {
    if (MIRROR_KEY.test(e.key)) out.push({ key: e.key, size: e.size, lastModified: e.lastModified });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Seal a compacted copy of `db` and store it under a new mirror key, verify
 * it (HEAD: size), then delete mirrors beyond the newest `keep`. Refuses
 * (MANIFEST_UNHEALTHY) to mirror a manifest failing its integrity check, so a
 * damaged local copy never pushes good mirrors out.
 */
export async function writeMirror(db: Manifest, store: ObjectStore, keyring: Keyring, opts: WriteMirrorOptions): Promise<WriteMirrorResult> {
  const keep = opts.keep ?? 10;
  if (!Number.isInteger(keep) || keep < 1) throw new ManifestError(`mirrors to keep must be at least 1, got ${keep}`, 'BAD_INPUT');
  const check = db.integrityCheck();
  if (!check.ok) {
    throw new ManifestError(`refusing to mirror a manifest that fails its integrity check: ${check.problems.slice(0, 3).join('; ')}`, 'MANIFEST_UNHEALTHY');
  }
  const sealed = keyring.sealBlob(BLOB_MANIFEST, db.compactedCopy());
  const key = manifestMirrorKey((opts.now ?? (() => new Date()))(), randomBytes(6).toString('hex'));
  await store.put(key, sealed, { storageClass: opts.storageClass });
  const info = await store.head(key);
  if (info.size !== sealed.length) {
    throw new ManifestError(`manifest mirror ${key} was stored with ${info.size} bytes, expected ${sealed.length}; older mirrors kept`, 'MIRROR_VERIFY');
  }
  const all = await listMirrors(store);
  // Newest `keep` by key order, and never the one just written (even if a skewed clock sorted it older).
  const kept = new Set(all.slice(-keep).map((m) => m.key));
  kept.add(key);
  const pruned: string[] = [];
  for (const m of all) {
    // Only this key's mirrors: those of a repository replaced by `init --force` (its key
    // file kept aside) stay, since they are all that describes its objects besides the records.
    if (!kept.has(m.key) && (await sealedWithKey(store, m.key, keyring.keyId))) pruned.push(m.key);
  }
  if (pruned.length > 0) await store.deleteMany(pruned);
  return { key, size: sealed.length, pruned };
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

/**
 * Check that `bytes` is a usable manifest database: opens, passes
 * quick_check, and has a schema this zbk knows. Returns a reason or null.
 */
export function manifestBytesProblem(bytes: Uint8Array): string | null {
  if (Buffer.from(bytes.subarray(0, 16)).toString('latin1') !== 'SQLite format 3\0') return 'not an SQLite database';
  let mem: Database.Database | undefined;
  try {
    mem = new Database(Buffer.from(bytes));
    const qc = (mem.pragma('quick_check') as Record<string, unknown>[]).map((r) => String(Object.values(r)[0]));
    if (qc.length !== 1 || qc[0] !== 'ok') return `quick_check: ${qc.slice(0, 2).join('; ')}`;
    const v = schemaVersion(mem);
    if (v > SCHEMA_VERSION) return `written by a newer zbk (schema ${v})`;
    if (v < 1) return 'not a zbk manifest (no schema)';
    return null;
  } catch (err) {
    return `does not open: ${(err as Error).message}`;
  } finally {
    mem?.close();
  }
}

/** Result of `readNewestMirror`: `bytes`/`key` are null when no mirror is usable. */
export type NewestMirror =
  | { bytes: Uint8Array; key: string; skipped: SkippedMirror[] }
  | { bytes: null; key: null; skipped: SkippedMirror[] };

/** A mirror that could not be used, and why. */
export interface SkippedMirror {
  key: string;
  reason: string;
}

/**
 * The newest mirror that decrypts and opens as a healthy manifest, trying
 * newest first and skipping half-written, corrupt or foreign objects.
 * `bytes` is null when none is usable; `skipped` says why for each.
 * Store failures other than NotFound are thrown, not skipped.
 */
export async function readNewestMirror(
  store: ObjectStore,
  keyring: Keyring,
  /** Extra acceptance test on the plaintext (e.g. rebuild's full integrity check); returns a reason to skip, or null. */
  validate?: (bytes: Uint8Array, key: string) => string | null,
): Promise<NewestMirror> {
  const skipped: SkippedMirror[] = [];
  const mirrors = await listMirrors(store);
  for (const m of mirrors.reverse()) {
    let sealed: Uint8Array;
    try {
      sealed = await store.getBytes(m.key);
    } catch (err) {
      // Gone since the listing: skip. Any other store failure is not a
      // property of the mirror: falling back to an older one would silently
      // lose recent state, so let it surface.
      if (err instanceof NotFoundError) {
        skipped.push({ key: m.key, reason: 'deleted while reading' });
        continue;
      }
      throw err;
    }
    let plain: Uint8Array;
    try {
      plain = keyring.openBlob(BLOB_MANIFEST, sealed);
    } catch (err) {
      skipped.push({ key: m.key, reason: `does not decrypt: ${(err as Error).message}` });
      continue;
    }
    const problem = manifestBytesProblem(plain) ?? validate?.(plain, m.key) ?? null;
    if (problem) {
      skipped.push({ key: m.key, reason: problem });
      continue;
    }
    return { bytes: plain, key: m.key, skipped };
  }
  return { bytes: null, key: null, skipped };
}
