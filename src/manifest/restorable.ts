/**
 * Chain selection over the manifest: which streams can restore something,
 * the chain `chainFor` returns for a snapshot (healthy streams preferred),
 * and its complement, the volumes no kept snapshot's chain needs
 * (`unneededObjects`). The resolution itself is pure, in `./chain.ts`; this
 * module feeds it the manifest's streams and damage.
 */
import { bestChains, resolveChain } from './chain.js';
import type { ManifestDb } from './context.js';
import type { Damage } from './damage.js';
import type { Datasets } from './datasets.js';
import { DamagedChainError, SnapshotNotPushedError } from './errors.js';
import { d } from './rows.js';
import type { Streams } from './streams.js';
import type { StreamRow, StreamWithVolumes, UnneededObject } from './types.js';

export class Restorable {
  constructor(
    private readonly c: ManifestDb,
    private readonly streams: Streams,
    private readonly datasets: Datasets,
    private readonly damage: Damage,
  ) {}

  /**
   * The streams of `dataset` that can restore something: complete streams,
   * and superseded streams still wholly in the store (every volume
   * complete) that a full stream among them still leads to. The one
   * definition shared by `chainFor`, `unneededObjects` and retention (which
   * snapshots are pushed, which may be kept), so a snapshot retention keeps
   * is exactly one restore can reach.
   */
  restorableStreams(dataset: string): StreamRow[] {
    // A command asks this several times per dataset (chain health, then the
    // chain; retention, then the unneeded objects): at 50 k streams each
    // answer costs ~0.1 s. It is kept until the database changes: a change
    // through this connection moves total_changes(), a commit by another one
    // moves data_version; either one drops it.
    const stamp = this.stamp();
    if (this.memoStamp !== stamp) this.memo.clear();
    this.memoStamp = stamp;
    let rows = this.memo.get(dataset);
    if (!rows) this.memo.set(dataset, (rows = this.computeRestorable(dataset)));
    return [...rows];
  }

  /** Answers per dataset, all valid at `memoStamp`. */
  private readonly memo = new Map<string, StreamRow[]>();
  private memoStamp = '';
  private stampStmts: { changes: { get(): unknown }; version: { get(): unknown } } | null = null;

  private stamp(): string {
    this.stampStmts ??= { changes: this.c.db.prepare('SELECT total_changes()').pluck(), version: this.c.db.prepare('PRAGMA data_version').pluck() };
    return `${String(this.stampStmts.changes.get())}:${String(this.stampStmts.version.get())}`;
  }

  private computeRestorable(dataset: string): StreamRow[] {
    // Which superseded streams are wholly stored: one query, not one per stream.
    const whole = this.streams.wholeStreamIds(dataset, 'superseded');
    const candidates = this.streams.streams(dataset, ['complete', 'superseded']).filter((s) => s.state === 'complete' || whole.has(s.streamId));
    // A superseded incremental whose base chain lost objects restores nothing.
    // (Complete streams always stay, so a broken chain is reported as such.)
    const reached = bestChains(candidates);
    return candidates.filter((s) => s.state === 'complete' || s.from === null || reached.has(s.from.guid));
  }

  /**
   * The chain restoring `target`: over complete streams when they reach it
   * (after consolidation: the new full), else over the restorable streams
   * (an older snapshot reachable only through a superseded chain still
   * wholly stored). Throws the error of the wider resolution.
   */
  private resolveRestorable(dataset: string, target: bigint, complete: readonly StreamRow[], restorable: readonly StreamRow[], best?: ReturnType<typeof bestChains>): StreamRow[] {
    try {
      return resolveChain(dataset, complete, target);
    } catch {
      return resolveChain(dataset, restorable, target, best);
    }
  }

  /**
   * The streams (with volumes) that restore `snapshotGuid` (default: the
   * last pushed snapshot), full first, each incremental's base equal to the
   * previous link's target. Complete streams are preferred; a snapshot they
   * do not reach resolves through superseded streams still wholly stored
   * (see `restorableStreams`). Throws SnapshotNotPushedError, or
   * BrokenChainError naming the missing base snapshot.
   */
  chainFor(dataset: string, snapshotGuid?: bigint, opts: { includeDamaged?: boolean } = {}): StreamWithVolumes[] {
    const target = snapshotGuid ?? this.streams.lastPushedSnapshot(dataset)?.guid;
    if (target === undefined) throw new SnapshotNotPushedError(dataset);
    const complete = this.streams.completeStreams(dataset);
    const restorable = this.restorableStreams(dataset);
    const damaged = opts.includeDamaged ? new Set<string>() : this.damage.damagedStreamIds(dataset);
    const chain = this.resolveHealthy(dataset, target, complete, restorable, damaged);
    return chain.map((s) => ({ ...s, volumes: this.streams.volumes(s.streamId) }));
  }

  /**
   * `resolveRestorable` over the streams without a damaged volume. When only
   * a chain through damaged streams reaches `target`, DamagedChainError names
   * the damaged objects of that chain; other failures are thrown as they are.
   */
  private resolveHealthy(
    dataset: string,
    target: bigint,
    complete: readonly StreamRow[],
    restorable: readonly StreamRow[],
    damaged: ReadonlySet<string>,
    best?: ReturnType<typeof bestChains>,
  ): StreamRow[] {
    if (damaged.size === 0) return this.resolveRestorable(dataset, target, complete, restorable, best);
    const healthy = (s: StreamRow): boolean => !damaged.has(s.streamId);
    try {
      return this.resolveRestorable(dataset, target, complete.filter(healthy), restorable.filter(healthy));
    } catch (err) {
      let through: StreamRow[];
      try {
        through = this.resolveRestorable(dataset, target, complete, restorable, best);
      } catch {
        throw err;
      }
      const ids = new Set(through.map((s) => s.streamId));
      const objects = this.damage.damagedObjects(dataset).filter((o) => o.volumeIndex !== null && ids.has(o.streamId));
      const name = through[through.length - 1]!.to.name;
      throw new DamagedChainError(dataset, name, objects.map((o) => ({ key: o.key, snapshot: o.snapshot, problem: o.problem })));
    }
  }

  /**
   * Volumes no chain of a kept snapshot needs: deletion candidates.
   * `keepSnapshotGuids` holds decimal guids; the last pushed snapshot of every
   * dataset is always kept as well. Kept guids the manifest does not know
   * are ignored. Every kept snapshot's chain is the one `chainFor` returns
   * (complete streams preferred, else superseded streams still wholly
   * stored), so what is kept is exactly what a restore reads. Only objects of
   * complete, superseded or abandoned streams that exist in the store
   * (volume state complete) are returned; uploading streams are never
   * touched. Throws BrokenChainError if a kept snapshot's chain is broken
   * (deciding deletions then would be guesswork).
   */
  unneededObjects(keepSnapshotGuids: Set<string>): UnneededObject[] {
    const needed = new Set<string>();
    for (const ds of this.datasets.datasets()) {
      const complete = this.streams.completeStreams(ds.name);
      const restorable = this.restorableStreams(ds.name);
      const best = bestChains(restorable);
      const damaged = this.damage.damagedStreamIds(ds.name);
      const targets = new Set<bigint>();
      const last = this.streams.lastPushedSnapshot(ds.name);
      if (last) targets.add(last.guid);
      for (const s of restorable) if (keepSnapshotGuids.has(s.to.guid.toString())) targets.add(s.to.guid);
      for (const t of targets) {
        // The chain a restore reads (healthy streams preferred); a snapshot only a damaged chain
        // reaches keeps that chain (the damage may be repaired), never guesses.
        let chain: StreamRow[];
        try {
          chain = this.resolveHealthy(ds.name, t, complete, restorable, damaged, best);
        } catch (err) {
          if (!(err instanceof DamagedChainError)) throw err;
          chain = this.resolveRestorable(ds.name, t, complete, restorable, best);
        }
        for (const s of chain) needed.add(s.streamId);
      }
    }
    const rows = this.c.db
      .prepare(
        `SELECT v.object_key, v.stream_id, d.name AS dataset, s.state AS stream_state, v.stored_size, v.storage_class, v.uploaded_at
         FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
         WHERE v.state = 'complete' AND s.state IN ('complete', 'superseded', 'abandoned')
         ORDER BY v.object_key`,
      )
      .all() as {
      object_key: string;
      stream_id: string;
      dataset: string;
      stream_state: StreamRow['state'];
      stored_size: number | null;
      storage_class: string;
      uploaded_at: string | null;
    }[];
    return rows
      .filter((r) => !needed.has(r.stream_id))
      .map((r) => ({
        key: r.object_key,
        streamId: r.stream_id,
        dataset: r.dataset,
        streamState: r.stream_state,
        storedSize: r.stored_size,
        storageClass: r.storage_class,
        uploadedAt: d(r.uploaded_at),
      }));
  }
}
