/**
 * Lossless handling of ZFS 64-bit values (guid, createtxg). They travel as
 * `bigint` in the API and as canonical decimal strings in SQLite and JSON.
 */
import { ManifestError } from '../errors.js';

const U64_MAX = (1n << 64n) - 1n;

/** Canonical decimal text of an unsigned 64-bit value; throws on anything else. */
export function u64ToText(value: bigint, what = 'value'): string {
  if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) {
    throw new ManifestError(`${what} must be an unsigned 64-bit integer (bigint), got ${String(value)}`, 'BAD_U64');
  }
  return value.toString(10);
}

/** Parse a decimal string (as stored, or as `zfs get -p` prints it) into a bigint. */
export function textToU64(text: string, what = 'value'): bigint {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]*)$/.test(text)) {
    throw new ManifestError(`${what} is not a canonical decimal integer: ${JSON.stringify(text)}`, 'BAD_U64');
  }
  const v = BigInt(text);
  if (v > U64_MAX) throw new ManifestError(`${what} exceeds 64 bits: ${text}`, 'BAD_U64');
  return v;
}

const U128_MAX = (1n << 128n) - 1n;

/**
 * Canonical decimal text of a snapshot identity: a ZFS guid (64 bits) or the
 * UUID of zbk's pin of a btrfs snapshot (128 bits, `BigInt('0x' + hex)`;
 * see src/services/push/source.ts). The manifest, the stream records and
 * the volume metadata keep both as the same decimal TEXT.
 */
export function idToText(value: bigint, what = 'snapshot id'): string {
  if (typeof value !== 'bigint' || value < 0n || value > U128_MAX) {
    throw new ManifestError(`${what} must be an unsigned integer of at most 128 bits (bigint), got ${String(value)}`, 'BAD_U64');
  }
  return value.toString(10);
}

/** Parse a snapshot identity's decimal text (at most 128 bits). */
export function textToId(text: string, what = 'snapshot id'): bigint {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]*)$/.test(text)) {
    throw new ManifestError(`${what} is not a canonical decimal integer: ${JSON.stringify(text)}`, 'BAD_U64');
  }
  const v = BigInt(text);
  if (v > U128_MAX) throw new ManifestError(`${what} exceeds 128 bits: ${text}`, 'BAD_U64');
  return v;
}
