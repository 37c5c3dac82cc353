/**
 * Restore-chain resolution, pure (no I/O): given a dataset's complete
 * streams, which ones restore a snapshot, in `zfs receive` order.
 *
 * Several chains may reach one snapshot (after consolidation a new full
 * stream coexists with the incrementals it replaces); the cheapest in stored
 * bytes wins, then the shortest, then the lowest stream ids (deterministic).
 *
 * An incremental only follows a stream of its own kind, raw (`zfs send -w`)
 * or not: `zfs receive` refuses a raw incremental on top of a non-raw stream,
 * and a non-raw one on top of a raw stream needs the dataset's key loaded.
 * Streams recorded without send flags were never raw.
 */
import { BrokenChainError, SnapshotNotPushedError } from './errors.js';
import type { StreamRow } from './types.js';

interface Best {
  cost: number;
  length: number;
  /** The last stream of the chain. */
  stream: StreamRow;
  /** The chain up to the stream's base (null for a full stream). */
  prev: Best | null;
}

type Kind = 'raw' | 'plain';

function kindOf(s: StreamRow): Kind {
  return s.sendFlags?.includes('-w') ? 'raw' : 'plain';
}

function better(a: Best, b: Best | undefined): boolean {
  if (!b) return true;
  if (a.cost !== b.cost) return a.cost < b.cost;
  if (a.length !== b.length) return a.length < b.length;
  return a.stream.streamId < b.stream.streamId;
}

/**
 * Best chain for every snapshot reachable from a full stream, keyed by the
 * snapshot guid. Streams are visited in createtxg order: an incremental's
 * base is always older than its target, so every base is settled before the
 * streams built on it. An incremental extends the best chain of its own kind
 * (raw or not) ending at its base.
 */
export function bestChains(streams: readonly StreamRow[]): Map<bigint, Best> {
  const ordered = [...streams].sort((a, b) => (a.to.createtxg < b.to.createtxg ? -1 : a.to.createtxg > b.to.createtxg ? 1 : 0));
  const best = new Map<bigint, Best>();
  const ofKind = new Map<string, Best>();
  const key = (guid: bigint, kind: Kind): string => `${guid}:${kind}`;
  for (const s of ordered) {
    const own = s.storedSize ?? 0;
    const kind = kindOf(s);
    let candidate: Best | undefined;
    if (s.from === null) {
      candidate = { cost: own, length: 1, stream: s, prev: null };
    } else {
      const base = ofKind.get(key(s.from.guid, kind));
      if (base) candidate = { cost: base.cost + own, length: base.length + 1, stream: s, prev: base };
    }
    if (!candidate) continue;
    if (better(candidate, ofKind.get(key(s.to.guid, kind)))) ofKind.set(key(s.to.guid, kind), candidate);
    if (better(candidate, best.get(s.to.guid))) best.set(s.to.guid, candidate);
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
  let neededBy: StreamRow | null = null;
  for (;;) {
    const ending = endingAt.get(guid);
    if (!ending) return new SnapshotNotPushedError(dataset, `snapshot guid ${target}`);
    seen.add(guid);
    // No full stream of the right kind ends here (else the chain would resolve):
    // follow an incremental, preferring a base that itself has streams ending at it.
    const incs = ending.filter((s) => s.from !== null).sort((a, b) => (a.streamId < b.streamId ? -1 : 1));
    // Only streams of the other kind (raw or not) end at this base.
    if (incs.length === 0) return neededBy ? new BrokenChainError(dataset, neededBy.from!, neededBy.streamId) : new SnapshotNotPushedError(dataset, `snapshot guid ${target}`);
    const next = incs.find((s) => endingAt.has(s.from!.guid) && !seen.has(s.from!.guid)) ?? incs[0]!;
    const from = next.from!;
    if (!endingAt.has(from.guid) || seen.has(from.guid)) return new BrokenChainError(dataset, from, next.streamId);
    neededBy = next;
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
  // Each link points at the chain it extended: exactly the chain that was costed.
  const chain: StreamRow[] = [];
  for (let b: Best | null = end; b; b = b.prev) {
    chain.push(b.stream);
    if (chain.length > streams.length) throw new Error('internal: cycle in restore chain');
  }
  return chain.reverse();
}
