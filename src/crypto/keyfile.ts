/**
 * The key file (`zbk.key`): a random master key wrapped under one or more
 * passphrases (slots). Layout and rules: docs/FORMAT.md "Key file".
 *
 * Each slot: KEK = Argon2id13(NFC(passphrase), salt, opslimit, memlimit);
 * wrappedKey = XChaCha20-Poly1305(KEK, nonce, ad, masterKey) with
 * ad = "zbk-keyfile" ‖ 0x00 ‖ u32le(version) ‖ slotId ‖ 0x00 ‖ keyId.
 */
import { KeyFileError, UsageError, WrongPassphraseError } from '../errors.js';
import { concat, fromBase64, fromUtf8, toBase64, toHex, u32le, utf8 } from './bytes.js';
import { keyIdOf, MASTER_KEY_BYTES, ZbkKeyring } from './keyring.js';
import { decodePaperKey, encodePaperKey } from './paper.js';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, PWHASH_LIMITS, PWHASH_SALT_BYTES, type SodiumBackend } from './sodium.js';
import type { Keyring } from './types.js';


/** Passphrase slots a key file may hold (each one is an Argon2id run when opening it). */
export const MAX_SLOTS = 16;
export const KEY_FILE_FORMAT = 'zbk-keyfile';
export const KEY_FILE_VERSION = 1;
/**
 * Reader caps on a slot's Argon2id cost: the most `--kdf` writes (its
 * strongest setting, `moderate` = libsodium MODERATE: 3 passes over
 * 256 MiB, about a second on a current CPU). A key file comes from the
 * store, which zbk does not trust: a slot asking for more (opslimit 1000,
 * memlimit 8 GiB) is KEY_FILE_CORRUPT when the file is parsed, before any
 * Argon2id runs, so the worst a hostile key file can cost one open is
 * MAX_SLOTS moderate runs (16 × ~1 s, 256 MiB at a time), never minutes
 * or gigabytes. Raising these needs a new `--kdf` setting and a FORMAT.md
 * change: older readers would refuse such files.
 */
export const MAX_OPSLIMIT = PWHASH_LIMITS.moderate.opslimit;
export const MAX_MEMLIMIT = PWHASH_LIMITS.moderate.memlimit;

/** Argon2id cost: a preset name or explicit values. */
export type KdfParams = 'moderate' | 'interactive' | 'min' | { opslimit: number; memlimit: number };

/** A warning for KDF settings meant for tests (cheap to brute-force from a copy of the bucket), else null. */
export function weakKdfWarning(params: KdfParams | undefined): string | null {
  return params === 'min'
    ? 'the key slot was made with --kdf min (1 Argon2id pass over 8 KiB), meant for tests: anyone with a copy of the bucket can try passphrases cheaply; use the default (moderate) for real data'
    : null;
}

/**
 * True for Argon2id costs meant for tests only (`min`, or explicit values
 * below libsodium INTERACTIVE): a copy of the bucket could be brute-forced
 * cheaply. The services refuse them unless ZBK_TEST_ALLOW_WEAK_KDF=1.
 */
export function isTestOnlyKdf(params: KdfParams | undefined): boolean {
  if (params === 'min') return true;
  if (params === undefined || typeof params === 'string') return false;
  return params.opslimit < PWHASH_LIMITS.interactive.opslimit || params.memlimit < PWHASH_LIMITS.interactive.memlimit;
}

/** Options for operations that write a slot. */
export interface SlotOptions {
  /** Argon2id cost of the new slot. Default `moderate` (libsodium MODERATE: 3 passes, 256 MiB). */
  params?: KdfParams;
}

interface Slot {
  id: string;
  kdf: { alg: 'argon2id13'; opslimit: number; memlimit: number; salt: string };
  nonce: string;
  wrappedKey: string;
}

interface KeyFileJson {
  format: typeof KEY_FILE_FORMAT;
  version: typeof KEY_FILE_VERSION;
  keyId: string;
  slots: Slot[];
}

function resolveParams(p: KdfParams | undefined): { opslimit: number; memlimit: number } {
  if (p === undefined || p === 'moderate') return { ...PWHASH_LIMITS.moderate };
  if (p === 'interactive') return { ...PWHASH_LIMITS.interactive };
  if (p === 'min') return { opslimit: PWHASH_LIMITS.opslimitMin, memlimit: PWHASH_LIMITS.memlimitMin };
  if (!validCost(p.opslimit, p.memlimit)) {
    throw new UsageError(`Argon2id cost out of range (${COST_RANGE})`, 'KDF_PARAMS');
  }
  return { opslimit: p.opslimit, memlimit: p.memlimit };
}

const COST_RANGE = `opslimit ${PWHASH_LIMITS.opslimitMin}–${MAX_OPSLIMIT}, memlimit ${PWHASH_LIMITS.memlimitMin}–${MAX_MEMLIMIT} bytes (8 KiB–256 MiB)`;

function validCost(ops: unknown, mem: unknown): boolean {
  return (
    Number.isSafeInteger(ops) && (ops as number) >= PWHASH_LIMITS.opslimitMin && (ops as number) <= MAX_OPSLIMIT &&
    Number.isSafeInteger(mem) && (mem as number) >= PWHASH_LIMITS.memlimitMin && (mem as number) <= MAX_MEMLIMIT
  );
}

/** Passphrases are NFC-normalised so the same words typed on another OS still open the file. */
function passphraseBytes(p: string): Uint8Array {
  if (typeof p !== 'string' || p.length === 0) throw new UsageError('the passphrase must not be empty', 'PASSPHRASE_EMPTY');
  return utf8(p.normalize('NFC'));
}

function slotAd(slotId: string, keyId: string): Uint8Array {
  return concat(utf8(KEY_FILE_FORMAT), new Uint8Array([0]), u32le(KEY_FILE_VERSION), utf8(slotId), new Uint8Array([0]), utf8(keyId));
}

async function deriveKek(sodium: SodiumBackend, pass: string, salt: Uint8Array, ops: number, mem: number): Promise<Uint8Array> {
  const pw = passphraseBytes(pass);
  const kek = new Uint8Array(32);
  try {
    await sodium.pwhashArgon2id(kek, pw, salt, ops, mem);
  } finally {
    sodium.memzero(pw);
  }
  return kek;
}

async function makeSlot(
  sodium: SodiumBackend, masterKey: Uint8Array, keyId: string, pass: string, params: KdfParams | undefined, id?: string,
): Promise<Slot> {
  const { opslimit, memlimit } = resolveParams(params);
  const salt = new Uint8Array(PWHASH_SALT_BYTES);
  const nonce = new Uint8Array(AEAD_NONCE_BYTES);
  sodium.randomBytes(salt);
  sodium.randomBytes(nonce);
  let slotId = id;
  if (!slotId) {
    const r = new Uint8Array(4);
    sodium.randomBytes(r);
    slotId = toHex(r);
  }
  const kek = await deriveKek(sodium, pass, salt, opslimit, memlimit);
  const wrapped = new Uint8Array(MASTER_KEY_BYTES + AEAD_TAG_BYTES);
  sodium.aeadEncrypt(wrapped, masterKey, slotAd(slotId, keyId), nonce, kek);
  sodium.memzero(kek);
  return {
    id: slotId,
    kdf: { alg: 'argon2id13', opslimit, memlimit, salt: toBase64(salt) },
    nonce: toBase64(nonce),
    wrappedKey: toBase64(wrapped),
  };
}

function serialise(f: KeyFileJson): Uint8Array {
  return utf8(JSON.stringify(f, null, 2) + '\n');
}

function corrupt(why: string): KeyFileError {
  return new KeyFileError(`key file is corrupt: ${why}`, 'KEY_FILE_CORRUPT');
}

/** Parse and validate every field. Throws KeyFileError('KEY_FILE_CORRUPT'). */
function parseKeyFile(bytes: Uint8Array): KeyFileJson {
  let v: unknown;
  try {
    v = JSON.parse(fromUtf8(bytes));
  } catch {
    throw corrupt('not valid UTF-8 JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.format !== KEY_FILE_FORMAT) throw corrupt(`"format" is not "${KEY_FILE_FORMAT}" (not a zbk key file)`);
  if (o.version !== KEY_FILE_VERSION) {
    throw new KeyFileError(
      `key file version ${JSON.stringify(o.version)} is not supported: this zbk reads version ${KEY_FILE_VERSION} (upgrade zbk if the file is newer)`,
      'KEY_FILE_CORRUPT',
    );
  }
  if (typeof o.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(o.keyId)) throw corrupt('"keyId" is not 16 hex characters');
  if (!Array.isArray(o.slots) || o.slots.length === 0) throw corrupt('no key slots');
  // Every slot costs an Argon2id run on open: a tampered file with many slots would otherwise hang it.
  if (o.slots.length > MAX_SLOTS) throw corrupt(`${o.slots.length} key slots (at most ${MAX_SLOTS})`);
  const ids = new Set<string>();
  const slots = o.slots.map((s: unknown, i: number): Slot => {
    const bad = (what: string): KeyFileError => corrupt(`slot ${i}: ${what}`);
    if (typeof s !== 'object' || s === null) throw bad('not an object');
    const r = s as Record<string, unknown>;
    if (typeof r.id !== 'string' || !/^[0-9a-f]{8}$/.test(r.id) || ids.has(r.id)) throw bad('missing or duplicate id');
    ids.add(r.id);
    const k = r.kdf as Record<string, unknown> | null;
    if (typeof k !== 'object' || k === null || k.alg !== 'argon2id13') throw bad('kdf is not argon2id13');
    // Checked for every slot before any slot is tried: a costly slot is refused unrun.
    if (!validCost(k.opslimit, k.memlimit)) throw bad(`Argon2id cost out of range (readers accept ${COST_RANGE}, the most zbk writes)`);
    if (typeof k.salt !== 'string' || fromBase64(k.salt)?.length !== PWHASH_SALT_BYTES) throw bad('bad salt');
    if (typeof r.nonce !== 'string' || fromBase64(r.nonce)?.length !== AEAD_NONCE_BYTES) throw bad('bad nonce');
    if (typeof r.wrappedKey !== 'string' || fromBase64(r.wrappedKey)?.length !== MASTER_KEY_BYTES + AEAD_TAG_BYTES) {
      throw bad('bad wrapped key');
    }
    return {
      id: r.id,
      kdf: { alg: 'argon2id13', opslimit: k.opslimit as number, memlimit: k.memlimit as number, salt: k.salt },
      nonce: r.nonce,
      wrappedKey: r.wrappedKey,
    };
  });
  return { format: KEY_FILE_FORMAT, version: KEY_FILE_VERSION, keyId: o.keyId, slots };
}

/**
 * Try every slot (or only the slot `onlySlot`); returns the master key and
 * the index of the slot that opened.
 */
async function unlock(sodium: SodiumBackend, f: KeyFileJson, pass: string, onlySlot?: string): Promise<{ masterKey: Uint8Array; slot: number }> {
  for (let i = 0; i < f.slots.length; i++) {
    const s = f.slots[i]!;
    if (onlySlot !== undefined && s.id !== onlySlot) continue;
    const kek = await deriveKek(sodium, pass, fromBase64(s.kdf.salt)!, s.kdf.opslimit, s.kdf.memlimit);
    const mk = new Uint8Array(MASTER_KEY_BYTES);
    const ok = sodium.aeadDecrypt(mk, fromBase64(s.wrappedKey)!, slotAd(s.id, f.keyId), fromBase64(s.nonce)!, kek);
    sodium.memzero(kek);
    if (ok) {
      if (toHex(keyIdOf(sodium, mk)) !== f.keyId) {
        sodium.memzero(mk);
        throw corrupt('the unwrapped key does not match "keyId"');
      }
      return { masterKey: mk, slot: i };
    }
  }
  throw new WrongPassphraseError(
    onlySlot !== undefined
      ? `wrong passphrase: it does not open key slot ${onlySlot} (or the key file is damaged)`
      : `wrong passphrase: it opens none of the key file's ${f.slots.length} slot(s) (or the key file is damaged)`,
  );
}

/** Create a new master key and a key file with one passphrase slot. */
export async function createKeyFile(
  sodium: SodiumBackend,
  passphrase: string,
  opts: SlotOptions = {},
): Promise<{ keyFile: Uint8Array; keyring: Keyring; masterKey: Uint8Array }> {
  const masterKey = new Uint8Array(MASTER_KEY_BYTES);
  sodium.randomBytes(masterKey);
  return { ...(await keyFileForMasterKey(sodium, masterKey, passphrase, opts)), masterKey };
}

async function keyFileForMasterKey(
  sodium: SodiumBackend, masterKey: Uint8Array, passphrase: string, opts: SlotOptions,
): Promise<{ keyFile: Uint8Array; keyring: ZbkKeyring }> {
  const keyId = toHex(keyIdOf(sodium, masterKey));
  const slot = await makeSlot(sodium, masterKey, keyId, passphrase, opts.params);
  const keyFile = serialise({ format: KEY_FILE_FORMAT, version: KEY_FILE_VERSION, keyId, slots: [slot] });
  return { keyFile, keyring: new ZbkKeyring(sodium, masterKey) };
}

/**
 * Open a key file. WrongPassphraseError if no slot opens;
 * KeyFileError('KEY_FILE_CORRUPT') if the file is malformed or of an unknown version.
 */
export async function openKeyFile(sodium: SodiumBackend, keyFile: Uint8Array, passphrase: string, opts: { slotId?: string } = {}): Promise<Keyring> {
  const { masterKey } = await unlock(sodium, parseKeyFile(keyFile), passphrase, opts.slotId);
  try {
    return new ZbkKeyring(sodium, masterKey);
  } finally {
    sodium.memzero(masterKey);
  }
}

/** The key id recorded in a key file, without a passphrase (for diagnostics). */
export function keyFileKeyId(keyFile: Uint8Array): string {
  return parseKeyFile(keyFile).keyId;
}

/** Rewrap the master key under `newPass`, replacing the slot `oldPass` opened. Data is untouched. */
export async function changePassphrase(
  sodium: SodiumBackend, keyFile: Uint8Array, oldPass: string, newPass: string, opts: SlotOptions = {},
): Promise<Uint8Array> {
  return (await changePassphraseSlot(sodium, keyFile, oldPass, newPass, opts)).keyFile;
}

/** `changePassphrase`, also naming the slot rewritten (it keeps its id). */
export async function changePassphraseSlot(
  sodium: SodiumBackend, keyFile: Uint8Array, oldPass: string, newPass: string, opts: SlotOptions = {},
): Promise<{ keyFile: Uint8Array; slotId: string }> {
  const f = parseKeyFile(keyFile);
  const { masterKey, slot } = await unlock(sodium, f, oldPass);
  try {
    const slots = f.slots.slice();
    const slotId = f.slots[slot]!.id;
    slots[slot] = await makeSlot(sodium, masterKey, f.keyId, newPass, opts.params, slotId);
    return { keyFile: serialise({ ...f, slots }), slotId };
  } finally {
    sodium.memzero(masterKey);
  }
}

/** `f` plus a new slot wrapping `masterKey` (which must be `f`'s key) under `newPass`. */
async function appendSlot(
  sodium: SodiumBackend, f: KeyFileJson, masterKey: Uint8Array, newPass: string, params: KdfParams | undefined,
): Promise<{ keyFile: Uint8Array; slotId: string }> {
  if (f.slots.length >= MAX_SLOTS) throw new UsageError(`the key file already has ${MAX_SLOTS} slots, the most it may have: remove one first`, 'TOO_MANY_SLOTS');
  let slot: Slot;
  do slot = await makeSlot(sodium, masterKey, f.keyId, newPass, params);
  while (f.slots.some((s) => s.id === slot.id));
  return { keyFile: serialise({ ...f, slots: [...f.slots, slot] }), slotId: slot.id };
}

/** Add another passphrase slot (e.g. a second person's). Returns the new file and the new slot's id. */
export async function addPassphraseSlot(
  sodium: SodiumBackend, keyFile: Uint8Array, existingPass: string, newPass: string, opts: SlotOptions = {},
): Promise<{ keyFile: Uint8Array; slotId: string }> {
  const f = parseKeyFile(keyFile);
  if (f.slots.length >= MAX_SLOTS) throw new UsageError(`the key file already has ${MAX_SLOTS} slots, the most it may have: remove one first`, 'TOO_MANY_SLOTS');
  const { masterKey } = await unlock(sodium, f, existingPass);
  try {
    return await appendSlot(sodium, f, masterKey, newPass, opts.params);
  } finally {
    sodium.memzero(masterKey);
  }
}

/** Remove slot `slotId`. Requires a passphrase that opens the file; refuses to remove the last slot. */
export async function removeSlot(sodium: SodiumBackend, keyFile: Uint8Array, passphrase: string, slotId: string): Promise<Uint8Array> {
  const f = parseKeyFile(keyFile);
  const { masterKey } = await unlock(sodium, f, passphrase);
  sodium.memzero(masterKey);
  const slots = f.slots.filter((s) => s.id !== slotId);
  if (slots.length === f.slots.length) throw new UsageError(`no key slot with id ${slotId}`, 'NO_SUCH_SLOT');
  if (slots.length === 0) throw new UsageError('refusing to remove the last key slot: the data would be unrecoverable', 'LAST_SLOT');
  return serialise({ ...f, slots });
}

/** The slot ids of a key file, in order (no secrets). */
export function slotIds(keyFile: Uint8Array): string[] {
  return parseKeyFile(keyFile).slots.map((s) => s.id);
}

/** List slot ids and costs (no secrets). */
export function listSlots(keyFile: Uint8Array): { id: string; opslimit: number; memlimit: number }[] {
  return parseKeyFile(keyFile).slots.map((s) => ({ id: s.id, opslimit: s.kdf.opslimit, memlimit: s.kdf.memlimit }));
}

/** Printable paper backup of the master key (see paper.ts). Anyone holding it can read the backups. */
export async function exportPaperKey(sodium: SodiumBackend, keyFile: Uint8Array, passphrase: string): Promise<string> {
  const f = parseKeyFile(keyFile);
  const { masterKey } = await unlock(sodium, f, passphrase);
  try {
    return encodePaperKey(sodium, masterKey, f.keyId);
  } finally {
    sodium.memzero(masterKey);
  }
}

/** Decode a paper key and check its "key id" line against the key its lines give. */
function readPaperKey(sodium: SodiumBackend, text: string): { masterKey: Uint8Array; keyId: string } {
  const { masterKey, keyId } = decodePaperKey(sodium, text);
  const actual = toHex(keyIdOf(sodium, masterKey));
  if (keyId !== null && keyId !== actual) {
    sodium.memzero(masterKey);
    throw new KeyFileError(
      `paper key lines give key id ${actual} but its "key id" line says ${keyId}: re-check the key id line`,
      'PAPER_KEY_CHECKSUM',
    );
  }
  return { masterKey, keyId: actual };
}

/** The key id of the master key on a paper key (typos reported by line, as by importPaperKey). */
export function paperKeyId(sodium: SodiumBackend, text: string): string {
  const { masterKey, keyId } = readPaperKey(sodium, text);
  sodium.memzero(masterKey);
  return keyId;
}

/**
 * Rebuild a key file from a paper key under a new passphrase. Typos are
 * reported by line (KeyFileError 'PAPER_KEY_CHECKSUM').
 *
 * With `addTo` (a key file of the same key id), the result is that file with
 * one more slot for the new passphrase: its other slots (other machines'
 * passphrases) keep working. A file of another key id is KEY_MISMATCH; a
 * full one TOO_MANY_SLOTS.
 */
export async function importPaperKey(
  sodium: SodiumBackend, text: string, newPassphrase: string, opts: SlotOptions & { addTo?: Uint8Array } = {},
): Promise<{ keyFile: Uint8Array; keyring: Keyring; slotId: string }> {
  const into = opts.addTo ? parseKeyFile(opts.addTo) : null;
  const { masterKey, keyId } = readPaperKey(sodium, text);
  try {
    if (into) {
      if (into.keyId !== keyId) throw new KeyFileError(`the key file is of key ${into.keyId}, the paper key of ${keyId}: cannot add a slot to it`, 'KEY_MISMATCH');
      const { keyFile, slotId } = await appendSlot(sodium, into, masterKey, newPassphrase, opts.params);
      return { keyFile, slotId, keyring: new ZbkKeyring(sodium, masterKey) };
    }
    const made = await keyFileForMasterKey(sodium, masterKey, newPassphrase, opts);
    return { ...made, slotId: slotIds(made.keyFile)[0]! };
  } finally {
    sodium.memzero(masterKey);
  }
}
