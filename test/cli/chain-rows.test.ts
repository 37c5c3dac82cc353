/** `zbk status` rows of a long chain: the full, the newest links and every damaged link; healthy runs between them summed. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chainRows, isElided } from '../../src/cli/chain-rows.js';
import type { ChainEntry } from '../../src/services/status.js';

const link = (i: number, damaged: string[] = []): ChainEntry => ({
  streamId: `id${i}`,
  kind: i === 0 ? 'full' : 'incremental',
  from: i === 0 ? null : `s${i - 1}`,
  to: `s${i}`,
  snapshotCreated: '2026-01-01T00:00:00.000Z',
  plaintextBytes: 100 + i,
  storedBytes: 200 + i,
  objects: 1,
  pushedAt: null,
  damaged,
});

test('a 200-link chain prints the full, one summary row, and the 10 newest; a damaged link in the middle is never summed away', () => {
  const chain = Array.from({ length: 200 }, (_, i) => link(i, i === 50 ? ['data/x/50'] : []));
  const rows = chainRows(chain);
  const shown = rows.filter((r) => !isElided(r)).map((r) => (r as ChainEntry).to);
  assert.deepEqual(shown, ['s0', 's50', ...Array.from({ length: 10 }, (_, k) => `s${190 + k}`)]);
  const runs = rows.filter(isElided);
  assert.deepEqual(runs.map((r) => [r.count, r.from, r.to]), [[49, 's1', 's49'], [139, 's51', 's189']]);
  // The sums are the links' own: nothing is lost from the totals.
  const sum = (f: (c: ChainEntry) => number, xs: ChainEntry[]): number => xs.reduce((n, c) => n + f(c), 0);
  assert.equal(runs[0]!.storedBytes, sum((c) => c.storedBytes, chain.slice(1, 50)));
  assert.equal(runs[1]!.plaintextBytes, sum((c) => c.plaintextBytes, chain.slice(51, 190)));
  assert.equal(runs[1]!.objects, 139);
});

test('short chains and --all print every link; a run of one is not summed', () => {
  const short = Array.from({ length: 11 }, (_, i) => link(i));
  assert.deepEqual(chainRows(short).map((r) => (r as ChainEntry).to), short.map((c) => c.to));
  const twelve = Array.from({ length: 12 }, (_, i) => link(i));
  assert.equal(chainRows(twelve).filter(isElided).length, 0, 'one link between the full and the newest 10 is printed as it is');
  const long = Array.from({ length: 50 }, (_, i) => link(i));
  assert.equal(chainRows(long, { all: true }).length, 50);
  assert.equal(chainRows(long).length, 12);
});
