/**
 * `zbk init`: write the config, create the key (or connect to an existing
 * repository), store the key file, create the local manifest, check access.
 *
 * Never damages what is stored: an existing repository is refused unless
 * `--connect` (use it from this machine) or `--force` (start a new
 * repository; the old key file is kept as `zbk.key.replaced-<time>`, since
 * without it the old data could never be read again).
 *
 * Everything local is checked before the store is written: the config can
 * be written and the state directory is writable with room for the
 * manifest (before the store is even read), no other repository's manifest
 * is in it (once the store was read). A failing local check leaves the
 * store untouched.
 */
import { existsSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { configFromObject, parseSize, writeConfigFile, type ZbkConfig } from '../config/config.js';
import { choosePartSize, defaultRegion, profileEndpoint, providerProfile } from '../cost/providers/index.js';
import { createKeyFile, openKeyFile, weakKdfWarning } from '../crypto/index.js';
import { ConfigError, ManifestError } from '../errors.js';
import { KEY_FILE_KEY, replacedKeyFileKey } from '../layout.js';
import type { RepositoryRow } from '../manifest/types.js';
import { writeMirror } from '../manifest/mirror.js';
import { NotFoundError } from '../store/errors.js';
import {
  assertStateDirWritable,
  createContext,
  manifestOwner,
  manifestPath,
  nearestExisting,
  openManifestFile,
  probeWritable,
  sodium,
  type ContextOverrides,
  type Logger,
  type ServiceContext,
} from './context.js';
import { assertKdfAllowed, checkNewPassphrase } from './key-policy.js';
import { newPassphrase, type PassphraseSource } from './passphrase.js';
import { assertSourceDatasetName, sourceKindOf } from './push/source.js';
import { sourceListingFor } from './push/sources.js';

export interface InitOptions {
  configPath: string;
  store: string;
  /** `--provider`: the profile whose fields are written explicitly into the new config. */
  provider?: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  datasets?: string[];
  stateDir?: string;
  partSize?: string;
  volumeSize?: string;
  dataStorageClass?: string;
  checksumCalculation?: 'when_supported' | 'when_required';
  /** Argon2id strength for the new key slot (`min` only with ZBK_TEST_ALLOW_WEAK_KDF=1: key-policy.ts). */
  kdf?: 'moderate' | 'interactive' | 'min';
  /** Accept a new passphrase the estimator scores below 3 (a warning instead of WEAK_PASSPHRASE). */
  allowWeakPassphrase?: boolean;
  /** Use an existing repository from this machine (no new key). */
  connect?: boolean;
  /** Overwrite an existing config / start a new repository over an existing one. */
  force?: boolean;
  /** Create the lifecycle rule that aborts incomplete multipart uploads (S3). */
  createLifecycleRule?: boolean;
  log?: Logger;
  overrides?: ContextOverrides;
}

export interface InitResult {
  configPath: string;
  store: string;
  keyId: string;
  created: boolean;
  identity: { account: string; arn: string } | null;
  /** S3 only: whether a rule aborts incomplete multipart uploads. */
  lifecycleRule: 'present' | 'created' | 'missing' | 'not-applicable';
  manifestPath: string;
  warnings: string[];
}

interface LifecycleCapable {
  hasAbortIncompleteUploadsRule(): Promise<boolean>;
  putAbortIncompleteUploadsRule(days: number): Promise<void>;
}

function lifecycleCapable(x: unknown): x is LifecycleCapable {
  return typeof (x as Partial<LifecycleCapable>).hasAbortIncompleteUploadsRule === 'function';
}

function buildConfigDoc(o: InitOptions): Record<string, unknown> {
  const store: Record<string, unknown> = { url: o.store };
  const profile = o.provider === undefined ? undefined : providerProfile(o.provider);
  if (profile) store.provider = profile.name;
  const region = o.region ?? (profile ? defaultRegion(profile) : undefined);
  const endpoint = o.endpoint ?? (profile && region ? profileEndpoint(profile, region) : undefined);
  if (endpoint) store.endpoint = endpoint;
  if (region) store.region = region;
  if (o.pathStyle || profile) store.path_style = o.pathStyle || (profile?.addressing.pathStyle ?? false);
  const dataClass = o.dataStorageClass ?? profile?.dataStorageClass;
  if (dataClass) store.data_storage_class = dataClass;
  if (profile) store.meta_storage_class = profile.metaStorageClass;
  const checksum = o.checksumCalculation ?? profile?.addressing.checksumCalculation;
  if (checksum) store.checksum_calculation = checksum;
  const doc: Record<string, unknown> = { store };
  if (o.stateDir) doc.state_dir = o.stateDir;
  const upload: Record<string, unknown> = {};
  if (o.partSize) upload.part_size = o.partSize;
  else if (profile) {
    // The part size within the provider's part limit for the volume size, written out so it is visible and overridable.
    const volume = o.volumeSize === undefined ? 4 * 1024 ** 3 : parseSize(o.volumeSize, 'volume_size');
    upload.part_size = `${choosePartSize(volume, undefined, 32 * 1024 ** 2, profile.multipart).partSize / 1024 ** 2}MiB`;
  }
  if (o.volumeSize) upload.volume_size = o.volumeSize;
  if (Object.keys(upload).length) doc.upload = upload;
  if (o.datasets?.length) doc.dataset = o.datasets.map((name) => ({ name }));
  return doc;
}

export async function init(o: InitOptions, passphrase: PassphraseSource): Promise<InitResult> {
  const warnings: string[] = [];
  const log = o.log ?? { info() {}, warn() {} };
  const warn = (m: string): void => {
    warnings.push(m);
    log.warn(m);
  };
  // A test-only KDF is a usage error, before the config, the store or a passphrase is touched.
  if (!o.connect) assertKdfAllowed(o.kdf);
  // --connect does not imply replacing a config: it would lose its datasets, hooks and retention.
  if (existsSync(o.configPath) && !o.force) {
    throw new ConfigError(
      `a config already exists at ${o.configPath}: it is in use as it is; pass --force to replace it (with --connect to keep the repository in the store), or --config for another file`,
      'CONFIG_EXISTS',
    );
  }
  const doc = buildConfigDoc(o);
  const config: ZbkConfig = configFromObject(doc, o.configPath);
  // Validate dataset names now, not at the first push.
  for (const d of config.datasets) assertSourceDatasetName(d.name);
  const ctx = createContext(config, passphrase, { ...o.overrides, log });
  checkLocalPaths(ctx, o);
  // A dataset that is not there yet is allowed (made later), but said: often a typo, or a
  // relative path meant as a btrfs one (a name not starting with "/" is a ZFS dataset).
  for (const d of config.datasets) {
    const there = await sourceListingFor(ctx, d.name)
      .exists(d.name)
      .catch((err: unknown) => {
        warn(`dataset ${d.name}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        return true;
      });
    if (!there) warn(`dataset ${d.name} does not exist (yet)${sourceKindOf(d.name) === 'zfs' && d.name.includes('/') && !d.name.includes('@') ? ': a ZFS dataset; a btrfs subvolume is named by its absolute path' : ''}`);
  }

  // Access checks first: nothing is written before we know the store works.
  let identity: InitResult['identity'] = null;
  if (ctx.store.callerIdentity) {
    const id = await ctx.store.callerIdentity();
    if (id) {
      identity = { account: id.account, arn: id.arn };
      log.info(`credentials: ${id.arn} (account ${id.account})`);
    }
  }
  let existing: Uint8Array | null = null;
  try {
    existing = await ctx.store.getBytes(KEY_FILE_KEY);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }

  const so = await sodium();
  let keyId: string;
  let created = false;
  if (!existing && o.connect) {
    throw new ConfigError(`there is no zbk repository at ${ctx.store.url} (no key file): check the store URL and prefix, or run without --connect to create one`, 'NO_REPOSITORY');
  }
  const localRepository = checkLocalManifest(ctx, o);
  if (existing && o.connect) {
    const keyring = await openKeyFile(so, existing, await passphrase.get('open'));
    keyId = keyring.keyId;
    if (localRepository && localRepository.keyId !== keyId) throw foreignManifest(manifestPath(ctx.config), localRepository, `the repository at ${ctx.store.url} has key ${keyId}`);
    log.info(`connected to the existing repository (key ${keyId}); run "zbk manifest rebuild" next`);
  } else {
    if (existing && !o.force) {
      throw new ConfigError(
        `a zbk repository already exists at ${ctx.store.url}: use --connect to use it from this machine, or --force to start a new one (the old key file is kept aside)`,
        'REPOSITORY_EXISTS',
      );
    }
    // Asked (and checked) before anything is written.
    const pass = await newPassphrase(passphrase);
    // Strength by estimate (zxcvbn-ts, score >= 3), not by length: key-policy.ts. Never names the passphrase.
    const weakPass = await checkNewPassphrase(pass, { allowWeak: o.allowWeakPassphrase, context: [o.store, ...(o.datasets ?? [])] });
    if (weakPass) warn(weakPass);
    if (existing) {
      const aside = replacedKeyFileKey(ctx.now());
      await ctx.store.put(aside, existing, { storageClass: config.store.metaStorageClass });
      warn(`replaced the existing repository's key file; the old one is kept at ${aside}`);
    }
    const made = await createKeyFile(so, pass, { params: o.kdf ?? 'moderate' });
    const weak = weakKdfWarning(o.kdf);
    if (weak) warn(weak);
    await ctx.store.put(KEY_FILE_KEY, made.keyFile, { storageClass: config.store.metaStorageClass });
    keyId = made.keyring.keyId;
    created = true;
    const mpath = manifestPath(ctx.config);
    // Only this store's own earlier manifest (--force) or one recording no repository: checkLocalManifest refused any other.
    if (existsSync(mpath)) {
      const aside = `${mpath}.replaced-${Date.now()}`;
      // Its WAL goes with it: SQLite would take a -wal left behind as the new manifest's.
      for (const suffix of ['-wal', '-shm']) if (existsSync(mpath + suffix)) renameSync(mpath + suffix, aside + suffix);
      renameSync(mpath, aside);
      warn(`the previous local manifest was moved to ${aside}`);
    }
    const manifest = openManifestFile(mpath, ctx.now);
    try {
      manifest.initRepository({ storeUrl: ctx.store.url, keyId, createdAt: ctx.now() });
      await writeMirror(manifest, ctx.store, made.keyring, { keep: config.mirrors, storageClass: config.store.metaStorageClass, now: ctx.now });
    } finally {
      manifest.close();
    }
  }

  let lifecycleRule: InitResult['lifecycleRule'] = 'not-applicable';
  if (lifecycleCapable(ctx.store)) {
    if (await ctx.store.hasAbortIncompleteUploadsRule()) lifecycleRule = 'present';
    else if (o.createLifecycleRule) {
      await ctx.store.putAbortIncompleteUploadsRule(7);
      lifecycleRule = 'created';
    } else {
      lifecycleRule = 'missing';
      warn('the bucket has no lifecycle rule aborting incomplete multipart uploads (orphaned parts are billed at Standard rates): rerun with --create-lifecycle-rule, or add one');
    }
  }

  writeConfigFile(o.configPath, doc);
  return { configPath: o.configPath, store: ctx.store.url, keyId, created, identity, lifecycleRule, manifestPath: manifestPath(ctx.config), warnings };
}

/** Free bytes the state directory needs for a new manifest (about 150 kB with its WAL and shared memory), with room to spare. */
const MANIFEST_ROOM = 1024 * 1024;

/**
 * What init checks on this machine before it reads the store: the config
 * file's directory takes files, and the state directory is writable with
 * room for the manifest (one line naming it, exit 3).
 */
function checkLocalPaths(ctx: ServiceContext, o: InitOptions): void {
  const configDir = nearestExisting(dirname(o.configPath));
  const code = probeWritable(configDir);
  if (code !== null) throw new ConfigError(`cannot write the config ${o.configPath}: ${configDir} does not take files (${code}); pass --config with a writable path`, 'CONFIG_NOT_WRITABLE');
  assertStateDirWritable(ctx.config, MANIFEST_ROOM);
}

/**
 * After the store was read (so a mistyped store is NO_REPOSITORY first)
 * and before it is written: a manifest already in the state directory is
 * not another repository's. Returns the repository it records (null: none
 * there, or none recorded). The passphrase source is read before the first
 * write too (newPassphrase, or opening the key file with --connect).
 *
 * Another repository's manifest — another store URL, or this store with
 * another key — is refused (exit 3, FOREIGN_MANIFEST) and never moved
 * aside. This store's earlier manifest is replaced only by `--force`
 * starting a new repository (kept aside as `manifest.db.replaced-<time>`,
 * as before); `--connect` keeps it when its key is the store's (checked
 * once the key file is open).
 */
function checkLocalManifest(ctx: ServiceContext, o: InitOptions): RepositoryRow | null {
  const path = manifestPath(ctx.config);
  if (!existsSync(path)) return null;
  let owner: RepositoryRow | null;
  try {
    owner = manifestOwner(path);
  } catch (err) {
    if (err instanceof ManifestError && err.code === 'MANIFEST_OUTDATED') {
      throw new ConfigError(`${path} is a manifest of an older zbk, perhaps of another repository: it stays; move it away, or set state_dir to another directory`, 'FOREIGN_MANIFEST');
    }
    throw err;
  }
  if (!owner) return null;
  if (owner.storeUrl !== ctx.store.url) throw foreignManifest(path, owner, `this config's store is ${ctx.store.url}`);
  if (!o.force && !o.connect) {
    throw new ConfigError(
      `${path} is the manifest of an earlier repository at ${owner.storeUrl} (key ${owner.keyId}): pass --force to start a new repository (it is kept aside), or --connect to use the one in the store`,
      'FOREIGN_MANIFEST',
    );
  }
  return owner;
}

function foreignManifest(path: string, owner: RepositoryRow, why: string): ConfigError {
  return new ConfigError(
    `${path} is the manifest of another repository (${owner.storeUrl}, key ${owner.keyId}; ${why}): it stays; set state_dir to another directory, or move it away`,
    'FOREIGN_MANIFEST',
  );
}
