/**
 * The configuration file (TOML): where it lives, what it holds, defaults and
 * validation. Everything else receives a validated `ZbkConfig`.
 *
 * Location: `--config`, else `ZBK_CONFIG`, else `/etc/zbk/config.toml` for
 * root, else `$XDG_CONFIG_HOME/zbk/config.toml` (`~/.config/zbk/config.toml`).
 *
 * The sections and keys are declared once, in `CONFIG_SCHEMA`
 * (./schema.ts): unknown or misspelt keys and values of the wrong type are
 * refused (`file:line: unknown key ... — did you mean ...?`, lines found by
 * ./locate.ts), and the loader below reads keys only through it.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import bytes from 'bytes';
import { parse, stringify, TomlError } from 'smol-toml';
import { choosePartSize, DEFAULT_PROVIDER, isProviderName, providerProfile, profileEndpoint, unknownProviderMessage } from '../cost/providers/index.js';
import { CONSOLIDATION_TIMINGS, type ConsolidationTiming } from '../planner/consolidate-plan.js';
import { ConfigError } from '../errors.js';
import { BandwidthSyntaxError, parseBandwidth, type BandwidthLimit } from './bandwidth.js';
import { KeyLines, type KeyPath } from './locate.js';
import { dotted, isTable, kindOf, schemaProblems, typeName, type SchemaKey, type SchemaSection } from './schema.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface StoreConfig {
  /** `[store] provider`: the profile (src/cost/providers) pricing and driving this store; absent (the loader always sets it): `aws-deep-archive`. */
  provider?: string;
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
  /** `[upload] limit`: the bandwidth limit of pushes (sealed bytes sent), a rate or a schedule; absent: none. `--limit-upload` overrides it. */
  limit?: BandwidthLimit;
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
  /** false: webhook messages say `dataset-1`, `@<snapshot>` instead of names (the webhook's service learns none). */
  includeNames: boolean;
}

export interface RestoreConfig {
  /** Free internet egress per calendar month, GB; absent: the price table's (`[prices] free_egress_gb_month`, default 100). */
  freeEgressGB?: number;
  /** GB of the monthly allowance left for other use. */
  reserveGB: number;
  tier: 'Bulk' | 'Standard';
  stagingDir: string;
  /** `[restore] limit`: the bandwidth limit of downloads (restore run, verify --deep); absent: none. `--limit-download` overrides it. */
  limit?: BandwidthLimit;
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
  /** `[btrfs] btrfs`: argv prefix of btrfs-progs (e.g. `["sudo", "btrfs"]`), for datasets named by an absolute path. */
  btrfs: { btrfs: string[] };
  /**
   * Directory for the manifest database, lock and caches: `state_dir` as
   * written, else `<base>/<repository id>/` (see `defaultStateDir`).
   */
  stateDir: string;
  /**
   * Set only when `state_dir` is not configured: the default of zbk before
   * state directories were per repository (`<base>`, e.g. /var/lib/zbk).
   * A manifest of this repository found there is moved into `stateDir`
   * once (src/services/context.ts, `settleStateDir`); one of another
   * repository is left alone.
   */
  legacyStateDir?: string;
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
  /** `[consolidate] timing`: when a paying consolidation is recommended (src/planner/consolidate-plan). */
  consolidate: { timing: ConsolidationTiming };
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

/** Where zbk keeps local state when the config names no `state_dir`: /var/lib/zbk for root, else $XDG_STATE_HOME/zbk (~/.local/state/zbk). */
export function defaultStateBase(): string {
  if (isRoot()) return '/var/lib/zbk';
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'zbk');
}

/**
 * A store URL as the store itself names it (`ObjectStore.url`) and the
 * manifest records it (`repository.store_url`): `s3://bucket/a/b` (empty
 * segments and the trailing slash dropped) or `file:///absolute/dir`
 * (resolved, no trailing slash). Expects a URL the config accepted.
 */
export function normalizedStoreUrl(url: string): string {
  const s3 = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (s3) return [`s3://${s3[1]!}`, ...(s3[2] ?? '').split('/').filter((x) => x !== '')].join('/');
  try {
    return pathToFileURL(resolve(fileURLToPath(url))).href;
  } catch {
    return url;
  }
}

/**
 * A stable id of a repository, known before its key is opened: 16 hex
 * digits of the SHA-256 of its normalized store URL. Two configs naming
 * the same bucket and prefix (or directory) get the same id, any other
 * bucket, prefix or directory another one.
 */
export function repositoryId(storeUrl: string): string {
  return createHash('sha256').update(normalizedStoreUrl(storeUrl)).digest('hex').slice(0, 16);
}

/**
 * The default state directory: `<base>/<repository id>/`, one per
 * repository, so several repositories on one machine work with default
 * settings (before, all shared `<base>` and each `init` moved the other's
 * manifest aside). An explicit `state_dir` is used as it is.
 */
export function defaultStateDir(storeUrl: string): string {
  return join(defaultStateBase(), repositoryId(storeUrl));
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

/**
 * A config error found in a file: the message starts `file:line: ` (or
 * `file:line:col: ` for TOML syntax) and `fix` says in one line what to
 * change. Neither ever holds a value (secrets); key names only.
 */
export class ConfigFileError extends ConfigError {
  constructor(
    message: string,
    readonly fix: string,
    code = 'CONFIG',
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message, code);
  }
}

/** Where the keys are: `file:line: ` prefixes for messages once the source text is known. */
class Origin {
  constructor(
    readonly file: string,
    private readonly lines?: KeyLines,
  ) {}

  lineOf(path: KeyPath): number | undefined {
    return this.lines?.line(path);
  }

  /** `file:line: `, `file: ` when the key has no line (a default), or nothing for a document that came from no file. */
  prefix(path: KeyPath): string {
    if (!this.lines) return '';
    const line = this.lineOf(path);
    return line === undefined ? `${this.file}: ` : `${this.file}:${line}: `;
  }

  error(path: KeyPath, message: string, fix: string, code = 'CONFIG'): ConfigFileError {
    const line = this.lines ? this.lineOf(path) : undefined;
    return new ConfigFileError(`${this.prefix(path)}${message}`, line === undefined ? fix : `${fix} (line ${line} of ${this.file})`, code, line);
  }
}

/**
 * One table of the document, read only through the keys `CONFIG_SCHEMA`
 * declares for its section (a key the schema does not declare does not
 * compile). Every key read is marked, so `assertAllRead` catches a declared
 * key the loader forgot (it would be silently ignored otherwise).
 */
class Section<S extends SchemaSection> {
  private readonly read = new Set<string>();

  constructor(
    private readonly origin: Origin,
    readonly section: S,
    private readonly t: Table,
    private readonly path: KeyPath,
    private readonly index?: number,
  ) {}

  /** The key as messages name it: `retention.keep_last`, `dataset[1].raw`, `mirrors`. */
  name(key: SchemaKey<S>): string {
    return dotted(this.section, key, this.index);
  }

  get(key: SchemaKey<S>): unknown {
    this.read.add(key);
    return this.t[key];
  }

  has(key: SchemaKey<S>): boolean {
    return this.get(key) !== undefined;
  }

  /** Refuse the value of `key`: `file:line: <dotted key> <problem>`. */
  error(key: SchemaKey<S>, problem: string, fix = `correct \`${key}\``): ConfigFileError {
    return this.origin.error([...this.path, key], `${this.name(key)} ${problem}`, fix);
  }

  str(key: SchemaKey<S>): string | undefined;
  str(key: SchemaKey<S>, def: string): string;
  str(key: SchemaKey<S>, def?: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v !== 'string') throw this.error(key, `must be a string, got ${typeName(v)}`);
    return v;
  }

  num(key: SchemaKey<S>, def: number): number {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw this.error(key, 'must be a non-negative number');
    return v;
  }

  bool(key: SchemaKey<S>, def: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v !== 'boolean') throw this.error(key, 'must be true or false');
    return v;
  }

  argv(key: SchemaKey<S>, def: string[]): string[] {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v === 'string' && v.length > 0) return [v];
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x.length > 0)) return v as string[];
    throw this.error(key, 'must be a command name or a non-empty array of arguments');
  }

  size(key: SchemaKey<S>, def: string): number {
    const v = this.get(key);
    try {
      return parseSize(v ?? def, this.name(key));
    } catch (err) {
      if (err instanceof ConfigError) throw this.error(key, `is not a size: ${JSON.stringify(v)} (use e.g. "64MiB" or "4GiB")`, `write \`${key}\` as e.g. "64MiB" or "4GiB"`);
      throw err;
    }
  }

  /** A bandwidth limit (src/config/bandwidth.ts), or undefined when the key is absent. */
  bandwidth(key: SchemaKey<S>): BandwidthLimit | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    const fix = `write \`${key}\` as e.g. "2MiB/s", "off" or "08:00-23:00=2MiB/s, 23:00-08:00=off"`;
    if (typeof v !== 'string') throw this.error(key, `must be a rate in quotes or a schedule, got ${typeName(v)}`, fix);
    try {
      return parseBandwidth(v);
    } catch (err) {
      if (err instanceof BandwidthSyntaxError) throw this.error(key, `is not a bandwidth limit: ${err.message}`, fix);
      throw err;
    }
  }

  /** An http(s) URL, or undefined; a `secret` URL (webhooks carry tokens) is never quoted. */
  httpUrl(key: SchemaKey<S>): string | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    let ok = false;
    try {
      const u = new URL(v);
      ok = u.protocol === 'https:' || u.protocol === 'http:';
    } catch {
      ok = false;
    }
    const secret = kindOf(this.section, key) === 'secret';
    if (!ok) throw this.error(key, `must be an http:// or https:// URL${secret ? '' : `, got ${v}`}`);
    return v;
  }

  /** Every entry, for tables whose keys are data ([prices]). */
  entries(): [string, unknown][] {
    for (const k of Object.keys(this.t)) this.read.add(k);
    return Object.entries(this.t);
  }

  /** A key present and declared but never read means the loader and the schema drifted apart: a programming error. */
  assertAllRead(): void {
    for (const k of Object.keys(this.t)) {
      if (kindOf(this.section, k) !== undefined && !this.read.has(k)) throw new Error(`internal: config key ${dotted(this.section, k, this.index)} is declared but not read`);
    }
  }
}

/**
 * Validate a parsed TOML document into a full config with defaults. Unknown
 * sections and keys and values of the wrong type are refused first, the
 * first of them (by line, when `lines` locates them) in the message.
 */
export function configFromObject(doc: Table, path: string, lines?: KeyLines): ZbkConfig {
  const origin = new Origin(path, lines);
  const problems = schemaProblems(doc);
  if (problems.length > 0) {
    const byLine = problems
      .map((p, i) => ({ p, i, line: origin.lineOf(p.path) ?? Infinity }))
      .sort((a, b) => a.line - b.line || a.i - b.i)
      .map((x) => x.p);
    const first = byLine[0]!;
    const more = byLine.length > 1 ? ` (and ${byLine.length - 1} more problem${byLine.length > 2 ? 's' : ''} in this file)` : '';
    throw origin.error(first.path, `${first.message}${more}`, first.fix, first.code);
  }

  const sections: Section<SchemaSection>[] = [];
  const open = <S extends SchemaSection>(s: S, t: unknown, p: KeyPath, index?: number): Section<S> => {
    const sec = new Section(origin, s, isTable(t) ? t : {}, p, index);
    sections.push(sec as unknown as Section<SchemaSection>);
    return sec;
  };
  const root = open('root', doc, []);
  const store = open('store', doc.store, ['store']);
  const url = store.str('url');
  if (!url) throw new ConfigError(`${path}: store.url is missing (run "zbk init --store <url>")`);
  if (!/^(s3:\/\/[^/]+|file:\/\/\/)/.test(url)) throw store.error('url', `must be s3://bucket[/prefix] or file:///absolute/dir, got ${url}`);
  const provider = store.str('provider', DEFAULT_PROVIDER);
  if (!isProviderName(provider)) throw store.error('provider', unknownProviderMessage(provider));
  const profile = providerProfile(provider);
  const checksum = store.str('checksum_calculation', profile.addressing.checksumCalculation);
  if (checksum !== 'when_supported' && checksum !== 'when_required') throw store.error('checksum_calculation', 'must be "when_supported" or "when_required"');

  const upload = open('upload', doc.upload, ['upload']);
  const volumeSize = upload.size('volume_size', '4GiB');
  // Unset: 32 MiB, raised so a volume needs at most the provider's part limit (Scaleway: 1,000); set: refused when it would need more.
  let partSize = upload.size('part_size', '32MiB');
  try {
    partSize = choosePartSize(volumeSize, upload.has('part_size') ? partSize : undefined, 32 * MiB, profile.multipart).partSize;
  } catch (e) {
    if (e instanceof ConfigError) throw origin.error(['upload', upload.has('part_size') ? 'part_size' : 'volume_size'], e.message, 'raise part_size');
    throw e;
  }
  if (partSize < 5 * MiB) throw upload.error('part_size', 'must be at least 5MiB (S3 minimum part size)');
  if (partSize > 4 * GiB) throw upload.error('part_size', 'must be at most 4GiB');
  // Blame the volume size when it is set, else the part size (the volume size is the default).
  const sizeKey = upload.has('volume_size') ? 'volume_size' : 'part_size';
  if (volumeSize < partSize) throw origin.error(['upload', sizeKey], 'upload.volume_size must be at least upload.part_size', 'raise volume_size or lower part_size');
  if (Math.ceil(volumeSize / partSize) > 10000) {
    throw origin.error(['upload', sizeKey], 'upload.volume_size / upload.part_size exceeds the 10,000-part limit: raise part_size', 'raise part_size');
  }
  // S3's largest object is 5 TiB; sealing adds well under 0.1%.
  if (volumeSize > 5 * 1024 * GiB * 0.999) throw upload.error('volume_size', 'must be below 5TiB (the largest S3 object, with room for sealing)');
  const parallel = upload.num('parallel', 2);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw upload.error('parallel', 'must be an integer from 1 to 64');
  const uploadLimit = upload.bandwidth('limit');

  const retry = open('retry', doc.retry, ['retry']);
  const zfs = open('zfs', doc.zfs, ['zfs']);
  const btrfs = open('btrfs', doc.btrfs, ['btrfs']);
  const hooks = open('hooks', doc.hooks, ['hooks']);
  const restore = open('restore', doc.restore, ['restore']);
  const retention = open('retention', doc.retention, ['retention']);
  const consolidateSection = open('consolidate', doc.consolidate, ['consolidate']);
  const timing = consolidateSection.str('timing', 'interval') as ConsolidationTiming;
  if (!CONSOLIDATION_TIMINGS.includes(timing)) throw consolidateSection.error('timing', `must be ${CONSOLIDATION_TIMINGS.map((t) => `"${t}"`).join(' or ')}`);
  const explicitStateDir = root.str('state_dir');
  const stateDir = explicitStateDir ?? defaultStateDir(url);

  const datasetsRaw = Array.isArray(doc.dataset) ? (doc.dataset as unknown[]) : [];
  const datasets: DatasetConfig[] = datasetsRaw.map((d, i) => {
    const t = open('dataset', d, ['dataset', i], i);
    const name = t.str('name');
    if (!name) throw origin.error(['dataset', i], `dataset[${i}].name is missing`, 'add name = "pool/dataset" to the [[dataset]] entry');
    const snapshotPattern = t.str('snapshot_pattern');
    if (snapshotPattern !== undefined) {
      try {
        new RegExp(snapshotPattern);
      } catch {
        throw t.error('snapshot_pattern', 'is not a valid regular expression');
      }
    }
    const raw = t.get('raw');
    if (raw !== undefined && raw !== 'auto' && typeof raw !== 'boolean') throw t.error('raw', 'must be "auto", true or false');
    return { name, ...(snapshotPattern === undefined ? {} : { snapshotPattern }), ...(raw === undefined ? {} : { raw }) };
  });

  const protectBase = zfs.str('protect_base', 'bookmark');
  if (protectBase !== 'bookmark' && protectBase !== 'hold') throw zfs.error('protect_base', 'must be "bookmark" or "hold"');
  const tier = restore.str('tier', 'Bulk');
  const restoreLimit = restore.bandwidth('limit');
  if (tier !== 'Bulk' && tier !== 'Standard') throw restore.error('tier', 'must be "Bulk" or "Standard"');
  const webhookFormat = hooks.str('webhook_format', 'healthchecks');
  if (webhookFormat !== 'healthchecks' && webhookFormat !== 'uptime-kuma' && webhookFormat !== 'ntfy') {
    throw hooks.error('webhook_format', 'must be "healthchecks", "uptime-kuma" or "ntfy"');
  }
  const region = store.str('region', profile.regions[0] ?? 'us-east-1');
  const endpoint = store.httpUrl('endpoint') ?? profileEndpoint(profile, region);
  const onSuccess = hooks.httpUrl('on_success');
  const onFailure = hooks.httpUrl('on_failure');
  const metaStorageClass = store.str('meta_storage_class', profile.metaStorageClass);
  if (metaStorageClass === 'GLACIER' || metaStorageClass === 'DEEP_ARCHIVE') {
    throw store.error('meta_storage_class', `must be instantly readable (the key file, stream records and manifest mirrors live there), not ${metaStorageClass}`);
  }
  const mirrors = root.num('mirrors', 10);
  if (!Number.isInteger(mirrors) || mirrors < 1) throw root.error('mirrors', 'must be a whole number of at least 1');
  const timeoutSeconds = hooks.num('timeout_seconds', 300);
  if (!(timeoutSeconds >= 1 && timeoutSeconds <= 86400)) throw hooks.error('timeout_seconds', 'must be from 1 to 86400');
  const pricesSec = open('prices', doc.prices, ['prices']);
  const prices: Record<string, number> = {};
  for (const [k, v] of pricesSec.entries()) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw pricesSec.error(k, 'must be a non-negative number');
    prices[k] = v;
  }

  const cfg: ZbkConfig = {
    path,
    store: {
      provider,
      url,
      endpoint,
      region,
      pathStyle: store.bool('path_style', profile.addressing.pathStyle),
      dataStorageClass: store.str('data_storage_class', profile.dataStorageClass),
      metaStorageClass,
      checksumCalculation: checksum,
    },
    upload: { partSize, volumeSize, parallel, ...(uploadLimit ? { limit: uploadLimit } : {}) },
    retry: {
      retries: retry.num('retries', 8),
      minTimeoutMs: retry.num('min_timeout_ms', 500),
      maxTimeoutMs: retry.num('max_timeout_ms', 30000),
    },
    zfs: { zfs: zfs.argv('zfs', ['zfs']), zpool: zfs.argv('zpool', ['zpool']), protectBase },
    btrfs: { btrfs: btrfs.argv('btrfs', ['btrfs']) },
    stateDir: resolve(stateDir),
    ...(explicitStateDir === undefined ? { legacyStateDir: defaultStateBase() } : {}),
    mirrors,
    passphraseFile: root.str('passphrase_file'),
    datasets,
    hooks: {
      prePush: hooks.has('pre_push') ? hooks.argv('pre_push', []) : undefined,
      postPush: hooks.has('post_push') ? hooks.argv('post_push', []) : undefined,
      timeoutSeconds,
      onSuccess,
      onFailure,
      webhookFormat,
      includeNames: hooks.bool('include_names', true),
    },
    restore: {
      ...(restore.has('free_egress_gb') ? { freeEgressGB: restore.num('free_egress_gb', 100) } : {}),
      reserveGB: restore.num('reserve_gb', 10),
      tier,
      stagingDir: resolve(restore.str('staging_dir') ?? join(stateDir, 'restore')),
      ...(restoreLimit ? { limit: restoreLimit } : {}),
    },
    prices,
    retention: {
      keepLast: retention.num('keep_last', 1),
      keepMonthly: retention.num('keep_monthly', 0),
      keepYearly: retention.num('keep_yearly', 0),
    },
    consolidate: { timing },
  };
  for (const s of sections) s.assertAllRead();
  return cfg;
}

/** Load and validate the config file at `path`: TOML syntax errors as `file:line:col: invalid TOML: <reason>`, key errors as `file:line: ...`. */
export function loadConfig(path: string): ZbkConfig {
  if (!existsSync(path)) throw new ConfigError(`no config file at ${path}: run "zbk init --store <url>" or pass --config`, 'NO_CONFIG');
  const source = readFileSync(path, 'utf8');
  let doc: Table;
  try {
    doc = parse(source) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      // The first line only: the rest is smol-toml's code block, which quotes the file (it may hold a webhook token).
      const reason = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigFileError(`${path}:${err.line}:${err.column}: invalid TOML: ${reason}`, `fix the TOML syntax at line ${err.line}, column ${err.column} of ${path}`, 'CONFIG_SYNTAX', err.line, err.column);
    }
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigFileError(`${path}: invalid TOML: ${msg}`, `fix the TOML syntax of ${path}`, 'CONFIG_SYNTAX');
  }
  return configFromObject(doc, path, KeyLines.scan(source));
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
