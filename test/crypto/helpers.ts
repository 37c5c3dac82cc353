/** Shared fixtures for the crypto tests: both backends, fixed keys, deterministic nonces. */
import { loadSodium, type SodiumBackend } from '../../src/crypto/sodium.js';
import { keyringFromMasterKey, type ZbkKeyring } from '../../src/crypto/keyring.js';
import type { PartContext } from '../../src/crypto/types.js';

/** Both libsodium backends; every cross-backend test loops over these pairs. */
export async function backends(): Promise<{ native: SodiumBackend; wasm: SodiumBackend; pairs: [SodiumBackend, SodiumBackend][] }> {
  const native = await loadSodium('native');
  const wasm = await loadSodium('wasm');
  return { native, wasm, pairs: [[native, wasm], [wasm, native], [native, native], [wasm, wasm]] };
}

/** 00 01 02 … 1f: the master key of the test vectors. */
export function vectorMasterKey(): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => i);
}

/** Deterministic "random" source for vectors: byte i of every request is 0x40 + i. */
export function patternNonces(out: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] = (0x40 + i) & 0xff;
}

/** A keyring over the vector master key with pattern nonces. */
export function vectorKeyring(sodium: SodiumBackend): ZbkKeyring {
  return keyringFromMasterKey(sodium, vectorMasterKey(), { randomBytes: patternNonces });
}

/** f0 f1 … ff */
export function vectorStreamId(): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => 0xf0 + i);
}

export function ctx(partIndex: number, over: Partial<PartContext> = {}): PartContext {
  return { streamId: vectorStreamId(), volumeIndex: 2, partIndex, final: false, ...over };
}

/** Deterministic non-trivial plaintext of a given length (not all zero, so reorderings show). */
export function plaintext(len: number, seed = 1): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed * 2654435761;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
