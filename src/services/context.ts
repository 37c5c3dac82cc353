/**
 * What every service needs, opened once per command: the config, the store,
 * the zfs adapter, the clock, a logger and the passphrase source; and the
 * steps that open the repository (key file → keyring, local manifest).
 *
 * Services receive a `ServiceContext` instead of building their own
 * dependencies, so tests can inject a memory store, a test clock or a
 * fault-injecting wrapper.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ZbkConfig } from '../config/config.js';
import { ConfigError, ManifestError } from '../errors.js';
import { KEY_FILE_KEY } from '../layout.js';
import type { ObjectStore, IdentityProvider } from '../store/object-store.js';
import { NotFoundError } from '../store/errors.js';
import type { PassphraseSource } from './passphrase.js';
import type { Keyring } from '../crypto/types.js';
import { loadSodium, openKeyFile, type SodiumBackend } from '../crypto/index.js';
import { Manifest } from '../manifest/manifest.js';
import { Zfs } from '../zfs/index.js';
import { openStore, retryModeFromEnv } from '../store/open-store.js';
import { clockFromEnv } from './consolidate-clock.js';

export interface Logger {
  /** Progress and notes for humans (stderr; silent with --json). */
  info(message: string): void;
  /** Something the user should know; never fatal. */
  warn(message: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {} };

export interface ServiceContext {
  config: ZbkConfig;
  store: ObjectStore & Partial<IdentityProvider>;
  zfs: Zfs;
  now: () => Date;
  log: Logger;
  passphrase: PassphraseSource;
}

export interface ContextOverrides {
  store?: ObjectStore & Partial<IdentityProvider>;
  zfs?: Zfs;
  now?: () => Date;
  log?: Logger;
}

export function createContext(config: ZbkConfig, passphrase: PassphraseSource, overrides: ContextOverrides = {}): ServiceContext {
  const log = overrides.log ?? silentLogger;
  return {
    config,
    store:
      overrides.store ??
      openStore(config.store, {
        retry: config.retry,
        retryMode: retryModeFromEnv(),
        onRetry: (e) => log.info(`retrying: ${e.error.message} (attempt ${e.attempt}, ${e.retriesLeft} left)`),
      }),
    zfs: overrides.zfs ?? new Zfs({ zfs: config.zfs.zfs, zpool: config.zfs.zpool }),
    now: overrides.now ?? clockFromEnv(),
    log,
    passphrase,
  };
}

export function manifestPath(config: ZbkConfig): string {
  return join(config.stateDir, 'manifest.db');
}

export function lockPath(config: ZbkConfig): string {
  return join(config.stateDir, 'manifest.lock');
}

let sodiumPromise: Promise<SodiumBackend> | null = null;
/** The libsodium backend, loaded once per process. */
export function sodium(): Promise<SodiumBackend> {
  sodiumPromise ??= loadSodium();
  return sodiumPromise;
}

/** Read the key file from the store. */
export async function readKeyFile(ctx: ServiceContext): Promise<Uint8Array> {
  try {
    return await ctx.store.getBytes(KEY_FILE_KEY);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new ConfigError(`no zbk repository at ${ctx.store.url} (key file ${KEY_FILE_KEY} missing): run "zbk init"`, 'NO_REPOSITORY');
    }
    throw err;
  }
}

/** Open the keyring with the passphrase (WrongPassphraseError on mismatch). */
export async function openKeyring(ctx: ServiceContext): Promise<Keyring> {
  const keyFile = await readKeyFile(ctx);
  const passphrase = await ctx.passphrase.get('open');
  return openKeyFile(await sodium(), keyFile, passphrase);
}

/**
 * Open the local manifest. Refuses a manifest of another repository (key id
 * differs) and says how to rebuild when there is none.
 */
export function openManifest(ctx: ServiceContext, keyring: Keyring | null): Manifest {
  const path = manifestPath(ctx.config);
  if (!existsSync(path)) {
    throw new ManifestError(`no local manifest at ${path}: run "zbk manifest rebuild" to recreate it from the bucket`, 'NO_MANIFEST');
  }
  const manifest = Manifest.open(path, { now: ctx.now });
  const repo = manifest.repository();
  if (keyring && repo && repo.keyId !== keyring.keyId) {
    manifest.close();
    throw new ManifestError(`the local manifest ${path} belongs to another repository (key ${repo.keyId}, store key ${keyring.keyId}): move it away and run "zbk manifest rebuild"`, 'MANIFEST_MISMATCH');
  }
  return manifest;
}

export function ensureStateDir(config: ZbkConfig): void {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
}
