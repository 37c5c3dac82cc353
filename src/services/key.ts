/**
 * `zbk key passwd | export | import`: manage the passphrase that wraps the
 * master key, and the paper backup of the master key itself.
 *
 * The master key never changes here, so no data, stream record or mirror
 * needs re-encrypting: only the small key file in the store is rewritten.
 * Because that file is the only way into the repository, every rewrite first
 * keeps the previous version as `zbk.key.prev` (a stray new passphrase, a
 * typo in a script, a half-finished write can then always be undone).
 */
import { existsSync } from 'node:fs';
import { changePassphrase, exportPaperKey, importPaperKey, keyFileKeyId, openKeyFile, weakKdfWarning, type KdfParams } from '../crypto/index.js';
import type { Keyring } from '../crypto/types.js';
import { ConfigError, IntegrityError, KeyFileError, LockedError, UsageError } from '../errors.js';
import { BLOB_MANIFEST, BLOB_STREAM_RECORD, KEY_FILE_KEY, STREAMS_PREFIX, replacedKeyFileKey } from '../layout.js';
import { acquireLock } from '../manifest/lock.js';
import { listMirrors, writeMirror } from '../manifest/mirror.js';
import { NotFoundError } from '../store/errors.js';
import { manifestPath, openManifest, readKeyFile, sodium, type ServiceContext } from './context.js';
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

/** Where the previous key file is kept by `passwd` and `import`. */
export const PREVIOUS_KEY_FILE_KEY = `${KEY_FILE_KEY}.prev`;

export interface KeyPasswdOptions {
  /** Source of the new passphrase (file or prompt asking twice). */
  newPassphrase: PassphraseSource;
  /** Argon2id cost of the new slot. */
  kdf?: KdfParams;
}

export interface KeyWriteResult {
  keyId: string;
  /** Store key of the saved previous key file, or null when there was none. */
  previousKeptAs: string | null;
  /** Mirror written after the change; null when there is no local manifest (warning given). */
  mirror: string | null;
  warnings: string[];
}

/**
 * Store `keyFile` as the key file: previous one saved aside first, the new
 * one read back and opened with `passphrase` before we call it done.
 */
async function replaceKeyFile(ctx: ServiceContext, previous: Uint8Array | null, keyFile: Uint8Array, passphrase: string): Promise<string | null> {
  const storageClass = ctx.config.store.metaStorageClass;
  let kept: string | null = null;
  if (previous) {
    // The previous file of this key (a passphrase change) becomes zbk.key.prev; one of another
    // key id or none (damaged, replaced by key import) is kept under its own name, so it never
    // pushes a good zbk.key.prev out.
    let sameKey = false;
    try {
      sameKey = keyFileKeyId(previous) === keyFileKeyId(keyFile);
    } catch {
      sameKey = false;
    }
    const aside = sameKey ? PREVIOUS_KEY_FILE_KEY : replacedKeyFileKey(ctx.now());
    await ctx.store.put(aside, previous, { storageClass });
    const back = await ctx.store.getBytes(aside);
    if (!Buffer.from(back).equals(Buffer.from(previous))) {
      throw new KeyFileError(`could not keep the previous key file as ${aside} (read-back differs); nothing changed`, 'KEY_WRITE');
    }
    kept = aside;
  }
  // put() is atomic (readers see the old or the new file, never a mix).
  await ctx.store.put(KEY_FILE_KEY, keyFile, { storageClass });
  const stored = await ctx.store.getBytes(KEY_FILE_KEY);
  if (!Buffer.from(stored).equals(Buffer.from(keyFile))) {
    throw new KeyFileError(`the stored key file differs from what was written; the previous one is in ${kept ?? '(none)'}`, 'KEY_WRITE');
  }
  await openKeyFile(await sodium(), stored, passphrase);
  return kept;
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
    lock = await acquireLock(manifestPath(ctx.config), { wait: true, timeoutMs: 30_000, command: 'zbk key' });
  } catch (err) {
    if (!(err instanceof LockedError)) throw err;
    warnings.push('the manifest is busy (another zbk holds it): no mirror written now; the next push writes one');
    return null;
  }
  try {
    const manifest = openManifest(ctx, keyring);
    try {
      manifest.logEvent('key-changed', null, { keyId: keyring.keyId });
      const m = await writeMirror(manifest, ctx.store, keyring, { keep: ctx.config.mirrors, storageClass: ctx.config.store.metaStorageClass, now: ctx.now });
      return m.key;
    } finally {
      manifest.close();
    }
  } catch (err) {
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
async function finishKeyWrite(ctx: ServiceContext, keyring: Keyring, previousKeptAs: string | null, kdf: KdfParams | undefined): Promise<KeyWriteResult> {
  const warnings = [weakKdfWarning(kdf)].filter((w): w is string => w !== null);
  const mirror = await mirrorAfter(ctx, keyring, warnings);
  for (const w of warnings) ctx.log.warn(w);
  return { keyId: keyring.keyId, previousKeptAs, mirror, warnings };
}

/** Rewrap the master key under a new passphrase. */
export async function keyPasswd(ctx: ServiceContext, opts: KeyPasswdOptions): Promise<KeyWriteResult> {
  const so = await sodium();
  const current = await readKeyFile(ctx);
  const oldPass = await ctx.passphrase.get('open');
  // Open first: a wrong old passphrase must fail before we ask for a new one.
  const keyring = await openKeyFile(so, current, oldPass);
  const newPass = await readNewPassphrase(opts.newPassphrase);
  if (newPass === oldPass) throw new UsageError('the new passphrase is the same as the old one', 'SAME_PASSPHRASE');
  const next = await changePassphrase(so, current, oldPass, newPass, opts.kdf ? { params: opts.kdf } : {});
  const previousKeptAs = await replaceKeyFile(ctx, current, next, newPass);
  return finishKeyWrite(ctx, keyring, previousKeptAs, opts.kdf);
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

export interface KeyImportOptions {
  /** The paper key as typed or scanned. */
  paperKey: string;
  /** Argon2id cost of the new slot. */
  kdf?: KdfParams;
}

/**
 * Recreate the key file from a paper key under a new passphrase. A paper key
 * that opens none of the stored stream records and mirrors is refused
 * (KEY_MISMATCH): replacing the key file with it would lock the repository's
 * data away. With no data to tell by, a parsable key file of another key id
 * is not replaced either.
 */
export async function keyImport(ctx: ServiceContext, newPassphrase: PassphraseSource, opts: KeyImportOptions): Promise<KeyWriteResult> {
  const so = await sodium();
  const newPass = await readNewPassphrase(newPassphrase);
  const { keyFile, keyring } = await importPaperKey(so, opts.paperKey, newPass, opts.kdf ? { params: opts.kdf } : {});
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
  const previousKeptAs = await replaceKeyFile(ctx, existing, keyFile, newPass);
  return finishKeyWrite(ctx, keyring, previousKeptAs, opts.kdf);
}
