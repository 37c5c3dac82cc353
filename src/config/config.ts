/**
 * The configuration file (TOML): where it lives, what it holds, defaults and
 * validation. Everything else receives a validated `ZbkConfig`.
 *
 * Location: `--config`, else `ZBK_CONFIG`, else `/etc/zbk/config.toml` for
 * root, else `$XDG_CONFIG_HOME/zbk/config.toml` (`~/.config/zbk/config.toml`).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import bytes from 'bytes';
import { parse, stringify } from 'smol-toml';
import { ConfigError } from '../errors.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface StoreConfig {
  /** `s3://bucket/prefix` or `file:///absolute/dir`. */
  url: string;
  /** Custom S3 endpoint (LocalStack, MinIO, test server). */
  endpoint?: string;
  region: string;
  /** Path-style addressing (needed by most non-AWS endpoints). */
  pathStyle: boolean;
  /** Storage class of stream data (volumes). */
  dataStorageClass: string;
  /** Storage class of small metadata (key file, manifest mirrors, stream records). */
  metaStorageClass: string;
  /** `when_supported` (SDK default, CRC32 on every request) or `when_required` for S3 services that reject it. */
  checksumCalculation: 'when_supported' | 'when_required';
}

export interface UploadConfig {
  /**
   * Plaintext bytes per part (multipart unit; ≥ 5 MiB). Default 32 MiB keeps
   * a push under 300 MB of memory; bigger parts mean fewer (billed) requests.
   */
  partSize: number;
  /** Plaintext bytes per volume (object); well below the monthly free egress. */
  volumeSize: number;
  /** Parts uploaded in parallel. Pipeline buffers ≈ (parallel + 2) × partSize (see uploadStream in src/pipeline/upload.ts). */
  parallel: number;
}

export interface RetryConfig {
  retries: number;
  minTimeoutMs: number;
  maxTimeoutMs: number;
}

/** `raw` of a `[[dataset]]`: send natively encrypted datasets raw (`zfs send -w`) when the ZFS can (`auto`), always, or never. */
export type RawSendSetting = 'auto' | boolean;

/** `[zfs] protect_base`: what keeps the base of the next incremental sendable. */
export type ProtectBase = 'bookmark' | 'hold';

export interface DatasetConfig {
  name: string;
  /** Only snapshots whose short name matches this regular expression are pushed (e.g. sanoid dailies). */
  snapshotPattern?: string;
  /**
   * Raw sends (`-w`) of a new chain: `auto` (absent) when the dataset is
   * natively encrypted and the ZFS can send raw; `true` requires both
   * (checked at push time); `false` sends decrypted data (zbk encrypts it).
   */
  raw?: RawSendSetting;
}

export interface HookConfig {
  /** Argument arrays (no shell), run before/after each dataset's push. */
  prePush?: string[];
  postPush?: string[];
  timeoutSeconds: number;
  /** Webhook URLs (secrets: never logged). */
  onSuccess?: string;
  onFailure?: string;
  /** healthchecks (default), uptime-kuma or ntfy. */
  webhookFormat: 'healthchecks' | 'uptime-kuma' | 'ntfy';
}

export interface RestoreConfig {
  /** Free internet egress per calendar month, GB; absent: the price table's (`[prices] free_egress_gb_month`, default 100). */
  freeEgressGB?: number;
  /** GB of the monthly allowance left for other use. */
  reserveGB: number;
  tier: 'Bulk' | 'Standard';
  stagingDir: string;
}

export interface ZbkConfig {
  /** Path the config was loaded from (or will be written to). */
  path: string;
  store: StoreConfig;
  upload: UploadConfig;
  retry: RetryConfig;
  /**
   * zfs/zpool commands as argument arrays, e.g. ["sudo", "zfs"]; and how the
   * base of the next incremental is protected: `bookmark` (default; a zbk
   * bookmark, no long-lived hold, where the ZFS has bookmarks, else a hold)
   * or `hold` (a `zbk` hold on the last pushed snapshot, plus the bookmark).
   */
  zfs: { zfs: string[]; zpool: string[]; protectBase: ProtectBase };
  /** Directory for the manifest database, lock and caches. */
  stateDir: string;
  /** Manifest mirrors kept in the store. */
  mirrors: number;
  /** Passphrase file (else ZBK_PASSPHRASE_FILE, else a prompt). */
  passphraseFile?: string;
  datasets: DatasetConfig[];
  hooks: HookConfig;
  restore: RestoreConfig;
  /** Price-table overrides, merged over the dated defaults (see src/cost). */
  prices: Record<string, number>;
  /** Retention rules (see src/planner/retention). */
  retention: { keepLast: number; keepMonthly: number; keepYearly: number };
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The config path in force: flag, then ZBK_CONFIG, then the per-user or system default. */
export function resolveConfigPath(flag?: string): string {
  if (flag) return resolve(flag);
  if (process.env.ZBK_CONFIG) return resolve(process.env.ZBK_CONFIG);
  if (isRoot()) return '/etc/zbk/config.toml';
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'zbk', 'config.toml');
}

function defaultStateDir(): string {
  if (isRoot()) return '/var/lib/zbk';
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'zbk');
}

/** Parse "64MiB", "4 GiB", "5368709120" into bytes. */
export function parseSize(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.floor(value);
  if (typeof value === 'string') {
    // `bytes` reads KB/MB/GB as binary multiples; accept the IEC spellings too.
    const n = bytes.parse(value.replace(/([KMGT])iB$/i, '$1B').replace(/\s+/g, ''));
    if (n !== null && Number.isFinite(n) && n > 0) return n;
  }
  throw new ConfigError(`${what}: not a size: ${JSON.stringify(value)} (use e.g. "64MiB" or "4GiB")`);
}

type Table = Record<string, unknown>;

function table(v: unknown, what: string): Table {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${what}: must be a table`);
  return v as Table;
}

function str(t: Table, key: string, what: string, def?: string): string | undefined {
  const v = t[key];
  if (v === undefined) return def;
  if (typeof v !== 'string') throw new ConfigError(`${what}.${key}: must be a string`);
  return v;
}

function num(t: Table, key: string, what: string, def: number): number {
  const v = t[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${what}.${key}: must be a non-negative number`);
  return v;
}

function bool(t: Table, key: string, what: string, def: boolean): boolean {
  const v = t[key];
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw new ConfigError(`${what}.${key}: must be true or false`);
  return v;
}

function argv(v: unknown, what: string, def: string[]): string[] {
  if (v === undefined) return def;
  if (typeof v === 'string' && v.length > 0) return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x.length > 0)) return v as string[];
  throw new ConfigError(`${what}: must be a command name or a non-empty array of arguments`);
}

/** An http(s) URL, or undefined; `secret` URLs (webhooks carry tokens) are never quoted in the error. */
function httpUrl(v: string | undefined, key: string, secret: boolean): string | undefined {
  if (v === undefined) return undefined;
  let ok = false;
  try {
    const u = new URL(v);
    ok = u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    ok = false;
  }
  if (!ok) throw new ConfigError(`${key} must be an http:// or https:// URL${secret ? '' : `, got ${v}`}`);
  return v;
}

/** Validate a parsed TOML document into a full config with defaults. */
export function configFromObject(doc: Table, path: string): ZbkConfig {
  const store = table(doc.store, 'store');
  const url = str(store, 'url', 'store');
  if (!url) throw new ConfigError(`${path}: store.url is missing (run "zbk init --store <url>")`);
  if (!/^(s3:\/\/[^/]+|file:\/\/\/)/.test(url)) throw new ConfigError(`store.url must be s3://bucket[/prefix] or file:///absolute/dir, got ${url}`);
  const checksum = str(store, 'checksum_calculation', 'store', 'when_supported');
  if (checksum !== 'when_supported' && checksum !== 'when_required') throw new ConfigError('store.checksum_calculation must be "when_supported" or "when_required"');

  const upload = table(doc.upload, 'upload');
  const partSize = parseSize(upload.part_size ?? '32MiB', 'upload.part_size');
  const volumeSize = parseSize(upload.volume_size ?? '4GiB', 'upload.volume_size');
  if (partSize < 5 * MiB) throw new ConfigError('upload.part_size must be at least 5MiB (S3 minimum part size)');
  if (partSize > 4 * GiB) throw new ConfigError('upload.part_size must be at most 4GiB');
  if (volumeSize < partSize) throw new ConfigError('upload.volume_size must be at least upload.part_size');
  if (Math.ceil(volumeSize / partSize) > 10000) throw new ConfigError('upload.volume_size / upload.part_size exceeds the 10,000-part limit: raise part_size');
  // S3's largest object is 5 TiB; sealing adds well under 0.1%.
  if (volumeSize > 5 * 1024 * GiB * 0.999) throw new ConfigError('upload.volume_size must be below 5TiB (the largest S3 object, with room for sealing)');
  const parallel = num(upload, 'parallel', 'upload', 2);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw new ConfigError('upload.parallel must be an integer from 1 to 64');

  const retry = table(doc.retry, 'retry');
  const zfs = table(doc.zfs, 'zfs');
  const hooks = table(doc.hooks, 'hooks');
  const restore = table(doc.restore, 'restore');
  const retention = table(doc.retention, 'retention');
  const stateDir = str(doc, 'state_dir', 'config') ?? defaultStateDir();

  const datasetsRaw = doc.dataset ?? [];
  if (!Array.isArray(datasetsRaw)) throw new ConfigError('[[dataset]] must be an array of tables');
  const datasets: DatasetConfig[] = datasetsRaw.map((d, i) => {
    const t = table(d, `dataset[${i}]`);
    const name = str(t, 'name', `dataset[${i}]`);
    if (!name) throw new ConfigError(`dataset[${i}].name is missing`);
    const snapshotPattern = str(t, 'snapshot_pattern', `dataset[${i}]`);
    if (snapshotPattern !== undefined) {
      try {
        new RegExp(snapshotPattern);
      } catch {
        throw new ConfigError(`dataset[${i}].snapshot_pattern is not a valid regular expression`);
      }
    }
    const raw = t.raw;
    if (raw !== undefined && raw !== 'auto' && typeof raw !== 'boolean') throw new ConfigError(`dataset[${i}].raw must be "auto", true or false`);
    return { name, ...(snapshotPattern === undefined ? {} : { snapshotPattern }), ...(raw === undefined ? {} : { raw }) };
  });

  const protectBase = str(zfs, 'protect_base', 'zfs', 'bookmark');
  if (protectBase !== 'bookmark' && protectBase !== 'hold') throw new ConfigError('zfs.protect_base must be "bookmark" or "hold"');
  const tier = str(restore, 'tier', 'restore', 'Bulk');
  if (tier !== 'Bulk' && tier !== 'Standard') throw new ConfigError('restore.tier must be "Bulk" or "Standard"');
  const webhookFormat = str(hooks, 'webhook_format', 'hooks', 'healthchecks');
  if (webhookFormat !== 'healthchecks' && webhookFormat !== 'uptime-kuma' && webhookFormat !== 'ntfy') {
    throw new ConfigError('hooks.webhook_format must be "healthchecks", "uptime-kuma" or "ntfy"');
  }
  const endpoint = httpUrl(str(store, 'endpoint', 'store'), 'store.endpoint', false);
  const onSuccess = httpUrl(str(hooks, 'on_success', 'hooks'), 'hooks.on_success', true);
  const onFailure = httpUrl(str(hooks, 'on_failure', 'hooks'), 'hooks.on_failure', true);
  const metaStorageClass = str(store, 'meta_storage_class', 'store', 'STANDARD')!;
  if (metaStorageClass === 'GLACIER' || metaStorageClass === 'DEEP_ARCHIVE') {
    throw new ConfigError(`store.meta_storage_class must be instantly readable (the key file, stream records and manifest mirrors live there), not ${metaStorageClass}`);
  }
  const mirrors = num(doc, 'mirrors', 'config', 10);
  if (!Number.isInteger(mirrors) || mirrors < 1) throw new ConfigError('mirrors must be a whole number of at least 1');
  const timeoutSeconds = num(hooks, 'timeout_seconds', 'hooks', 300);
  if (!(timeoutSeconds >= 1 && timeoutSeconds <= 86400)) throw new ConfigError('hooks.timeout_seconds must be from 1 to 86400');
  const prices = table(doc.prices, 'prices');
  for (const [k, v] of Object.entries(prices)) {
    if (typeof v !== 'number') throw new ConfigError(`prices.${k}: must be a number`);
  }

  const cfg: ZbkConfig = {
    path,
    store: {
      url,
      endpoint,
      region: str(store, 'region', 'store', 'us-east-1')!,
      pathStyle: bool(store, 'path_style', 'store', false),
      dataStorageClass: str(store, 'data_storage_class', 'store', 'DEEP_ARCHIVE')!,
      metaStorageClass,
      checksumCalculation: checksum,
    },
    upload: { partSize, volumeSize, parallel },
    retry: {
      retries: num(retry, 'retries', 'retry', 8),
      minTimeoutMs: num(retry, 'min_timeout_ms', 'retry', 500),
      maxTimeoutMs: num(retry, 'max_timeout_ms', 'retry', 30000),
    },
    zfs: { zfs: argv(zfs.zfs, 'zfs.zfs', ['zfs']), zpool: argv(zfs.zpool, 'zfs.zpool', ['zpool']), protectBase },
    stateDir: resolve(stateDir),
    mirrors,
    passphraseFile: str(doc, 'passphrase_file', 'config'),
    datasets,
    hooks: {
      prePush: hooks.pre_push === undefined ? undefined : argv(hooks.pre_push, 'hooks.pre_push', []),
      postPush: hooks.post_push === undefined ? undefined : argv(hooks.post_push, 'hooks.post_push', []),
      timeoutSeconds,
      onSuccess,
      onFailure,
      webhookFormat,
    },
    restore: {
      ...(restore.free_egress_gb === undefined ? {} : { freeEgressGB: num(restore, 'free_egress_gb', 'restore', 100) }),
      reserveGB: num(restore, 'reserve_gb', 'restore', 10),
      tier,
      stagingDir: resolve(str(restore, 'staging_dir', 'restore') ?? join(stateDir, 'restore')),
    },
    prices: prices as Record<string, number>,
    retention: {
      keepLast: num(retention, 'keep_last', 'retention', 1),
      keepMonthly: num(retention, 'keep_monthly', 'retention', 0),
      keepYearly: num(retention, 'keep_yearly', 'retention', 0),
    },
  };
  return cfg;
}

/** Load and validate the config file at `path`. */
export function loadConfig(path: string): ZbkConfig {
  if (!existsSync(path)) throw new ConfigError(`no config file at ${path}: run "zbk init --store <url>" or pass --config`, 'NO_CONFIG');
  let doc: Table;
  try {
    doc = parse(readFileSync(path, 'utf8')) as Table;
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigError(`${path}: invalid TOML: ${msg}`);
  }
  return configFromObject(doc, path);
}

/** True when group or others may read the file (it can hold webhook secrets and paths). */
export function configTooOpen(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

/** Write a config document atomically with mode 0600. */
export function writeConfigFile(path: string, doc: Table): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, stringify(doc) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
