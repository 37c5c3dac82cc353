/**
 * Paper backup of the master key: printable, typo-checked per line.
 *
 *   zbk paper key, format 1
 *   key id: 0123456789abcdef
 *   1: XXXX-XXXX-XXXX-XXXX      base32(key[0..8)   ‖ check2(1, key[0..8)))
 *   2: XXXX-XXXX-XXXX-XXXX      base32(key[8..16)  ‖ check2(2, …))
 *   3: XXXX-XXXX-XXXX-XXXX
 *   4: XXXX-XXXX-XXXX-XXXX
 *   check: XXXX-XXXX            base32(BLAKE2b-128("zbk paper key" ‖ key)[0..5))
 *
 * check2(n, b) = BLAKE2b-128("zbk paper line" ‖ u8(n) ‖ b)[0..2). Reading is
 * lenient (case, spaces, hyphens, 0/1/8 read as O/I/B) because people type it.
 */
import { KeyFileError } from '../errors.js';
import { concat, equalBytes, utf8 } from './bytes.js';
import type { SodiumBackend } from './sodium.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const LINES = 4;
const BYTES_PER_LINE = 8;
export const PAPER_HEADER = 'zbk paper key, format 1';

function base32(b: Uint8Array): string {
  let bits = 0;
  let acc = 0;
  let s = '';
  for (const byte of b) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      s += ALPHABET[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) s += ALPHABET[(acc << (5 - bits)) & 31];
  return s;
}

/** Decode exactly `bytes` bytes from base32 of the exact length; null if malformed. */
function unbase32(s: string, bytes: number): Uint8Array | null {
  if (s.length !== Math.ceil((bytes * 8) / 5)) return null;
  const out = new Uint8Array(bytes);
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of s) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) return null;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      if (o < bytes) out[o++] = (acc >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return o === bytes ? out : null;
}

function group(s: string): string {
  return s.match(/.{1,4}/g)!.join('-');
}

function normalise(s: string): string {
  return s.toUpperCase().replace(/[\s-]/g, '').replace(/0/g, 'O').replace(/1/g, 'I').replace(/8/g, 'B');
}

function lineCheck(sodium: SodiumBackend, n: number, b: Uint8Array): Uint8Array {
  const h = new Uint8Array(16);
  sodium.genericHash(h, concat(utf8('zbk paper line'), new Uint8Array([n]), b));
  return h.subarray(0, 2);
}

function overallCheck(sodium: SodiumBackend, key: Uint8Array): Uint8Array {
  const h = new Uint8Array(16);
  sodium.genericHash(h, concat(utf8('zbk paper key'), key));
  return h.subarray(0, 5);
}

/** Render a 32-byte master key as paper-key text. */
export function encodePaperKey(sodium: SodiumBackend, masterKey: Uint8Array, keyId: string): string {
  const lines = [PAPER_HEADER, `key id: ${keyId}`];
  for (let i = 0; i < LINES; i++) {
    const b = masterKey.subarray(i * BYTES_PER_LINE, (i + 1) * BYTES_PER_LINE);
    lines.push(`${i + 1}: ${group(base32(concat(b, lineCheck(sodium, i + 1, b))))}`);
  }
  lines.push(`check: ${group(base32(overallCheck(sodium, masterKey)))}`);
  return lines.join('\n') + '\n';
}

/**
 * Parse paper-key text back into the master key. Throws KeyFileError
 * `PAPER_KEY_CHECKSUM` naming the line that has a typo, or
 * `PAPER_KEY_FORMAT` when lines are missing. The key id line, when present,
 * is returned for the caller to compare with the recomputed id.
 */
export function decodePaperKey(sodium: SodiumBackend, text: string): { masterKey: Uint8Array; keyId: string | null } {
  const data = new Map<number, string>();
  let check: string | null = null;
  let keyId: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const m = /^([1-9]|check|key id)\s*:\s*(.*)$/i.exec(line);
    if (!m) continue;
    const label = m[1]!.toLowerCase();
    if (label === 'check') check = normalise(m[2]!);
    else if (label === 'key id') keyId = m[2]!.trim().toLowerCase();
    else data.set(Number(label), normalise(m[2]!));
  }
  const key = new Uint8Array(LINES * BYTES_PER_LINE);
  for (let n = 1; n <= LINES; n++) {
    const s = data.get(n);
    if (s === undefined) throw new KeyFileError(`paper key line ${n} is missing`, 'PAPER_KEY_FORMAT');
    const b = unbase32(s, BYTES_PER_LINE + 2);
    if (!b) {
      throw new KeyFileError(`paper key line ${n} should have 16 letters/digits from A–Z and 2–7; re-check it`, 'PAPER_KEY_CHECKSUM');
    }
    const body = b.subarray(0, BYTES_PER_LINE);
    if (!equalBytes(b.subarray(BYTES_PER_LINE), lineCheck(sodium, n, body))) {
      throw new KeyFileError(`paper key line ${n} does not match its checksum: there is a typo in line ${n}`, 'PAPER_KEY_CHECKSUM');
    }
    key.set(body, (n - 1) * BYTES_PER_LINE);
  }
  if (check === null) throw new KeyFileError('paper key "check:" line is missing', 'PAPER_KEY_FORMAT');
  const want = unbase32(check, 5);
  if (!want || !equalBytes(want, overallCheck(sodium, key))) {
    throw new KeyFileError(
      'paper key lines are individually valid but the "check:" line does not match: re-check the check line, and that all lines come from the same sheet',
      'PAPER_KEY_CHECKSUM',
    );
  }
  return { masterKey: key, keyId };
}
