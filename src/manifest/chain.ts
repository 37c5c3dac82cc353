/**
 * Restore-chain resolution, pure (no I/O): given a dataset's complete
 * streams, which ones restore a snapshot, in `zfs receive` order.
 *
 * Several chains may reach one snapshot (after consolidation a new full
 * stream coexists with the incrementals it replaces); the cheapest in stored
 * bytes wins, then the shortest, then the lowest stream ids (deterministic).
 */
import { BrokenChainError, SnapshotNotPushedError } from './errors.js';
import type { StreamRow } from './types.js';

interface Best {
  cost: number;
  length: number;
  /** The last stream of the chain; its `from` leads to the previous link. */
  stream: StreamRow;
}

function better(a: Best, b: Best | undefined): boolean {
  if (!b) return true;
  if (a.cost !== b.cost) return a.cost < b.cost;
  if (a.length !== b.length) return a.length < b.length;
  return a.stream.streamId < b.stream.streamId;
}

/**
 * Best chain for every snapshot reachable from a full stream, keyed by the
 * snapshot guid (decimal). Streams are visited in createtxg order: an
 * incremental's base is always older than its target, so every base is
 * settled before the streams built on it.
 */
export function bestChains(streams: readonly StreamRow[]): Map<bigint, Best> {
  const ordered = [...streams].sort((a, b) => (a.to.createtxg < b.to.createtxg ? -1 : a.to.createtxg > b.to.createtxg ? 1 : 0));
  const best = new Map<bigint, Best>();
  for (const s of ordered) {
    const own = s.storedSize ?? 0;
    let candidate: Best | undefined;
    if (s.from === null) {
      candidate = { cost: own, length: 1, stream: s };
    } else {
      const base = best.get(s.from.guid);
      if (base) candidate = { cost: base.cost + own, length: base.length + 1, stream: s };
    }
    if (candidate && better(candidate, best.get(s.to.guid))) best.set(s.to.guid, candidate);
  }
  return best;
}

/** Walk back from `target` to find the first base snapshot nothing ends at. */
function missingLink(dataset: string, streams: readonly StreamRow[], target: bigint): BrokenChainError | SnapshotNotPushedError {
  const endingAt = new Map<bigint, StreamRow[]>();
  for (const s of streams) {
    const list = endingAt.get(s.to.guid) ?? [];
    list.push(s);
    endingAt.set(s.to.guid, list);
  }
  const seen = new Set<bigint>();
  let guid = target;
  for (;;) {
    const ending = endingAt.get(guid);
    if (!ending) return new SnapshotNotPushedError(dataset, `snapshot guid ${target}`);
    seen.add(guid);
    // No full stream ends here (else the chain would resolve): follow an
    // incremental, preferring a base that itself has streams ending at it.
    const incs = ending.filter((s) => s.from !== null).sort((a, b) => (a.streamId < b.streamId ? -1 : 1));
    const next = incs.find((s) => endingAt.has(s.from!.guid) && !seen.has(s.from!.guid)) ?? incs[0]!;
    const from = next.from!;
    if (!endingAt.has(from.guid) || seen.has(from.guid)) return new BrokenChainError(dataset, from, next.streamId);
    guid = from.guid;
  }
}

/**
 * The streams that restore snapshot `target` of `dataset`, full stream first,
 * each incremental's `from` equal to the previous link's `to`.
 * `streams` must be the dataset's complete streams only.
 * Throws SnapshotNotPushedError or BrokenChainError (naming the missing link).
 */
export function resolveChain(dataset: string, streams: readonly StreamRow[], target: bigint, best = bestChains(streams)): StreamRow[] {
  const end = best.get(target);
  if (!end) throw missingLink(dataset, streams, target);
  // A base's best entry is settled before any stream built on it is visited,
  // so following `from` pointers retraces exactly the chain that was costed.
  const chain: StreamRow[] = [];
  for (let b: Best | undefined = end; b; b = b.stream.from ? best.get(b.stream.from.guid) : undefined) {
    chain.push(b.stream);
    if (chain.length > streams.length) throw new Error('internal: cycle in restore chain');
  }
  return chain.reverse();
}
