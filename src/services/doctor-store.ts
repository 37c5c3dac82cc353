/**
 * The store-side checks of `zbk doctor`: S3 credentials, bucket region,
 * lifecycle rule, orphan uploads, mirror freshness and clock skew.
 */
import type { Manifest } from '../manifest/manifest.js';
import { listMirrors } from '../manifest/mirror.js';
import type { OpenedStore } from '../store/open-store.js';
import type { S3Store } from '../store/s3-store.js';
import { lockManifest, type ServiceContext } from './context.js';
import { abortOrphanUploads, findOrphanUploads } from './orphans.js';
import { messageOf, row, type DoctorCheck, type DoctorOptions } from './doctor-check.js';

/** S3 refuses requests signed more than 15 minutes off its clock. */
const SKEW_FAIL_SECONDS = 15 * 60;
/** Beyond this, snapshot ages and check verdicts start to mislead. */
const SKEW_WARN_SECONDS = 60;
/** Days after which the lifecycle rule `--fix` adds aborts an upload (push resumes well within that). */
const LIFECYCLE_DAYS = 7;

/** The unwrapped S3 store behind the context's store, or null (local store, test doubles). */
export function s3Of(ctx: ServiceContext): S3Store | null {
  return (ctx.store as Partial<OpenedStore>).s3 ?? null;
}

/** Credentials (STS), bucket region, lifecycle rule. Not applicable to local stores. */
export async function s3Checks(ctx: ServiceContext, opts: DoctorOptions): Promise<DoctorCheck[]> {
  const s3 = s3Of(ctx);
  if (!s3) return [row('credentials', 'skip', 'local store: no credentials needed')];
  const out: DoctorCheck[] = [];
  try {
    const id = await s3.callerIdentity();
    out.push(row('credentials', 'ok', id ? `${id.arn} (account ${id.account})` : 'no identity reported'));
  } catch (err) {
    out.push(row('credentials', 'fail', `STS GetCallerIdentity: ${messageOf(err)}`, 'check AWS_PROFILE / AWS_ACCESS_KEY_ID or the instance role'));
  }
  try {
    const region = await s3.bucketRegion();
    out.push(
      region === ctx.config.store.region
        ? row('bucket region', 'ok', region)
        : row('bucket region', 'warn', `the bucket is in ${region}, the config says ${ctx.config.store.region} (prices and requests use the config)`, `set store.region = "${region}" in ${ctx.config.path}`),
    );
  } catch (err) {
    out.push(row('bucket region', 'warn', `GetBucketLocation: ${messageOf(err)}`, 'grant s3:GetBucketLocation, or ignore on services without regions'));
  }
  try {
    if (await s3.hasAbortIncompleteUploadsRule()) out.push(row('lifecycle rule', 'ok', 'incomplete multipart uploads are aborted by a bucket rule'));
    else if (opts.fix) {
      await s3.putAbortIncompleteUploadsRule(LIFECYCLE_DAYS);
      out.push({ ...row('lifecycle rule', 'ok', 'no rule aborted incomplete uploads'), fixed: `added rule aborting incomplete uploads after ${LIFECYCLE_DAYS} days` });
    } else {
      out.push(row('lifecycle rule', 'warn', 'no lifecycle rule aborts incomplete multipart uploads (their parts are billed until aborted)', 'zbk doctor --fix (adds a 7-day AbortIncompleteMultipartUpload rule)'));
    }
  } catch (err) {
    out.push(row('lifecycle rule', 'warn', `GetBucketLifecycleConfiguration: ${messageOf(err)}`, 'grant s3:GetLifecycleConfiguration, or add the rule in the console'));
  }
  return out;
}

/** Multipart uploads the manifest does not know (billed forever). `fix` aborts them under the manifest lock. */
export async function orphanCheck(ctx: ServiceContext, manifest: Manifest, opts: DoctorOptions): Promise<DoctorCheck> {
  try {
    const orphans = (await findOrphanUploads(ctx.store, manifest, ctx.now())).filter((u) => u.abortable);
    if (orphans.length === 0) return row('orphan uploads', 'ok', 'none');
    const detail = `${orphans.length} multipart upload(s) unknown to the manifest (billed at Standard rates until aborted)`;
    if (!opts.fix) return row('orphan uploads', 'warn', detail, 'zbk doctor --fix (or the next zbk push) aborts them');
    let lock;
    try {
      lock = await lockManifest(ctx.config, { wait: false, command: 'zbk doctor --fix' });
    } catch {
      return row('orphan uploads', 'warn', `${detail}; another zbk holds the manifest lock`, 'run "zbk doctor --fix" again when it has finished');
    }
    try {
      // Re-read under the lock: a push that started meanwhile owns its uploads.
      const { aborted } = await abortOrphanUploads(ctx.store, manifest, ctx.now(), 'doctor');
      return { ...row('orphan uploads', 'ok', detail), fixed: `aborted ${aborted} upload(s)` };
    } finally {
      lock.release();
    }
  } catch (err) {
    return row('orphan uploads', 'fail', `listing uploads: ${messageOf(err)}`, 'grant s3:ListBucketMultipartUploads and s3:AbortMultipartUpload');
  }
}

/** Time encoded in a mirror key (`manifest/YYYYMMDDTHHMMSSZ-…`), written by our clock. */
function mirrorTime(key: string): Date | null {
  const m = /^manifest\/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(key);
  return m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`) : null;
}

/** The newest mirror must be at least as new as the newest completed push. */
export async function mirrorFreshness(ctx: ServiceContext, manifest: Manifest): Promise<DoctorCheck> {
  try {
    const mirrors = await listMirrors(ctx.store);
    const newest = mirrors[mirrors.length - 1];
    if (!newest) return row('manifest mirror', 'warn', 'no manifest mirror in the store: a new machine could rebuild only from stream records', 'run "zbk push" (every push mirrors the manifest)');
    const at = mirrorTime(newest.key) ?? newest.lastModified;
    let lastPush: Date | null = null;
    for (const s of manifest.streams()) if (s.completedAt && (!lastPush || s.completedAt > lastPush)) lastPush = s.completedAt;
    // Keys have whole seconds: compare at that precision.
    if (lastPush && Math.floor(lastPush.getTime() / 1000) > Math.floor(at.getTime() / 1000)) {
      return row('manifest mirror', 'warn', `newest mirror (${at.toISOString()}) is older than the last push (${lastPush.toISOString()})`, 'run "zbk push" again; check its warnings about mirroring');
    }
    return row('manifest mirror', 'ok', `${mirrors.length} mirror(s), newest ${at.toISOString()}`);
  } catch (err) {
    return row('manifest mirror', 'fail', `listing mirrors: ${messageOf(err)}`, 'check s3:ListBucket permission');
  }
}

/** Compare our clock with the S3 endpoint's Date header. */
export async function clockSkewCheck(ctx: ServiceContext): Promise<DoctorCheck> {
  if (!s3Of(ctx)) return row('clock', 'skip', 'local store: no server clock to compare');
  const endpoint = ctx.config.store.endpoint ?? `https://s3.${ctx.config.store.region}.amazonaws.com/`;
  try {
    const before = Date.now();
    const res = await fetch(endpoint, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    const after = Date.now();
    const date = res.headers.get('date');
    if (!date || Number.isNaN(Date.parse(date))) return row('clock', 'warn', 'the endpoint sent no Date header', 'make sure NTP (systemd-timesyncd, chrony) runs');
    // Date has whole seconds; our midpoint estimates when the server stamped it.
    const ours = ctx.now().getTime() - (after - (before + after) / 2);
    const skew = Math.round((ours - Date.parse(date)) / 1000);
    const abs = Math.abs(skew);
    const detail = `${abs}s ${skew >= 0 ? 'ahead of' : 'behind'} the server`;
    if (abs > SKEW_FAIL_SECONDS) return row('clock', 'fail', `${detail}: S3 rejects requests beyond 15 minutes`, 'enable NTP: timedatectl set-ntp true');
    if (abs > SKEW_WARN_SECONDS) return row('clock', 'warn', detail, 'enable NTP: timedatectl set-ntp true');
    return row('clock', 'ok', detail);
  } catch (err) {
    return row('clock', 'warn', `could not reach ${new URL(endpoint).host} for its Date header: ${messageOf(err)}`, 'check network access to the endpoint');
  }
}
