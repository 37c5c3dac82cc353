/**
 * Lossless handling of ZFS 64-bit values (guid, createtxg) and of snapshot
 * identities, which are a ZFS guid (64 bits) or the UUID of zbk's pin of a
 * btrfs snapshot (128 bits, `BigInt('0x' + hex)`; see
 * src/services/push/source.ts). They travel as `bigint` in the API and as
 * canonical decimal strings in SQLite and JSON.
 */
import { ManifestError } from '../errors.js';

/** Canonical decimal text of an unsigned value of at most `bits` bits; throws on anything else. */
function unsignedToText(value: bigint, bits: bigint, what: string): string {
  if (typeof value !== 'bigint' || value < 0n || value >= 1n << bits) {
    throw new ManifestError(`${what} must be an unsigned ${bits}-bit integer (bigint), got ${String(value)}`, 'BAD_U64');
  }
  return value.toString(10);
}

/** Parse canonical decimal text of at most `bits` bits. */
function textToUnsigned(text: string, bits: bigint, what: string): bigint {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]*)$/.test(text)) {
    throw new ManifestError(`${what} is not a canonical decimal integer: ${JSON.stringify(text)}`, 'BAD_U64');
  }
  const v = BigInt(text);
  if (v >= 1n << bits) throw new ManifestError(`${what} exceeds ${bits} bits: ${text}`, 'BAD_U64');
  return v;
}

/** Canonical decimal text of an unsigned 64-bit value; throws on anything else. */
export function u64ToText(value: bigint, what = 'value'): string {
  return unsignedToText(value, 64n, what);
}

/** Parse a decimal string (as stored, or as `zfs get -p` prints it) into a bigint. */
export function textToU64(text: string, what = 'value'): bigint {
  return textToUnsigned(text, 64n, what);
}

/** Canonical decimal text of a snapshot identity (at most 128 bits). */
export function idToText(value: bigint, what = 'snapshot id'): string {
  return unsignedToText(value, 128n, what);
}

/** Parse a snapshot identity's decimal text (at most 128 bits). */
export function textToId(text: string, what = 'snapshot id'): bigint {
  return textToUnsigned(text, 128n, what);
}
