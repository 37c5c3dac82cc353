/**
 * A restore that meets a damaged object: the object is missing from the
 * store, or the bytes it returns fail authentication (or the volume's
 * SHA-256). Fetching it again would return the same bytes, and pay the same
 * egress, on every run; so the volume becomes `damaged` for good (in the job,
 * and in the manifest's damage table, where `zbk status`, `zbk check` and
 * later plans see it), and nothing of its stream or of a later stream of
 * the chain is requested or fetched again.
 *
 * What is still possible goes on: the streams before the damaged one are
 * received when the restore had already started (their thaws and downloads
 * are paid for), so the target ends at the newest snapshot still reachable.
 * A restore that had not spent anything yet is stopped before it does.
 * The next action (`blocked`) says which snapshots are restorable and the
 * remedy: `zbk push --full` while the source still has the data, or a plan
 * for an earlier snapshot that is still restorable.
 */
import { IntegrityError } from '../../errors.js';
import type { Manifest } from '../../manifest/manifest.js';
import { STORED_DATA_DAMAGED } from '../../pipeline/download.js';
import { chainHealth, snapshotList } from '../chain-health.js';
import type { JobVolume, NextAction, RestoreJob } from './job.js';

/** A damaged volume of a job, as results and `restore status` show it. */
export interface DamagedVolume {
  key: string;
  /** The snapshot the volume's stream ends at. */
  snapshot: string;
  problem: string;
}

/** What blocks a restore, what it can still do, and what to do about it. */
export interface RestoreBlock {
  damaged: DamagedVolume[];
  /** Snapshots of the chain already received into the target. */
  received: string[];
  /** Pushed snapshots of the dataset still restorable (through undamaged objects), oldest first. */
  restorable: string[];
  remedy: string;
}

/** An error of downloadVolume meaning the object in the store is damaged (not a staged file, not the network). */
export function isStoredDamage(err: unknown): err is IntegrityError {
  return err instanceof IntegrityError && err.code === STORED_DATA_DAMAGED;
}

/** Mark `v` damaged for good: in the job (the caller saves it) and in the manifest. */
export function markDamaged(manifest: Manifest, job: RestoreJob, v: JobVolume, problem: string, etagSeen: string | null, at: Date): void {
  noteDamage(job, v);
  v.phase = 'damaged';
  v.lastError = `${problem}; not fetched again`;
  manifest.recordDamage({ key: v.key, problem, foundBy: 'restore', etagSeen, at });
}

/**
 * `key` authenticated in a restore: a `mismatch` record of it (ETag or class
 * differs from the push) is disproved as damage and cleared. `zbk verify`
 * reports the mismatch again while the object differs from what was pushed.
 * True when a record was cleared.
 */
export function clearMismatch(manifest: Manifest, dataset: string, key: string): boolean {
  const d = manifest.damagedVolumes(dataset).find((o) => o.key === key);
  return d?.kind === 'mismatch' ? manifest.clearDamage(key) : false;
}

/** Keep `job.damage` up to date for `v`, found damaged now (before its phase changes). */
function noteDamage(job: RestoreJob, v: JobVolume): void {
  const beforeSpending = job.damage?.beforeSpending ?? !started(job);
  job.damage = { fromStream: Math.min(job.damage?.fromStream ?? v.streamIndex, v.streamIndex), beforeSpending };
}

/**
 * Volumes the manifest records as missing or proven bad (kind `bad`, found by
 * `zbk verify` or an earlier restore) become damaged in the job too, unless
 * already received: what verify found costs no GET here. A `mismatch` (only
 * the ETag or storage class differs from the push, size and sealed metadata
 * right) is not: the restore fetches it and authentication decides (see
 * `clearMismatch`). Returns the number newly marked.
 */
export function applyKnownDamage(manifest: Manifest, job: RestoreJob): number {
  const known = new Map(manifest.damagedVolumes(job.dataset).filter((o) => o.kind === 'bad').map((o) => [o.key, o]));
  let n = 0;
  for (const v of job.volumes) {
    const d = known.get(v.key);
    if (!d || v.phase === 'received' || v.phase === 'damaged') continue;
    noteDamage(job, v);
    v.phase = 'damaged';
    v.lastError = `${d.problem} (found by ${d.foundBy} at ${d.foundAt.toISOString()}); not fetched`;
    n++;
  }
  return n;
}

/** Whether the restore has cost anything yet (a thaw requested, bytes fetched, a stream received). */
function started(job: RestoreJob): boolean {
  return job.streams.some((s) => s.received) || job.volumes.some((v) => v.requestedAt !== null || v.downloadedBytes > 0);
}

/**
 * Whether the run must leave `v` alone: it is damaged, or its stream comes
 * at or after the first damaged one, or the damage became known before the
 * restore had spent anything. O(1): called for every volume in loops.
 */
export function isBlocked(job: RestoreJob, v: JobVolume): boolean {
  if (v.phase === 'damaged') return true;
  const d = job.damage;
  return d !== undefined && (d.beforeSpending || v.streamIndex >= d.fromStream);
}

/** What blocks `job`, or null when nothing is damaged. */
export function restoreBlock(manifest: Manifest, job: RestoreJob): RestoreBlock | null {
  const bad = job.volumes.filter((v) => v.phase === 'damaged');
  if (bad.length === 0) return null;
  const snap = new Map(job.streams.map((s) => [s.streamId, s.to.name]));
  const damaged = bad.map((v) => ({ key: v.key, snapshot: snap.get(v.streamId) ?? '', problem: v.lastError ?? 'damaged' }));
  const received = job.streams.filter((s) => s.received).map((s) => s.to.name);
  const health = chainHealth(manifest, job.dataset);
  const restorable = health.restorable;
  const ds = job.dataset;
  const target = job.snapshot.name;
  const ways: string[] = [];
  const newest = restorable.filter((n) => n !== target).at(-1);
  const holds = received.at(-1);
  let kept = '';
  if (restorable.includes(target)) {
    // A new chain reaches the snapshot (zbk push --full since): plan again.
    ways.push(`@${target} is restorable again through a newer chain: run "zbk restore plan ${ds} --reset"`);
  } else {
    if (holds !== undefined) kept = `; ${job.target ?? 'the target'} holds @${holds}${holds === newest ? ', the newest snapshot still restorable' : ''}`;
    if (restorable.length > 0) kept += ` (restorable: ${snapshotList(restorable)})`;
    if (newest !== undefined && holds !== newest) ways.push(`"zbk restore plan ${ds} --snapshot ${newest} --reset" restores @${newest} instead`);
    ways.push(`if ${ds} still has the data, "zbk push --full ${ds}" starts a new chain ("--dry-run" shows its cost first), then "zbk restore plan ${ds} --reset" restores from it`);
  }
  const first = damaged[0]!;
  return {
    damaged,
    received,
    restorable,
    remedy: `@${target} cannot be restored: ${first.key} (stream to @${first.snapshot}) is damaged${damaged.length > 1 ? ` (+${damaged.length - 1} more)` : ''}${kept}; ${ways.join('; or, ')}`,
  };
}

/** The `blocked` next action of a job nothing more can be done for. */
export function blockedAction(block: RestoreBlock): NextAction {
  return { kind: 'blocked', at: null, what: block.remedy };
}
