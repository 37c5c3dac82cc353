/**
 * The libsodium primitives zbk uses, behind one interface with two
 * implementations: the `sodium-native` addon (fast, writes into caller
 * buffers) and `libsodium-wrappers-sumo` (WebAssembly, always loads).
 * Both are the same C library, so they produce identical bytes; the tests
 * seal with one and open with the other.
 *
 * Every primitive writes into a caller-provided output so the native hot
 * path (sealing a multi-MiB part) allocates exactly one output buffer.
 */
import { ConfigError } from '../errors.js';

/** XChaCha20-Poly1305-IETF key length. */
export const AEAD_KEY_BYTES = 32;
/** XChaCha20-Poly1305-IETF nonce length. */
export const AEAD_NONCE_BYTES = 24;
/** Poly1305 tag length appended to each ciphertext. */
export const AEAD_TAG_BYTES = 16;
/** Argon2id salt length (crypto_pwhash_SALTBYTES). */
export const PWHASH_SALT_BYTES = 16;
/** crypto_kdf context length. */
export const KDF_CONTEXT_BYTES = 8;

/** libsodium's named Argon2id13 cost presets (same values in every libsodium build). */
export const PWHASH_LIMITS = {
  opslimitMin: 1,
  opslimitMax: 0xffffffff,
  memlimitMin: 8192,
  interactive: { opslimit: 2, memlimit: 67108864 },
  moderate: { opslimit: 3, memlimit: 268435456 },
  sensitive: { opslimit: 4, memlimit: 1073741824 },
} as const;

/** The primitives zbk needs, nothing more. All outputs are written in place. */
export interface SodiumBackend {
  /** `native` (sodium-native addon) or `wasm` (libsodium-wrappers-sumo). */
  readonly name: 'native' | 'wasm';
  /** Fill `out` with cryptographically secure random bytes. */
  randomBytes(out: Uint8Array): void;
  /** Argon2id13 (crypto_pwhash, ALG_ARGON2ID13) of `password` into `out`. */
  pwhashArgon2id(out: Uint8Array, password: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number): Promise<void>;
  /** crypto_kdf_derive_from_key (BLAKE2b) into `out`; `context` is exactly 8 ASCII characters. */
  kdfDerive(out: Uint8Array, subkeyId: number, context: string, key: Uint8Array): void;
  /** XChaCha20-Poly1305-IETF: `out` (message.length + 16 bytes) = ciphertext ‖ tag. */
  aeadEncrypt(out: Uint8Array, message: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
  /**
   * Verify then decrypt into `out` (ciphertext.length − 16 bytes). Returns
   * false, leaving `out` unspecified, when the tag does not verify.
   */
  aeadDecrypt(out: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean;
  /** BLAKE2b (crypto_generichash) of `message` into `out` (16–64 bytes), keyed when `key` is given. */
  genericHash(out: Uint8Array, message: Uint8Array, key?: Uint8Array): void;
  /** Overwrite `buf` with zeros in a way the compiler/JIT will not elide. */
  memzero(buf: Uint8Array): void;
}

/** The subset of sodium-native 4 that zbk calls (its bundled typings are for v2). */
interface NativeApi {
  randombytes_buf(out: Uint8Array): void;
  crypto_pwhash_async(
    out: Uint8Array, pw: Uint8Array, salt: Uint8Array, ops: number, mem: number, alg: number,
    cb: (err: Error | null) => void,
  ): void;
  crypto_pwhash_ALG_ARGON2ID13: number;
  crypto_kdf_derive_from_key(out: Uint8Array, id: number, ctx: Uint8Array, key: Uint8Array): void;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array,
  ): number;
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  sodium_memzero(buf: Uint8Array): void;
}

/** The subset of libsodium-wrappers-sumo 0.8 that zbk calls. */
interface WasmApi {
  ready: Promise<void>;
  randombytes_buf(n: number): Uint8Array;
  crypto_pwhash(len: number, pw: Uint8Array, salt: Uint8Array, ops: number, mem: number, alg: number): Uint8Array;
  crypto_pwhash_ALG_ARGON2ID13: number;
  crypto_kdf_derive_from_key(len: number, id: number, ctx: string, key: Uint8Array): Uint8Array;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): Uint8Array;
  crypto_aead_xchacha20poly1305_ietf_decrypt(
    nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array,
  ): Uint8Array;
  crypto_generichash(len: number, m: Uint8Array, key: Uint8Array | null): Uint8Array;
  memzero(buf: Uint8Array): void;
}

function checkContext(context: string): void {
  if (!/^[\x20-\x7e]{8}$/.test(context)) throw new TypeError('kdf context must be 8 printable ASCII characters');
}

function nativeBackend(n: NativeApi): SodiumBackend {
  const ctxCache = new Map<string, Uint8Array>();
  return {
    name: 'native',
    randomBytes: (out) => n.randombytes_buf(out),
    pwhashArgon2id: (out, pw, salt, ops, mem) =>
      new Promise<void>((resolve, reject) => {
        // The async variant runs Argon2 on the libuv pool: a 256 MiB hash
        // must not freeze progress bars or signal handling.
        n.crypto_pwhash_async(out, pw, salt, ops, mem, n.crypto_pwhash_ALG_ARGON2ID13, (err) =>
          err ? reject(err) : resolve(),
        );
      }),
    kdfDerive: (out, id, context, key) => {
      let ctx = ctxCache.get(context);
      if (!ctx) {
        checkContext(context);
        ctx = new TextEncoder().encode(context);
        ctxCache.set(context, ctx);
      }
      n.crypto_kdf_derive_from_key(out, id, ctx, key);
    },
    aeadEncrypt: (out, m, ad, nonce, key) => {
      n.crypto_aead_xchacha20poly1305_ietf_encrypt(out, m, ad, null, nonce, key);
    },
    aeadDecrypt: (out, c, ad, nonce, key) => {
      try {
        n.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, c, ad, nonce, key);
        return true;
      } catch {
        // sodium-native throws on a bad tag; other misuse (wrong lengths) is
        // prevented by the callers, which size every buffer from the format.
        return false;
      }
    },
    genericHash: (out, m, key) => (key ? n.crypto_generichash(out, m, key) : n.crypto_generichash(out, m)),
    memzero: (buf) => n.sodium_memzero(buf),
  };
}

function wasmBackend(w: WasmApi): SodiumBackend {
  return {
    name: 'wasm',
    randomBytes: (out) => out.set(w.randombytes_buf(out.length)),
    pwhashArgon2id: async (out, pw, salt, ops, mem) => {
      const k = w.crypto_pwhash(out.length, pw, salt, ops, mem, w.crypto_pwhash_ALG_ARGON2ID13);
      out.set(k);
      w.memzero(k);
    },
    kdfDerive: (out, id, context, key) => {
      checkContext(context);
      const k = w.crypto_kdf_derive_from_key(out.length, id, context, key);
      out.set(k);
      w.memzero(k);
    },
    // The wasm heap is separate memory: one copy in and one out is unavoidable.
    aeadEncrypt: (out, m, ad, nonce, key) => {
      out.set(w.crypto_aead_xchacha20poly1305_ietf_encrypt(m, ad, null, nonce, key));
    },
    aeadDecrypt: (out, c, ad, nonce, key) => {
      let m: Uint8Array;
      try {
        m = w.crypto_aead_xchacha20poly1305_ietf_decrypt(null, c, ad, nonce, key);
      } catch {
        return false;
      }
      out.set(m);
      w.memzero(m);
      return true;
    },
    genericHash: (out, m, key) => out.set(w.crypto_generichash(out.length, m, key ?? null)),
    memzero: (buf) => w.memzero(buf),
  };
}

async function loadNative(): Promise<SodiumBackend> {
  const mod = (await import('sodium-native')) as unknown as { default?: NativeApi } & NativeApi;
  const api = mod.default ?? mod;
  if (typeof api.crypto_pwhash_async !== 'function') throw new Error('sodium-native is too old (need v4)');
  return nativeBackend(api);
}

async function loadWasm(): Promise<SodiumBackend> {
  const mod = (await import('libsodium-wrappers-sumo')) as unknown as { default?: WasmApi } & WasmApi;
  const api = mod.default ?? mod;
  await api.ready;
  return wasmBackend(api);
}

const cache = new Map<string, Promise<SodiumBackend>>();

/**
 * Load a libsodium backend. `ZBK_SODIUM=native` forces the addon (and fails
 * clearly if it does not load), `ZBK_SODIUM=wasm` forces WebAssembly;
 * otherwise native is preferred with a silent fallback to wasm.
 *
 * @param mode overrides `ZBK_SODIUM` (tests use it to get both backends).
 */
export function loadSodium(mode: 'auto' | 'native' | 'wasm' = envMode()): Promise<SodiumBackend> {
  let p = cache.get(mode);
  if (!p) {
    p = loadMode(mode);
    cache.set(mode, p);
    p.catch(() => cache.delete(mode));
  }
  return p;
}

function envMode(): 'auto' | 'native' | 'wasm' {
  const v = process.env.ZBK_SODIUM;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'native' || v === 'wasm') return v;
  throw new ConfigError(`ZBK_SODIUM must be "native", "wasm" or "auto", not ${JSON.stringify(v.slice(0, 20))}`);
}

async function loadMode(mode: 'auto' | 'native' | 'wasm'): Promise<SodiumBackend> {
  if (mode === 'wasm') return loadWasm();
  try {
    return await loadNative();
  } catch (err) {
    if (mode === 'native') {
      const why = err instanceof Error ? err.message : String(err);
      throw new ConfigError(`ZBK_SODIUM=native but the sodium-native addon did not load: ${why}`, 'SODIUM_NATIVE_UNAVAILABLE');
    }
    return loadWasm();
  }
}
