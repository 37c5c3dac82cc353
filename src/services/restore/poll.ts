/**
 * What a restore step knows of its objects in the store (size, class,
 * restore state), polled with listings instead of one HEAD per volume: at
 * the start of the step one `ObjectStore.listRestoreStates` per listing
 * prefix (S3: ListObjectsV2 with OptionalObjectAttributes=RestoreStatus, one
 * request per 1,000 objects), so a poll of N volumes costs ⌈N/1000⌉ LISTs
 * plus a few.
 *
 * HEAD remains for what a listing cannot tell:
 * - a store without `listRestoreStates`, or one that refuses the listing
 *   (access denied: credentials without s3:ListBucket; not implemented):
 *   every volume is HEADed, as before, with a warning;
 * - an archive-class object the listing gave no state for (an S3 endpoint
 *   that ignores OptionalObjectAttributes, or AWS, which sends no
 *   RestoreStatus for an object without a restore). When any archive-class
 *   object of the step's listings carries a RestoreStatus the endpoint
 *   honours the parameter, and one without it is archived with no copy, so
 *   nothing is HEADed; and a due volume this job never asked for is asked
 *   for directly, the RestoreObject answer being its state (./thaw-batch.ts);
 * - a volume absent from a listing that should hold it: HEAD confirms it is
 *   missing (the volume is then damaged, ./damage.ts);
 * - a volume outside the listed prefixes.
 * A running thaw seen more than POLL_MAX_AGE_MS ago is looked at again (the
 * listing taken again, else a HEAD) before it is believed (a long step of
 * downloads); a copy's expiry and an
 * archived object without a request need no fresh look (keepCopy and the
 * RestoreObject answer settle them).
 *
 * Prefixes: `data/<stream>/` per stream of the volumes still to restore, or
 * the whole `data/` when the repository's objects (estimated from the
 * manifest) take fewer pages than the streams one by one (a long chain of
 * small incrementals).
 *
 * Cost: the LIST and HEAD requests of a poll are counted in the job's
 * spending (`spentByMonth[month].requests`, at the LIST and GET rates).
 */
import { existsSync } from 'node:fs';
import { DATA_PREFIX } from '../../layout.js';
import { AccessDeniedError, PermanentStoreError } from '../../store/errors.js';
import { ARCHIVE_CLASSES, type ObjectInfo, type RestoreListEntry, type RestoreState } from '../../store/object-store.js';
import { monthOf, type JobVolume } from './job.js';
import { isBlocked } from './damage.js';
import type { RestoreStep } from './step.js';

/** A running thaw shown by a listing older than this (step clock) is looked at again. */
export const POLL_MAX_AGE_MS = 10 * 60_000;
/** HEADs in flight at most when a listing could not tell. */
export const HEAD_CONCURRENCY = 16;
/** Objects per page of a listing (S3 ListObjectsV2). */
export const LIST_PAGE = 1000;

/** What a step knows of a volume's object. */
export interface ObjectState {
  size: number;
  storageClass: string;
  restore: RestoreState;
  /** From a HEAD only. */
  etag?: string;
}

/** Requests a poll made, for reports, benchmarks and the job's spending. */
export interface PollStats {
  /** Listings taken (refreshes). */
  polls: number;
  /** `listRestoreStates` calls. */
  listCalls: number;
  /** LIST requests (pages of 1,000 objects; at least one per call). */
  listRequests: number;
  listedObjects: number;
  /** HEAD requests the poll made (fallbacks). */
  heads: number;
}

interface Known {
  entry: RestoreListEntry;
  /** Step clock (ms) when it was seen. */
  at: number;
}

export class RestorePoll {
  readonly stats: PollStats = { polls: 0, listCalls: 0, listRequests: 0, listedObjects: 0, heads: 0 };
  private known = new Map<string, Known>();
  /** Key prefixes the last listing covered (a key under one of them and absent from it had no object). */
  private covered: string[] = [];

  constructor(private readonly step: RestoreStep) {}

  /** A listing was refused (see refusedListing): this step HEADs. */
  private refused = false;

  /** True when the store lists restore states (else every look is a HEAD). */
  get lists(): boolean {
    return !this.refused && typeof this.step.ctx.store.listRestoreStates === 'function';
  }

  /**
   * List the restore states of every volume the step may still touch (not
   * received, damaged or blocked, not staged on disk). No-op for a store
   * without `listRestoreStates`.
   */
  async refresh(): Promise<void> {
    const store = this.step.ctx.store;
    const listStates = store.listRestoreStates?.bind(store);
    if (!listStates || this.refused) return;
    const { job } = this.step;
    // Before the preflight (./preflight.ts) every volume not received is looked at, blocked or not.
    const wanted = job.volumes.filter(
      (v) => v.phase !== 'received' && v.phase !== 'damaged' && (!job.preflightDone || !isBlocked(job, v)) && !(v.phase === 'staged' && existsSync(this.step.path(v))),
    );
    if (wanted.length === 0) return;
    const prefixes = listingPrefixes(this.step, wanted);
    const at = this.step.ctx.now().getTime();
    const known = new Map<string, Known>();
    let requests = 0;
    for (const prefix of prefixes) {
      this.step.checkAbort();
      let listed: Map<string, RestoreListEntry>;
      try {
        listed = await listStates(prefix);
      } catch (err) {
        if (!refusedListing(err)) throw err;
        // Credentials without s3:ListBucket, or an endpoint that refuses the parameter: HEAD, as before.
        this.refused = true;
        this.known = new Map();
        this.covered = [];
        this.step.ctx.log.warn(`${(err as Error).message}: the restore states are read with one HEAD per volume instead of a listing`);
        return;
      }
      this.stats.listCalls++;
      this.stats.listedObjects += listed.size;
      requests += Math.max(1, Math.ceil(listed.size / LIST_PAGE));
      for (const [key, entry] of listed) known.set(key, { entry, at });
    }
    // An endpoint that put a RestoreStatus on one archived object honours the parameter: silence means "archived".
    const entries = [...known.values()].map((k) => k.entry);
    const honoured = entries.some((e) => ARCHIVE_CLASSES.has(e.storageClass) && (e.restore?.state === 'in-progress' || e.restore?.state === 'restored'));
    if (honoured) for (const e of entries) if (e.restore === null && ARCHIVE_CLASSES.has(e.storageClass)) e.restore = { state: 'archived' };
    this.known = known;
    this.covered = prefixes;
    this.stats.polls++;
    this.stats.listRequests += requests;
    this.spend(requests, 0);
  }

  /**
   * What the store says of `v`'s object now: the listing's entry, or a HEAD
   * (see the module comment). Null: the object is missing (the volume is
   * recorded damaged, RestoreStep.headOrDamaged).
   */
  async stateOf(v: JobVolume): Promise<ObjectState | null> {
    await this.forgetIfStale(v);
    return this.cached(v) ?? this.head(v);
  }

  /**
   * Like stateOf, for a guess that may be wrong at no cost (is a copy there
   * to extend, can a stream be received live): a failed HEAD is null and
   * records nothing.
   */
  async look(v: JobVolume): Promise<ObjectState | null> {
    await this.forgetIfStale(v);
    const cached = this.cached(v);
    if (cached) return cached;
    this.countHead();
    const info = await this.step.ctx.store.head(v.key).catch(() => null);
    if (info) this.remember(v, info);
    return info;
  }

  /** A running thaw seen more than POLL_MAX_AGE_MS ago: list again (or forget it, to HEAD it). */
  private async forgetIfStale(v: JobVolume): Promise<void> {
    const k = this.known.get(v.key);
    if (k?.entry.restore?.state !== 'in-progress' || this.step.ctx.now().getTime() - k.at <= POLL_MAX_AGE_MS) return;
    if (this.lists && this.covered.some((p) => v.key.startsWith(p))) await this.refresh();
    const again = this.known.get(v.key);
    if (again && this.step.ctx.now().getTime() - again.at > POLL_MAX_AGE_MS) this.known.delete(v.key);
  }

  /** The listing's (or an earlier HEAD's) state of `v`, when it tells one; no request. */
  cached(v: JobVolume): ObjectState | undefined {
    const e = this.known.get(v.key)?.entry;
    return e?.restore ? { size: e.size, storageClass: e.storageClass, restore: e.restore } : undefined;
  }

  /** The size and class `v`'s object was listed with; no request. Undefined: not listed. */
  listed(v: JobVolume): RestoreListEntry | undefined {
    return this.known.get(v.key)?.entry;
  }

    // The store says archived although we asked before: the copy expired before its download finished.  /** HEAD, in parallel (HEAD_CONCURRENCY), every volume of `vols` whose state no listing told. */
  async resolve(vols: readonly JobVolume[]): Promise<void> {
    const todo = vols.filter((v) => !this.cached(v));
    let next = 0;
    let failure: { err: unknown } | null = null;
    const worker = async (): Promise<void> => {
      while (next < todo.length && failure === null) {
        const v = todo[next++]!;
        try {
          this.step.checkAbort();
          await this.head(v);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, todo.length) }, worker));
    if (failure !== null) throw (failure as { err: unknown }).err;
  }

  /** HEAD `v` (a missing object makes it damaged) and remember what it said. */
  private async head(v: JobVolume): Promise<ObjectState | null> {
    this.countHead();
    const info: ObjectInfo | null = await this.step.headOrDamaged(v);
    if (!info) {
      this.known.delete(v.key);
      return null;
    }
    this.remember(v, info);
    return info;
  }

  private remember(v: JobVolume, info: ObjectInfo): void {
    this.known.set(v.key, { entry: { size: info.size, storageClass: info.storageClass, restore: info.restore }, at: this.step.ctx.now().getTime() });
  }

  private countHead(): void {
    this.stats.heads++;
    this.spend(0, 1);
  }

  /** What a RestoreObject answer says the state is now (the listing is older). */
  noteRequested(v: JobVolume, state: RestoreState | null): void {
    const k = this.known.get(v.key);
    if (!k) return;
    if (state === null) this.known.delete(v.key);
    else k.entry = { ...k.entry, restore: state };
  }

  /** The poll's requests in the job's spending of this month (saved with the job's next save). */
  private spend(lists: number, heads: number): void {
    const p = this.step.prices;
    const usd = (lists * p.listPer1000 + heads * p.getPer1000) / 1000;
    if (usd === 0) return;
    const s = (this.step.job.spentByMonth[monthOf(this.step.ctx.now())] ??= { retrieval: 0, requests: 0, tempStorage: 0 });
    s.requests += usd;
  }
}

/**
 * A listing the store will never give (no retry helps): access denied (a
 * policy without s3:ListBucket), or the request refused as not implemented
 * or invalid. The step falls back to HEAD.
 */
function refusedListing(err: unknown): boolean {
  if (err instanceof AccessDeniedError) return true;
  return err instanceof PermanentStoreError && ['NOT_IMPLEMENTED', 'INVALID_ARGUMENT', 'INVALID_REQUEST'].includes(err.code);
}

/** The directory prefix of a volume key (`data/<stream>/`). */
function streamPrefix(key: string): string {
  return key.slice(0, key.lastIndexOf('/') + 1);
}

/**
 * The prefixes to list for `vols`: one per stream, or `data/` as a whole
 * when that takes fewer LIST requests (the repository's volumes estimated
 * from the manifest's streams: stored size / volume size each).
 */
export function listingPrefixes(step: Pick<RestoreStep, 'job' | 'manifest'>, vols: readonly JobVolume[]): string[] {
  const perStream = new Map<string, number>();
  for (const v of step.job.volumes) {
    const p = streamPrefix(v.key);
    perStream.set(p, (perStream.get(p) ?? 0) + 1);
  }
  const prefixes = [...new Set(vols.map((v) => streamPrefix(v.key)))];
  if (!prefixes.every((p) => p.startsWith(DATA_PREFIX))) return prefixes;
  const byStream = prefixes.reduce((a, p) => a + Math.max(1, Math.ceil((perStream.get(p) ?? 1) / LIST_PAGE)), 0);
  if (byStream <= 1) return prefixes;
  let objects = 0;
  for (const s of step.manifest.streams()) {
    if (s.state === 'deleted') continue;
    objects += s.storedSize && s.volumeSize > 0 ? Math.ceil(s.storedSize / s.volumeSize) : 1;
  }
  const whole = Math.max(1, Math.ceil(objects / LIST_PAGE));
  return whole < byStream ? [DATA_PREFIX] : prefixes;
}

const polls = new WeakMap<RestoreStep, RestorePoll>();

/** The poll of `step` (made on first use; `refresh` it to list). */
export function pollOf(step: RestoreStep): RestorePoll {
  let p = polls.get(step);
  if (!p) {
    p = new RestorePoll(step);
    polls.set(step, p);
  }
  return p;
}
