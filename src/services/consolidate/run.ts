/**
 * `zbk consolidate`: re-base a dataset's long chain on a new full stream
 * when the planner says it pays back, and delete what no kept snapshot
 * needs once that is free.
 *
 * Without `apply` it only reports (the plan, retention, the deletion
 * schedule). With `apply`, per dataset:
 *   1. under the lock: finish any deletion a killed run left; plan; if
 *      recommended, record the intent (`consolidate:<dataset>` in the kv table);
 *   2. push a new full of the latest pushed snapshot (PushService, which takes
 *      the lock itself and resumes an interrupted upload of it);
 *   3. under the lock: verify the new full in the store, mark the old
 *      chain's streams superseded (never one a kept snapshot still needs:
 *      checked again against the manifest of this moment), clear the intent;
 *   4. delete unneeded objects past their minimum storage duration (all of
 *      them with `allowEarlyDelete`, charges reported); the rest stays
 *      scheduled and a later `--apply` deletes it (the schedule is derived
 *      from the manifest each time, so nothing can go stale);
 *   5. mirror the manifest.
 * A run killed at any step leaves a consistent manifest; rerunning
 * `--apply` continues from the recorded intent / pending deletion.
 */
import { configPriceTable } from '../../cost/providers/index.js';
import type { Keyring } from '../../crypto/types.js';
import { priceTableWarnings, type PriceTable } from '../../cost/prices.js';
import { IntegrityError, LockedError, ManifestError, UsageError, ZbkError } from '../../errors.js';
import { AbortError } from '../../pipeline/errors.js';
import { describeHolder, type Lock } from '../../manifest/lock.js';
import { resolveChain } from '../../manifest/chain.js';
import { CONSOLIDATION_TIMINGS, type ConsolidationTiming } from '../../planner/consolidate-plan.js';
import type { Manifest } from '../../manifest/manifest.js';
import { writeMirror } from '../../manifest/mirror.js';
import type { StreamWithVolumes, UnneededObject } from '../../manifest/types.js';
import { lockManifest, openKeyring, openManifest, type ServiceContext } from '../context.js';
import { underWriterLease } from '../lease/with-lease.js';
import { crashPoint } from '../crash-point.js';
import { deleteUnneeded, finishPendingDeletion } from './delete.js';
import { planDataset, type DatasetPlan } from './report.js';
import { keptChainProblems, verifyStreamInStore } from './verify.js';
import { deletableObjects, retentionOf } from './retention.js';
import type { ScheduledDeletion } from './schedule.js';
import { push } from '../push.js';

export interface ConsolidateOptions {
  /** Default: every dataset in the manifest. */
  datasets?: string[];
  /** Act; otherwise report only. */
  apply?: boolean;
  /** Delete unneeded objects younger than their minimum storage duration too (the charge is reported). */
  allowEarlyDelete?: boolean;
  /** Planner horizon, months (default 24). */
  horizonMonths?: number;
  /** When a paying consolidation is recommended (default: the config's `[consolidate] timing`, else `interval`). */
  timing?: ConsolidationTiming;
  /** Wait for the manifest lock (default) or fail at once. */
  wait?: boolean;
}

export interface NewFull {
  streamId: string;
  snapshot: string;
  volumes: number;
  parts: number;
  storedBytes: number;
  /** Streams marked superseded. */
  superseded: string[];
}

export interface DatasetConsolidation extends DatasetPlan {
  /** An earlier `--apply` had started a consolidation that this run continued (or, when reporting, will continue). */
  resumed: boolean;
  consolidated: NewFull | null;
  /** Objects deleted by this run. */
  deleted: ScheduledDeletion[];
  /** Early-deletion charges of `deleted`, USD. */
  earlyDeletionCharges: number;
}

export interface ConsolidateResult {
  applied: boolean;
  at: string;
  datasets: DatasetConsolidation[];
  /** Keys of an interrupted deletion batch finished first. */
  finishedPending: string[];
  mirror: string | null;
  priceTableDate: string;
  warnings: string[];
}

interface Intent {
  latestGuid: string;
  latestName: string;
  /** Streams to mark superseded once the new full is verified. */
  supersede: string[];
  /** Stream ids of the dataset when the intent was recorded: the new full is the one not among them. */
  existing: string[];
  at: string;
}

const intentKey = (dataset: string): string => `consolidate:${dataset}`;

function readIntent(manifest: Manifest, dataset: string): Intent | null {
  const v = manifest.getValue(intentKey(dataset)) as Intent | undefined;
  if (v === undefined) return null;
  if (typeof v.latestGuid !== 'string' || typeof v.latestName !== 'string' || !Array.isArray(v.supersede) || !Array.isArray(v.existing)) {
    throw new ManifestError(`the consolidation record ${intentKey(dataset)} is malformed`, 'CONSOLIDATE_INTENT');
  }
  return v;
}

/** The complete full stream of the intent's snapshot pushed after the intent was recorded. */
function newFullOf(manifest: Manifest, dataset: string, intent: Intent): StreamWithVolumes | null {
  const existing = new Set(intent.existing);
  const s = manifest
    .streams(dataset)
    .find((x) => x.state === 'complete' && x.kind === 'full' && x.to.guid.toString() === intent.latestGuid && !existing.has(x.streamId));
  return s ? { ...s, volumes: manifest.volumes(s.streamId) } : null;
}

export class ConsolidateService {
  private readonly warnings: string[] = [];
  private readonly prices: PriceTable;

  /** Not readonly: a locked section swaps in the context whose store is guarded by the writer lease. */
  constructor(private ctx: ServiceContext) {
    this.prices = configPriceTable(ctx.config.store, ctx.config.prices);
  }

  async run(opts: ConsolidateOptions): Promise<ConsolidateResult> {
    const now = this.ctx.now();
    for (const w of priceTableWarnings(this.prices, now)) this.warn(w);
    if (opts.horizonMonths !== undefined && (!Number.isInteger(opts.horizonMonths) || opts.horizonMonths < 1)) {
      throw new UsageError('--horizon must be a positive number of months');
    }
    if (opts.timing !== undefined && !CONSOLIDATION_TIMINGS.includes(opts.timing)) {
      throw new UsageError(`--timing must be one of ${CONSOLIDATION_TIMINGS.join(', ')}`);
    }
    const base = { at: now.toISOString(), priceTableDate: this.prices.asOf, warnings: this.warnings };
    if (!opts.apply) {
      const datasets = await this.withManifest(null, async (m) => {
        const out: DatasetConsolidation[] = [];
        // Nothing changes while reporting: what retention no longer needs is worked out once for every dataset.
        const deletable = deletableObjects(m, this.ctx.config.retention);
        for (const ds of this.datasetsOf(m, opts)) {
          out.push({ ...(await this.plan(m, ds, opts, deletable)), resumed: readIntent(m, ds) !== null, consolidated: null, deleted: [], earlyDeletionCharges: 0 });
        }
        return out;
      });
      return { ...base, applied: false, datasets, finishedPending: [], mirror: null };
    }

    const keyring = await openKeyring(this.ctx);
    let finishedPending: string[] = [];
    const names = await this.locked(opts, keyring, async (m) => {
      const unneeded = new Set(deletableObjects(m, this.ctx.config.retention).map((o) => o.key));
      finishedPending = await finishPendingDeletion(m, this.ctx.store, unneeded, now);
      return this.datasetsOf(m, opts);
    });
    const datasets: DatasetConsolidation[] = [];
    // One dataset's failure (say, a damaged kept chain) must not keep the others from being
    // consolidated, nor the mirror from recording what did change: it is reported at the end.
    let failure: { error: unknown } | null = null;
    for (const ds of names) {
      try {
        datasets.push(await this.applyDataset(ds, opts, keyring));
      } catch (err) {
        if (err instanceof AbortError || err instanceof LockedError) throw err;
        if (failure) this.warn(`${ds}: ${err instanceof Error ? err.message : String(err)}`);
        else failure = { error: err };
      }
    }
    const changed = failure !== null || finishedPending.length > 0 || datasets.some((d) => d.consolidated || d.deleted.length > 0);
    crashPoint('consolidate-before-mirror');
    const mirror = changed ? await this.locked(opts, keyring, (m) => this.mirror(m, keyring)) : null;
    if (failure) throw failure.error;
    return { ...base, applied: true, datasets, finishedPending, mirror };
  }

  private datasetsOf(m: Manifest, opts: ConsolidateOptions): string[] {
    const known = m.datasets().map((d) => d.name);
    for (const d of opts.datasets ?? []) if (!known.includes(d)) throw new UsageError(`${d}: nothing pushed for this dataset`, 'NO_SUCH_DATASET');
    return opts.datasets && opts.datasets.length > 0 ? opts.datasets : known;
  }

  private plan(m: Manifest, dataset: string, opts: ConsolidateOptions, deletable?: readonly UnneededObject[]): Promise<DatasetPlan> {
    return planDataset(this.ctx, m, dataset, {
      allowEarlyDelete: opts.allowEarlyDelete ?? false,
      horizonMonths: opts.horizonMonths,
      timing: opts.timing ?? this.ctx.config.consolidate.timing,
      prices: this.prices,
      ...(deletable ? { deletable } : {}),
    });
  }

  private async applyDataset(dataset: string, opts: ConsolidateOptions, keyring: Keyring): Promise<DatasetConsolidation> {
    // 1. Decide (or pick up an earlier decision).
    const { intent, resumed } = await this.locked(opts, keyring, async (m) => {
      const earlier = readIntent(m, dataset);
      if (earlier) return { intent: earlier, resumed: true };
      const p = await this.plan(m, dataset, opts);
      if (!p.plan?.recommend || p.blocked || !p.latest) {
        if (p.plan?.recommend && p.blocked) this.warn(`${dataset}: consolidation recommended but not possible now: ${p.blocked}`);
        return { intent: null, resumed: false };
      }
      const fresh: Intent = {
        latestGuid: p.latest.guid,
        latestName: p.latest.name,
        supersede: p.supersedes,
        existing: m.streams(dataset).map((s) => s.streamId),
        at: this.ctx.now().toISOString(),
      };
      m.setValue(intentKey(dataset), fresh);
      m.logEvent('consolidate-started', dataset, { snapshot: fresh.latestName, supersede: fresh.supersede });
      crashPoint('consolidate-intent-recorded');
      return { intent: fresh, resumed: false };
    });

    // 2. The new full (push resumes an interrupted upload of it).
    if (intent) {
      const done = await this.withManifest(keyring, async (m) => newFullOf(m, dataset, intent) !== null);
      if (!done) {
        try {
          // Under push's lock: a concurrent consolidation may have made the new full meanwhile.
          await push(this.ctx, { datasets: [dataset], full: true, fullUnlessMadeSince: intent.existing, snapshot: intent.latestName, wait: opts.wait ?? true });
        } catch (err) {
          if (err instanceof ZbkError && err.code === 'NO_SUCH_SNAPSHOT') {
            await this.locked(opts, keyring, async (m) => m.setValue(intentKey(dataset), undefined));
            this.warn(`${dataset}: @${intent.latestName} was destroyed locally before its new full was uploaded; consolidation dropped`);
          } else throw err;
        }
      }
    }

    // 3–4. Verify and supersede; then delete what is due.
    return this.locked(opts, keyring, async (m) => {
      let consolidated: NewFull | null = null;
      const current = readIntent(m, dataset);
      if (current) consolidated = await this.settle(m, keyring, dataset, current);
      const p = await this.plan(m, dataset, opts);
      const due = p.schedule.due;
      if (due.length > 0) {
        const problems = await keptChainProblems(m, this.ctx.store, dataset, retentionOf(m, dataset, this.ctx.config.retention).keptGuids);
        if (problems.length > 0) {
          throw new IntegrityError(
            `${dataset}: nothing deleted: a kept snapshot's chain is no longer whole in the store (${problems.slice(0, 3).join('; ')}); run "zbk verify"`,
            'KEPT_CHAIN_DAMAGED',
          );
        }
      }
      await deleteUnneeded(m, this.ctx.store, due, this.ctx.now());
      if (due.length > 0) m.logEvent('consolidate-deleted', dataset, { objects: due.length, bytes: due.reduce((n, d) => n + d.bytes, 0) });
      const after = await this.plan(m, dataset, opts);
      return {
        ...after,
        resumed,
        consolidated,
        deleted: due,
        earlyDeletionCharges: due.reduce((n, d) => n + d.earlyDeletionCharge, 0),
      };
    });
  }

  /** Verify the intent's new full and mark what it supersedes; clears the intent. */
  private async settle(m: Manifest, keyring: Keyring, dataset: string, intent: Intent): Promise<NewFull> {
    const nf = newFullOf(m, dataset, intent);
    if (!nf) throw new ManifestError(`${dataset}: the new full of @${intent.latestName} is not recorded; run "zbk consolidate --apply" again`, 'CONSOLIDATE_INCOMPLETE');
    const problems = await verifyStreamInStore(this.ctx.store, keyring, nf);
    if (problems.length > 0) {
      throw new IntegrityError(`${dataset}: the new full stream ${nf.streamId} failed verification, nothing superseded: ${problems.slice(0, 3).join('; ')}`);
    }
    crashPoint('consolidate-verified');
    const supersede = this.safeToSupersede(m, dataset, intent.supersede);
    if (supersede.length > 0) m.markSuperseded(supersede, this.ctx.now());
    crashPoint('consolidate-superseded');
    m.setValue(intentKey(dataset), undefined);
    m.logEvent('consolidate-finished', dataset, { streamId: nf.streamId, superseded: supersede });
    return {
      streamId: nf.streamId,
      snapshot: nf.to.name,
      volumes: nf.volumes.length,
      parts: nf.volumes.reduce((n, v) => n + (v.partCount ?? 0), 0),
      storedBytes: nf.storedSize ?? 0,
      superseded: supersede,
    };
  }

  /**
   * The intent's streams still complete, minus any that a snapshot kept
   * NOW (retention may have changed since the plan) needs to resolve over
   * complete streams. (Restores could still reach it through superseded
   * streams while they are wholly stored; keeping them complete is the
   * conservative choice.)
   */
  private safeToSupersede(m: Manifest, dataset: string, wanted: readonly string[]): string[] {
    const complete = m.streams(dataset).filter((s) => s.state === 'complete');
    const sup = new Set(wanted.filter((id) => complete.some((s) => s.streamId === id)));
    for (const g of retentionOf(m, dataset, this.ctx.config.retention).keptGuids) {
      const guid = BigInt(g);
      try {
        resolveChain(dataset, complete.filter((s) => !sup.has(s.streamId)), guid);
      } catch {
        try {
          for (const s of resolveChain(dataset, complete, guid)) sup.delete(s.streamId);
        } catch {
          // Not restorable over complete streams even now: nothing superseding could break.
        }
      }
    }
    return [...sup];
  }

  private async mirror(m: Manifest, keyring: Keyring): Promise<string | null> {
    try {
      const r = await writeMirror(m, this.ctx.store, keyring, { keep: this.ctx.config.mirrors, storageClass: this.ctx.config.store.metaStorageClass, now: this.ctx.now });
      return r.key;
    } catch (err) {
      // Everything is recorded locally; the next push or consolidate mirrors again.
      this.warn(`could not write the manifest mirror: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  }

  private async withManifest<T>(keyring: Keyring | null, fn: (m: Manifest) => Promise<T>): Promise<T> {
    const m = openManifest(this.ctx, keyring);
    try {
      return await fn(m);
    } finally {
      m.close();
    }
  }

  private async locked<T>(opts: ConsolidateOptions, keyring: Keyring, fn: (m: Manifest) => Promise<T>): Promise<T> {
    const lock: Lock = await lockManifest(this.ctx.config, {
      wait: opts.wait ?? true,
      command: 'zbk consolidate',
      onWait: (h) => this.ctx.log.info(`waiting for ${describeHolder(h)} to finish…`),
    });
    try {
      // Each locked section writes under the writer lease; the push of a new full between them takes its own.
      return await underWriterLease(this.ctx, keyring, 'zbk consolidate --apply', async (leased) => {
        const outer = this.ctx;
        this.ctx = leased;
        try {
          return await this.withManifest(keyring, fn);
        } finally {
          this.ctx = outer;
        }
      }, { wait: opts.wait ?? true });
    } finally {
      lock.release();
    }
  }

  private warn(message: string): void {
    this.warnings.push(message);
    this.ctx.log.warn(message);
  }
}

/** Library entry point: report on (or with `apply`, carry out) consolidation. */
export function consolidate(ctx: ServiceContext, opts: ConsolidateOptions): Promise<ConsolidateResult> {
  return new ConsolidateService(ctx).run(opts);
}
