/**
 * `zbk doctor [--fix]`: everything an unattended backup needs, checked one
 * by one, each with a one-line fix. Checks never throw: a failure becomes a
 * `fail` row, so one broken piece (say, the network) does not hide the
 * verdict on the others. Later checks that depend on an earlier one (the
 * manifest needs the key, the key needs the store) report `skip`.
 *
 * Only `--fix` changes anything: it aborts orphan multipart uploads (under
 * the manifest lock, exactly like push does) and adds the lifecycle rule
 * that aborts stale uploads on S3.
 */
import { existsSync, statfsSync } from 'node:fs';
import type { Keyring } from '../crypto/types.js';
import { ConfigFileError, configTooOpen, type DatasetConfig } from '../config/config.js';
import { openKeyFile } from '../crypto/index.js';
import { KEY_FILE_KEY } from '../layout.js';
import { manifestPath, nearestExisting, openManifest, sodium, type ServiceContext } from './context.js';
import { passphraseFileRef, passphraseFileTooOpen, readPassphraseFile } from './passphrase.js';
import { s3Checks, orphanCheck, mirrorFreshness, clockSkewCheck } from './doctor-store.js';
import { messageOf, row, type CheckStatus, type DoctorCheck, type DoctorOptions } from './doctor-check.js';
import { NotFoundError } from '../store/errors.js';
import { ConfigError } from '../errors.js';
import type { ZfsCapabilities } from '../zfs/types.js';
import { describeProtection } from './push/base-protection.js';
import { rawForNewChain } from './push/send-flags.js';
import { resolveBtrfsDataset } from './push/btrfs-source.js';
import { sourceKindOf } from './push/source.js';
import type { SourceKind } from '../source/types.js';
import { PIN_ROOT } from '../btrfs/btrfs.js';
import { formatBytesPair } from '../cli/format.js';

export { messageOf, row, type CheckStatus, type DoctorCheck, type DoctorOptions } from './doctor-check.js';

export interface DoctorResult {
  ok: boolean;
  counts: Record<CheckStatus, number>;
  checks: DoctorCheck[];
}

function configCheck(ctx: ServiceContext): DoctorCheck {
  const path = ctx.config.path;
  try {
    if (configTooOpen(path)) return row('config file', 'fail', `${path} is readable by group or others (it may hold webhook secrets)`, `chmod 600 ${path}`);
    return row('config file', 'ok', `${path} (mode 0600)`);
  } catch (err) {
    return row('config file', 'fail', `cannot stat ${path}: ${messageOf(err)}`, 'run "zbk init" or pass --config');
  }
}

function passphraseSourceCheck(ctx: ServiceContext): DoctorCheck {
  const ref = passphraseFileRef(ctx.config.passphraseFile, ctx.config.path);
  const file = ref?.path;
  const described = ctx.passphrase.describe();
  if (!file) {
    if (described === 'none') {
      return row('passphrase source', 'fail', 'no passphrase file and no terminal', 'set ZBK_PASSPHRASE_FILE or passphrase_file in the config (mode 0600)');
    }
    return row('passphrase source', 'warn', `${described}: unattended runs (cron, systemd) will fail`, 'set passphrase_file in the config (or ZBK_PASSPHRASE_FILE in the unit) to a 0600 file');
  }
  try {
    readPassphraseFile(file, ref!.label);
    if (passphraseFileTooOpen(file)) return row('passphrase source', 'fail', `${file} is readable by group or others`, `chmod 600 ${file}`);
    return row('passphrase source', 'ok', `file ${file} (mode 0600)`);
  } catch (err) {
    return row('passphrase source', 'fail', messageOf(err), 'create the file with the passphrase on its first line, mode 0600');
  }
}

/**
 * Free space where a restore stages volumes (`[restore] staging_dir`,
 * default `<state_dir>/restore`; the nearest existing parent while it does
 * not exist yet) against one whole volume (`[upload] volume_size`) plus
 * 10% (sealing and filesystem overhead): a restore stages a volume
 * completely before it is received. Below that a warning, not a failure:
 * pushes do not need the space, and a restore may be far away.
 */
export function stagingSpaceCheck(ctx: ServiceContext): DoctorCheck {
  const name = 'restore staging space';
  const { stagingDir } = ctx.config.restore;
  const need = Math.ceil(ctx.config.upload.volumeSize * 1.1);
  const dir = nearestExisting(stagingDir);
  let free: number;
  try {
    const s = statfsSync(dir);
    free = s.bavail * s.bsize;
  } catch (err) {
    return row(name, 'warn', `cannot read the free space of ${dir}: ${messageOf(err)}`, 'check that the staging directory can be created');
  }
  const [freeText, needText] = formatBytesPair(free, need);
  const where = dir === stagingDir ? stagingDir : `${stagingDir} (on the filesystem of ${dir})`;
  if (free < need) {
    return row(
      name,
      'warn',
      `${freeText} free in ${where}; a restore stages whole volumes there and needs at least ${needText} (volume_size plus 10%)`,
      `free space there, or set [restore] staging_dir to a filesystem with ${needText} or more`,
    );
  }
  return row(name, 'ok', `${freeText} free in ${where} (a volume needs ${needText})`);
}

/** btrfs-progs and each configured btrfs dataset (a subvolume named by its real path). */
async function btrfsCheck(ctx: ServiceContext, datasets: DatasetConfig[]): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  try {
    const c = await ctx.btrfs.btrfsCapabilities();
    const proto = c.sendFlags.length > 0 ? `send ${c.sendFlags.join(' ')}` : `send protocol 1 only (kernel writes ${c.kernelSendProto})`;
    out.push(row('btrfs', 'ok', `btrfs-progs ${c.version ?? '?'}; ${proto}; base protection: zbk's read-only pin snapshot in <mount>/${PIN_ROOT}/<dataset uuid>/`));
  } catch (err) {
    out.push(row('btrfs', 'fail', `btrfs does not run: ${messageOf(err)}`, 'install btrfs-progs (apt install btrfs-progs)'));
    return out;
  }
  for (const d of datasets) {
    const name = `dataset ${d.name}`;
    try {
      await resolveBtrfsDataset(ctx.btrfs, d.name);
      out.push(row(name, 'ok', 'a btrfs subvolume'));
    } catch (err) {
      out.push(row(name, 'fail', messageOf(err), 'name the subvolume by its real absolute path in the [[dataset]] entry'));
    }
  }
  return out;
}

/** The checks of each snapshot source, for the configured datasets it serves. */
const SOURCE_CHECKS: Record<SourceKind, (ctx: ServiceContext, datasets: DatasetConfig[]) => Promise<DoctorCheck[]>> = { btrfs: btrfsCheck, zfs: zfsCheck };

/**
 * The snapshot tools the configured datasets need, and each dataset: every
 * source some dataset is on (btrfs first, as before), ZFS when none is
 * configured (the default source).
 */
async function sourceChecks(ctx: ServiceContext): Promise<DoctorCheck[]> {
  const byKind = new Map<SourceKind, DatasetConfig[]>();
  for (const d of ctx.config.datasets) byKind.set(sourceKindOf(d.name), [...(byKind.get(sourceKindOf(d.name)) ?? []), d]);
  if (byKind.size === 0) byKind.set('zfs', []);
  const out: DoctorCheck[] = [];
  for (const kind of ['btrfs', 'zfs'] as const) {
    const datasets = byKind.get(kind);
    if (datasets) out.push(...(await SOURCE_CHECKS[kind](ctx, datasets)));
  }
  return out;
}

/** zfs itself (implementation, version, features), the base protection, and each ZFS dataset. */
async function zfsCheck(ctx: ServiceContext, datasets: DatasetConfig[]): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  let c: ZfsCapabilities;
  try {
    c = await ctx.zfs.capabilities();
    const missing = (['bookmarks', 'rawSend', 'resumeTokens', 'sendEstimate'] as const).filter((k) => !c[k]);
    const detail = `${c.implementation}${c.version ? ` ${c.version}` : ''}${missing.length ? `; without ${missing.join(', ')}` : ''}`;
    out.push(row('zfs', c.implementation === 'unknown' ? 'warn' : 'ok', detail, 'install OpenZFS 2.x (zfsutils-linux)'));
  } catch (err) {
    out.push(row('zfs', 'fail', `zfs does not run: ${messageOf(err)}`, 'install OpenZFS (apt install zfsutils-linux) or set [zfs] zfs = ["sudo", "zfs"]'));
    return out;
  }
  out.push(row('base protection', 'ok', describeProtection(ctx.config.zfs.protectBase, c)));
  if (ctx.config.datasets.length === 0) {
    out.push(row('datasets', 'warn', 'no [[dataset]] configured: "zbk push" needs dataset arguments', 'add [[dataset]] name = "pool/ds" to the config'));
  }
  for (const d of datasets) out.push(await datasetCheck(ctx, c, d));
  return out;
}

/** The dataset exists, and its `raw` setting can be honoured (raw = true needs raw sends and native encryption). */
async function datasetCheck(ctx: ServiceContext, caps: ZfsCapabilities, d: DatasetConfig): Promise<DoctorCheck> {
  const name = `dataset ${d.name}`;
  try {
    if (!(await ctx.zfs.exists(d.name))) return row(name, 'fail', 'does not exist', 'fix the [[dataset]] name in the config');
    const raw = await rawForNewChain(ctx.zfs, caps, d.name, d.raw ?? 'auto');
    // A raw chain restores still locked with the dataset's own ZFS key: the
    // zbk passphrase alone does not bring the files back. Say so where users look.
    return row(
      name,
      'ok',
      raw
        ? 'exists; natively encrypted: a new chain is sent raw (zfs send -w), still encrypted with its own key — a restore needs that ZFS key (zfs load-key) as well as the zbk passphrase: keep a copy of it offline with the passphrase, or set raw = false'
        : 'exists',
    );
  } catch (err) {
    if (err instanceof ConfigError) return row(name, 'fail', messageOf(err), `set raw = "auto" or false in the [[dataset]] entry of ${d.name}`);
    return row(name, 'fail', messageOf(err), 'check the name and zfs permissions (zfs allow)');
  }
}

/** Store reachable, key file present, and the passphrase opens it. Returns the keyring when it does. */
async function storeAndKeyChecks(ctx: ServiceContext, out: DoctorCheck[]): Promise<Keyring | null> {
  let keyFile: Uint8Array;
  try {
    keyFile = await ctx.store.getBytes(KEY_FILE_KEY);
    out.push(row('store', 'ok', `${ctx.store.url} reachable`));
  } catch (err) {
    if (err instanceof NotFoundError) {
      out.push(row('store', 'ok', `${ctx.store.url} reachable`));
      out.push(row('key file', 'fail', `${KEY_FILE_KEY} is missing from ${ctx.store.url}`, 'restore it with "zbk key import --file <paper key>", or "zbk init" for a new repository'));
    } else {
      out.push(row('store', 'fail', `${ctx.store.url}: ${messageOf(err)}`, 'check store.url, store.endpoint, network and credentials'));
      out.push(row('key file', 'skip', 'store unreachable'));
    }
    return null;
  }
  try {
    const keyring = await openKeyFile(await sodium(), keyFile, await ctx.passphrase.get('open'));
    out.push(row('key file', 'ok', `key ${keyring.keyId} opens with the passphrase`));
    return keyring;
  } catch (err) {
    out.push(row('key file', 'fail', messageOf(err), 'use the passphrase the repository was created with ("zbk key passwd" changes it; "zbk key import" restores from paper)'));
    return null;
  }
}

async function manifestChecks(ctx: ServiceContext, keyring: Keyring | null, opts: DoctorOptions, out: DoctorCheck[]): Promise<void> {
  const path = manifestPath(ctx.config);
  if (!existsSync(path)) {
    out.push(row('manifest', 'fail', `no local manifest at ${path}`, 'run "zbk manifest rebuild"'));
    return;
  }
  let manifest;
  try {
    manifest = openManifest(ctx, keyring);
  } catch (err) {
    out.push(row('manifest', 'fail', messageOf(err), 'move the file aside and run "zbk manifest rebuild"'));
    return;
  }
  try {
    const report = manifest.integrityCheck();
    out.push(
      report.ok
        ? row('manifest', 'ok', `${path} passes its integrity check`)
        : row('manifest', 'fail', report.problems.slice(0, 2).join('; '), 'run "zbk manifest rebuild --force" (the old file is moved aside)'),
    );
    out.push(await mirrorFreshness(ctx, manifest));
    out.push(await orphanCheck(ctx, manifest, opts));
  } finally {
    manifest.close();
  }
}

/**
 * The report when the config does not load (missing, TOML syntax, unknown or
 * misspelt key, wrong type, bad value): its error, `file:line: ...`, as the
 * failing `config file` check with the one-line fix. Nothing else can be
 * checked without a config.
 */
export function configFailure(path: string, err: ConfigError): DoctorResult {
  const fix = err instanceof ConfigFileError ? err.fix : err.code === 'NO_CONFIG' ? 'run "zbk init --store <url>", or pass --config' : `correct it in ${path}`;
  const checks = [row('config file', 'fail', messageOf(err), fix), row('other checks', 'skip', 'the config does not load')];
  return { ok: false, counts: { ok: 0, warn: 0, fail: 1, skip: 1 }, checks };
}

/** Run every check. Never throws for a failed check; only for programming errors. */
export async function doctor(ctx: ServiceContext, opts: DoctorOptions = {}): Promise<DoctorResult> {
  const checks: DoctorCheck[] = [configCheck(ctx), passphraseSourceCheck(ctx), stagingSpaceCheck(ctx)];
  checks.push(...(await sourceChecks(ctx)));
  const keyring = await storeAndKeyChecks(ctx, checks);
  const storeOk = checks.find((c) => c.name === 'store')?.status === 'ok';
  if (storeOk) checks.push(...(await s3Checks(ctx, opts)));
  checks.push(await clockSkewCheck(ctx));
  if (storeOk) await manifestChecks(ctx, keyring, opts, checks);
  else checks.push(row('manifest', 'skip', 'store unreachable'));
  const counts: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) counts[c.status]++;
  return { ok: counts.fail === 0, counts, checks };
}
