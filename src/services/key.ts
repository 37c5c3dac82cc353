/**
 * `zbk key passwd | export | import`: manage the passphrase that wraps the
 * master key, and the paper backup of the master key itself.
 *
 * The master key never changes here, so no data, stream record or mirror
 * needs re-encrypting: only the small key file in the store is rewritten.
 * It follows that a passphrase change does not rotate the master key: a
 * copy of the old key file (or a paper key) taken before it still opens
 * everything pushed before and after. Only a new repository (`zbk init
 * --force` to a new prefix, or a new bucket) and a full re-push of every
 * dataset rotates the master key itself.
 *
 * Writing a key file (`writeKeyFile`): the new file goes first to
 * `zbk.key.next`, is read back and opened with the new passphrase (the slot
 * just written: confirmed), then replaces `zbk.key` (put is atomic; read back
 * and compared with the confirmed bytes), then `zbk.key.next` is deleted. A
 * crash before the replace leaves `zbk.key` as it was (it still opens) and a
 * `zbk.key.next` the next write overwrites; readers use `zbk.key` whenever it
 * opens. A store that garbles the replace leaves the confirmed copy in
 * `zbk.key.next`, named in the error.
 *
 * `key passwd` writes no `zbk.key.prev` any more (it kept the file under the
 * old passphrase, so a leaked old passphrase still opened the repository):
 * after it, the old passphrase opens nothing of this key kept in the store.
 * It deletes `zbk.key.prev` (written by older zbk) and every
 * `zbk.key.replaced-<time>` of this key id (same master key under some older
 * passphrase) once the new file is confirmed in `zbk.key.next`, before
 * `zbk.key` is replaced, so at no point does a store hold the new file in
 * `zbk.key` and the old passphrase's file elsewhere. Kept files of other key
 * ids (other repositories whose objects remain) are left alone.
 *
 * `key import` over a key file of the same key id adds a slot for the new
 * passphrase (the other slots, other machines' passphrases, keep working);
 * a full file (16 slots) is refused (KEY_FILE_WORKS, exit 2) unless
 * `--force`, which replaces it with a one-slot file and keeps the old one as
 * `zbk.key.replaced-<time>`.
 *
 * Crash points (ZBK_CRASH_AT, tests): `key-next-confirmed` (zbk.key.next
 * written and opened, nothing else changed), `key-file-replaced` (zbk.key
 * replaced, zbk.key.next not yet deleted).
 */
import { existsSync } from 'node:fs';
import {
  changePassphraseSlot, exportPaperKey, importPaperKey, keyFileKeyId, MAX_SLOTS, openKeyFile, paperKeyId, slotIds, weakKdfWarning, type KdfParams,
} from '../crypto/index.js';
import type { Keyring } from '../crypto/types.js';
import { ConfigError, IntegrityError, KeyFileError, LockedError, UsageError } from '../errors.js';
import { BLOB_MANIFEST, BLOB_STREAM_RECORD, KEY_FILE_KEY, STREAMS_PREFIX, replacedKeyFileKey } from '../layout.js';
import { listMirrors, manifestBehindStore, writeMirror } from '../manifest/mirror.js';
import { NotFoundError } from '../store/errors.js';
import { lockManifest, manifestPath, openManifest, readKeyFile, sodium, type ServiceContext } from './context.js';
import { crashPoint } from './crash-point.js';
import { LeaseHeldError } from './lease/writer-lease.js';
import { underWriterLease } from './lease/with-lease.js';
import { assertKdfAllowed, checkNewPassphrase } from './key-policy.js';
import { newPassphrase as readNewPassphrase, readPassphraseFile, type PassphrasePrompt, type PassphraseSource } from './passphrase.js';

/**
 * Source of a NEW passphrase: an explicit file (never ZBK_PASSPHRASE_FILE,
 * which holds the current one), else the prompt (asks twice).
 */
export function newPassphraseSource(file: string | undefined, prompt?: PassphrasePrompt): PassphraseSource {
  return {
    describe: () => (file ? `file ${file}` : prompt ? 'terminal prompt' : 'none'),
    get: async () => {
      if (file) return readPassphraseFile(file);
      if (prompt) return prompt('new');
      throw new ConfigError('no new passphrase: pass --new-passphrase-file or run in a terminal', 'NO_PASSPHRASE');
    },
  };
}

/** The key file under the previous passphrase, written by `passwd` before this version; deleted by the next `passwd`. */
export const PREVIOUS_KEY_FILE_KEY = `${KEY_FILE_KEY}.prev`;
/** A new key file, confirmed here before it replaces `zbk.key`; deleted right after. */
export const NEXT_KEY_FILE_KEY = `${KEY_FILE_KEY}.next`;

/** What `passwd` and `import` take besides the new passphrase. */
interface NewSlotOptions {
  /** Argon2id cost of the new slot (`min` only with ZBK_TEST_ALLOW_WEAK_KDF=1). */
  kdf?: KdfParams;
  /** Accept a passphrase the estimator scores below 3 (with a warning). */
  allowWeakPassphrase?: boolean;
}

export interface KeyPasswdOptions extends NewSlotOptions {
  /** Source of the new passphrase (file or prompt asking twice). */
  newPassphrase: PassphraseSource;
}

export interface KeyWriteResult {
  keyId: string;
  /** Store key where the replaced key file was kept (`key import --force`, or over a damaged / foreign one), else null. */
  previousKeptAs: string | null;
  /** `key import` onto a working key file of the same key: the id of the slot added; else null. */
  slotAdded: string | null;
  /** Key files of this key under other passphrases deleted from the store (`key passwd`). */
  removed: string[];
  /** Mirror written after the change; null when there is no local manifest (warning given). */
  mirror: string | null;
  warnings: string[];
}

/** Read a new passphrase and check its strength; returns it and the warning to give, if any. */
async function strongNewPassphrase(ctx: ServiceContext, source: PassphraseSource, opts: NewSlotOptions): Promise<{ pass: string; warning: string | null }> {
  const pass = await readNewPassphrase(source);
  const warning = await checkNewPassphrase(pass, { allowWeak: opts.allowWeakPassphrase, context: [ctx.store.url] });
  return { pass, warning };
}

/** Put `bytes` at `key` and read them back (KEY_WRITE, `what` saying what it means, when they differ). */
async function putConfirmed(ctx: ServiceContext, key: string, bytes: Uint8Array, what: string): Promise<Uint8Array> {
  await ctx.store.put(key, bytes, { storageClass: ctx.config.store.metaStorageClass });
  const back = await ctx.store.getBytes(key);
  if (!Buffer.from(back).equals(Buffer.from(bytes))) throw new KeyFileError(`${what} (read-back of ${key} differs)`, 'KEY_WRITE');
  return back;
}

/**
 * Store `keyFile` as `zbk.key` (module comment: via `zbk.key.next`,
 * confirmed by opening its slot `slotId` with `passphrase`). `keepAside`:
 * the file it replaces, stored (and read back) under its own name first.
 * `beforeReplace` runs once the new file is confirmed, before `zbk.key`
 * changes.
 */
async function writeKeyFile(
  ctx: ServiceContext,
  keyFile: Uint8Array,
  confirm: { passphrase: string; slotId: string },
  keepAside: { key: string; bytes: Uint8Array } | null,
  beforeReplace: () => Promise<void> = async () => {},
): Promise<void> {
  if (keepAside) await putConfirmed(ctx, keepAside.key, keepAside.bytes, `could not keep the previous key file as ${keepAside.key}; nothing changed`);
  const staged = await putConfirmed(ctx, NEXT_KEY_FILE_KEY, keyFile, 'could not store the new key file; zbk.key is unchanged');
  // Confirmed: the bytes as the store returns them open with the new passphrase (its slot only: one Argon2id run).
  await openKeyFile(await sodium(), staged, confirm.passphrase, { slotId: confirm.slotId });
  crashPoint('key-next-confirmed');
  await beforeReplace();
  // put() is atomic: readers see the old or the new file, never a mix.
  await putConfirmed(ctx, KEY_FILE_KEY, keyFile, `the stored key file differs from what was written; the confirmed new one is kept as ${NEXT_KEY_FILE_KEY}`);
  crashPoint('key-file-replaced');
  await ctx.store.deleteMany([NEXT_KEY_FILE_KEY]);
}

/**
 * Kept key files of key `keyId` (`zbk.key.prev`, `zbk.key.replaced-*` of
 * this key id): the same master key under other, older passphrases. Files
 * that do not parse, or of another key id, are not this key's to delete.
 */
async function keptFilesOfKey(ctx: ServiceContext, keyId: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of ctx.store.list(`${KEY_FILE_KEY}.`)) {
    if (e.key === NEXT_KEY_FILE_KEY) continue; // the confirmed new file itself
    if (e.key !== PREVIOUS_KEY_FILE_KEY && !e.key.startsWith(`${KEY_FILE_KEY}.replaced-`)) continue;
    let id: string | null;
    try {
      id = keyFileKeyId(await ctx.store.getBytes(e.key));
    } catch (err) {
      if (err instanceof KeyFileError || err instanceof NotFoundError) id = null;
      else throw err;
    }
    if (id === keyId) found.push(e.key);
  }
  return found;
}

/** Mirror the manifest (so the bucket's newest mirror follows the key change). */
async function mirrorAfter(ctx: ServiceContext, keyring: Keyring, warnings: string[]): Promise<string | null> {
  if (!existsSync(manifestPath(ctx.config))) {
    warnings.push('no local manifest on this machine: no mirror written');
    return null;
  }
  // The key change is already complete: never hang on (or fail for) a push holding the lock.
  let lock;
  try {
    lock = await lockManifest(ctx.config, { wait: true, timeoutMs: 30_000, command: 'zbk key' });
  } catch (err) {
    if (!(err instanceof LockedError)) throw err;
    warnings.push('the manifest is busy (another zbk holds it): no mirror written now; the next push writes one');
    return null;
  }
  try {
    const manifest = openManifest(ctx, keyring);
    try {
      manifest.logEvent('key-changed', null, { keyId: keyring.keyId });
      // A mirror from a manifest behind the store would know less than the newest one; and only the
      // holder of the writer lease writes (never wait for a push here).
      const stale = await manifestBehindStore(ctx.store, keyring, manifest);
      if (stale) {
        warnings.push(`no mirror written: ${stale.message}`);
        return null;
      }
      return await underWriterLease(
        ctx,
        keyring,
        'zbk key',
        async (leased) => (await writeMirror(manifest, leased.store, keyring, { keep: ctx.config.mirrors, storageClass: ctx.config.store.metaStorageClass, now: ctx.now })).key,
        { wait: false },
      );
    } finally {
      manifest.close();
    }
  } catch (err) {
    if (err instanceof LeaseHeldError) {
      warnings.push('another writer holds the writer lease: no mirror written now; the next push writes one');
      return null;
    }
    // The key change itself is complete; a missing mirror is caught up by the next push.
    warnings.push(`could not write the manifest mirror: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  } finally {
    lock.release();
  }
}

/**
 * Whether `keyring` opens the repository's data: 'yes' when one of the first
 * stream records or newest mirrors authenticates under it, 'no' when there
 * are some and none of those tried does, 'empty' when the store holds none.
 * Small GETs of instantly readable metadata only.
 */
async function opensStoreData(ctx: ServiceContext, keyring: Keyring): Promise<'yes' | 'no' | 'empty'> {
  const records: string[] = [];
  for await (const e of ctx.store.list(STREAMS_PREFIX)) if (records.push(e.key) >= 3) break;
  const mirrors = (await listMirrors(ctx.store)).slice(-2).map((m) => m.key);
  const tries: [string, string][] = [...records.map((k): [string, string] => [k, BLOB_STREAM_RECORD]), ...mirrors.map((k): [string, string] => [k, BLOB_MANIFEST])];
  for (const [key, kind] of tries) {
    const bytes = await ctx.store.getBytes(key); // store errors are the caller's to see
    try {
      keyring.openBlob(kind, bytes);
      return 'yes';
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err; // another key, or damaged: try the next one
    }
  }
  return tries.length === 0 ? 'empty' : 'no';
}

/** After a new key file is stored: mirror the manifest, and say what needs saying. */
async function finishKeyWrite(
  ctx: ServiceContext,
  keyring: Keyring,
  done: Pick<KeyWriteResult, 'previousKeptAs' | 'slotAdded' | 'removed'>,
  kdf: KdfParams | undefined,
  passphraseWarning: string | null,
): Promise<KeyWriteResult> {
  const warnings = [weakKdfWarning(kdf), passphraseWarning].filter((w): w is string => w !== null);
  const mirror = await mirrorAfter(ctx, keyring, warnings);
  for (const w of warnings) ctx.log.warn(w);
  return { keyId: keyring.keyId, ...done, mirror, warnings };
}

/**
 * Rewrap the master key under a new passphrase: the slot the old passphrase
 * opened is replaced (other slots untouched); afterwards the old passphrase
 * opens no key file of this key in the store (module comment).
 */
export async function keyPasswd(ctx: ServiceContext, opts: KeyPasswdOptions): Promise<KeyWriteResult> {
  assertKdfAllowed(opts.kdf);
  const so = await sodium();
  const current = await readKeyFile(ctx);
  const oldPass = await ctx.passphrase.get('open');
  // Open first: a wrong old passphrase must fail before we ask for a new one.
  const keyring = await openKeyFile(so, current, oldPass);
  const { pass: newPass, warning } = await strongNewPassphrase(ctx, opts.newPassphrase, opts);
  if (newPass === oldPass) throw new UsageError('the new passphrase is the same as the old one', 'SAME_PASSPHRASE');
  const next = await changePassphraseSlot(so, current, oldPass, newPass, opts.kdf ? { params: opts.kdf } : {});
  let removed: string[] = [];
  await writeKeyFile(ctx, next.keyFile, { passphrase: newPass, slotId: next.slotId }, null, async () => {
    removed = await keptFilesOfKey(ctx, keyring.keyId);
    if (removed.length) await ctx.store.deleteMany(removed);
  });
  return finishKeyWrite(ctx, keyring, { previousKeptAs: null, slotAdded: null, removed }, opts.kdf, warning);
}

export interface KeyExportResult {
  keyId: string;
  /** The paper key text. A secret: anyone holding it can read every backup. */
  paperKey: string;
}

/** Printable paper backup of the master key. */
export async function keyExport(ctx: ServiceContext): Promise<KeyExportResult> {
  const keyFile = await readKeyFile(ctx);
  const paperKey = await exportPaperKey(await sodium(), keyFile, await ctx.passphrase.get('open'));
  return { keyId: keyFileKeyId(keyFile), paperKey };
}

export interface KeyImportOptions extends NewSlotOptions {
  /** The paper key as typed or scanned. */
  paperKey: string;
  /**
   * Replace a key file of this key that still parses with a one-slot file
   * (the other machines' passphrases stop working; the old file is kept as
   * `zbk.key.replaced-<time>`) instead of adding a slot to it.
   */
  force?: boolean;
}

/**
 * Recreate the key file from a paper key under a new passphrase.
 *
 * - The store's key file is of this key and parses: a slot for the new
 *   passphrase is added to it (other slots, other machines, keep working;
 *   nothing is kept aside, nothing is lost). It is never silently replaced:
 *   with all 16 slots taken that is KEY_FILE_WORKS (exit 2) unless `force`,
 *   which replaces it, kept as `zbk.key.replaced-<time>`.
 * - Missing, unparsable, or of another key id: replaced by a one-slot file
 *   (a replaced one kept as `zbk.key.replaced-<time>`). A paper key that
 *   opens none of the stored stream records and mirrors is refused
 *   (KEY_MISMATCH): replacing the key file with it would lock the
 *   repository's data away. With no data to tell by, a parsable key file of
 *   another key id is not replaced either.
 */
export async function keyImport(ctx: ServiceContext, newPassphrase: PassphraseSource, opts: KeyImportOptions): Promise<KeyWriteResult> {
  assertKdfAllowed(opts.kdf);
  const so = await sodium();
  const paperId = paperKeyId(so, opts.paperKey); // a typo is reported before anything else is asked
  let existing: Uint8Array | null = null;
  try {
    existing = await ctx.store.getBytes(KEY_FILE_KEY);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  let existingId: string | null = null;
  if (existing) {
    try {
      existingId = keyFileKeyId(existing);
    } catch {
      existingId = null; // unparsable: replacing it is exactly what import is for
    }
  }
  const addSlot = existing !== null && existingId === paperId && !opts.force;
  if (addSlot && slotIds(existing!).length >= MAX_SLOTS) {
    throw new UsageError(
      `the store's key file (key ${paperId}) is intact and has ${MAX_SLOTS} slots, the most it may have, so no slot can be added: change a passphrase with "zbk key passwd", or pass --force to replace the key file (other machines' passphrases stop working; the old file is kept as zbk.key.replaced-<time>)`,
      'KEY_FILE_WORKS',
    );
  }
  const { pass: newPass, warning } = await strongNewPassphrase(ctx, newPassphrase, opts);
  const slotOpts = opts.kdf ? { params: opts.kdf } : {};
  const { keyFile, keyring, slotId } = await importPaperKey(so, opts.paperKey, newPass, addSlot ? { ...slotOpts, addTo: existing! } : slotOpts);
  // A key file of another key id may be this repository's, damaged (a flipped bit in its
  // keyId opens nothing); the stored data tells, authenticated: a paper key that opens a
  // stream record or a mirror is this repository's, one that opens none of them is not.
  if (existingId !== keyring.keyId) {
    const opens = await opensStoreData(ctx, keyring);
    if (opens === 'no') {
      throw new ConfigError(`the paper key (key ${keyring.keyId}) opens none of the stream records and manifest mirrors in the store: it is not this repository's; nothing was changed`, 'KEY_MISMATCH');
    }
    if (opens === 'empty' && existingId !== null) {
      throw new ConfigError(
        `the store holds the key file of another master key (${existingId}, paper key ${keyring.keyId}) and no data to tell which is right: refusing to replace it`,
        'KEY_MISMATCH',
      );
    }
  }
  const aside = existing && !addSlot ? { key: replacedKeyFileKey(ctx.now()), bytes: existing } : null;
  await writeKeyFile(ctx, keyFile, { passphrase: newPass, slotId }, aside);
  return finishKeyWrite(ctx, keyring, { previousKeptAs: aside?.key ?? null, slotAdded: addSlot ? slotId : null, removed: [] }, opts.kdf, warning);
}
