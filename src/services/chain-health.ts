/**
 * Is the backup of a dataset restorable? Reads the manifest only (the damage
 * `zbk verify` and restores recorded, and the pushed chains), so `zbk
 * status`, `zbk check`, `zbk push` and `zbk restore` all tell the same story
 * and none needs the store or the passphrase.
 *
 * A stream with a damaged volume restores nothing (`zfs receive` needs the
 * whole stream), and neither does any incremental on top of it; chains
 * avoid such streams (`Manifest.chainFor`). The way out is a new chain: `zbk
 * push --full`, which sends a full stream of the newest snapshot.
 */
import { bestChains } from '../manifest/chain.js';
import type { Manifest } from '../manifest/manifest.js';
import type { DamageRow } from '../manifest/types.js';

export interface DamagedObjectInfo {
  key: string;
  streamId: string;
  /** The snapshot the damaged object's stream ends at. */
  snapshot: string;
  /** Volume index, or null for a stream record. */
  volumeIndex: number | null;
  problem: string;
  foundBy: 'verify' | 'restore';
  foundAt: string;
}

export interface ChainHealth {
  dataset: string;
  /**
   * False when the newest pushed snapshot cannot be restored because every
   * chain to it includes a damaged volume. True when nothing was pushed.
   */
  ok: boolean;
  /** Short name of the newest pushed snapshot, or null. */
  latest: string | null;
  /** Damaged volumes in the chain of the newest snapshot (empty when ok). */
  brokenBy: DamagedObjectInfo[];
  /** Every damaged object of the dataset still in the store (volumes and stream records). */
  damaged: DamagedObjectInfo[];
  /** Pushed snapshots a restore can still reach through undamaged objects, oldest first. */
  restorable: string[];
  /** Pushed snapshots every chain of which includes a damaged volume, oldest first. */
  unrestorable: string[];
  /** What to do, or null when there is nothing to do. */
  remedy: string | null;
  /** One line for monitors (`zbk check`) when not ok, else null. */
  reason: string | null;
}

function info(o: DamageRow): DamagedObjectInfo {
  return { key: o.key, streamId: o.streamId, snapshot: o.snapshot, volumeIndex: o.volumeIndex, problem: o.problem, foundBy: o.foundBy, foundAt: o.foundAt.toISOString() };
}

/** "@a, @b, @c" (at most `max`, then "and N more"). */
export function snapshotList(names: readonly string[], max = 6): string {
  const shown = names.slice(-max).map((n) => `@${n}`);
  return names.length > max ? `${shown.join(', ')} (and ${names.length - max} older)` : shown.join(', ');
}

/** The advice for a dataset whose newest snapshot is not restorable. */
export function remedyFor(dataset: string, restorable: readonly string[]): string {
  const still = restorable.length > 0 ? `still restorable: ${snapshotList(restorable)}; ` : 'no pushed snapshot is restorable; ';
  return (
    `${still}run "zbk push --full ${dataset}" to start a new chain from the newest local snapshot ` +
    `("zbk push --full --dry-run ${dataset}" shows its cost first); a plain "zbk push" only adds incrementals to the broken chain`
  );
}

/** The health of `dataset`'s backup chains, from the manifest alone. */
export function chainHealth(manifest: Manifest, dataset: string): ChainHealth {
  const damagedRows = manifest.damagedObjects(dataset);
  const damaged = damagedRows.map(info);
  const badStreams = new Set(damagedRows.filter((o) => o.volumeIndex !== null).map((o) => o.streamId));
  const last = manifest.lastPushedSnapshot(dataset);
  const streams = manifest.restorableStreams(dataset);
  // Ends of pushed streams, oldest first (createtxg order), each once.
  const ends = new Map<bigint, { name: string; createtxg: bigint }>();
  for (const s of streams) ends.set(s.to.guid, { name: s.to.name, createtxg: s.to.createtxg });
  const ordered = [...ends.entries()].sort((a, b) => (a[1].createtxg < b[1].createtxg ? -1 : a[1].createtxg > b[1].createtxg ? 1 : 0));
  const reachable = bestChains(streams.filter((s) => !badStreams.has(s.streamId)));
  const restorable = ordered.filter(([g]) => reachable.has(g)).map(([, e]) => e.name);
  const unrestorable = ordered.filter(([g]) => !reachable.has(g)).map(([, e]) => e.name);

  let brokenBy: DamagedObjectInfo[] = [];
  if (last && badStreams.size > 0 && !reachable.has(last.guid)) {
    try {
      const ids = new Set(manifest.chainFor(dataset, last.guid, { includeDamaged: true }).map((s) => s.streamId));
      brokenBy = damaged.filter((o) => o.volumeIndex !== null && ids.has(o.streamId));
    } catch {
      brokenBy = [];
    }
  }
  const ok = brokenBy.length === 0;
  const first = brokenBy[0];
  return {
    dataset,
    ok,
    latest: last?.name ?? null,
    brokenBy,
    damaged,
    restorable,
    unrestorable,
    remedy: ok ? null : remedyFor(dataset, restorable),
    reason: first
      ? `${dataset}: chain broken, @${last!.name} cannot be restored: ${first.key} (stream to @${first.snapshot}): ${first.problem}` +
        (brokenBy.length > 1 ? ` (+${brokenBy.length - 1} more damaged)` : '') +
        `; run "zbk push --full ${dataset}"`
      : null,
  };
}
