/**
 * Which links of a chain `zbk status` prints as rows. A daily push for ten
 * years makes chains of hundreds of incrementals; printing every one buries
 * the line that matters. The full, the newest links and every damaged link
 * are rows; each run of healthy links between them becomes one summary row
 * with their totals. `--json` always carries the whole chain.
 */
import type { ChainEntry } from '../services/status.js';

export interface ElidedLinks {
  elided: true;
  count: number;
  plaintextBytes: number;
  storedBytes: number;
  objects: number;
  /** The first and last snapshot of the run. */
  from: string;
  to: string;
}

export type ChainRow = ChainEntry | ElidedLinks;

/** Links printed at the start of a chain (its full) and at its end (the newest). */
const HEAD = 1;
const TAIL = 10;

/** Rows of `chain`, keeping the full, the 10 newest links and every damaged one; `all` keeps every link. */
export function chainRows(chain: readonly ChainEntry[], opts: { all?: boolean } = {}): ChainRow[] {
  const keep = (c: ChainEntry, i: number): boolean => opts.all === true || i < HEAD || i >= chain.length - TAIL || c.damaged.length > 0;
  const rows: ChainRow[] = [];
  let run: ChainEntry[] = [];
  const flush = (): void => {
    // A run of one is printed as it is: a summary row would be no shorter.
    if (run.length === 1) rows.push(run[0]!);
    else if (run.length > 1) {
      rows.push({
        elided: true,
        count: run.length,
        plaintextBytes: run.reduce((n, c) => n + c.plaintextBytes, 0),
        storedBytes: run.reduce((n, c) => n + c.storedBytes, 0),
        objects: run.reduce((n, c) => n + c.objects, 0),
        from: run[0]!.to,
        to: run[run.length - 1]!.to,
      });
    }
    run = [];
  };
  chain.forEach((c, i) => {
    if (keep(c, i)) {
      flush();
      rows.push(c);
    } else run.push(c);
  });
  flush();
  return rows;
}

export function isElided(r: ChainRow): r is ElidedLinks {
  return 'elided' in r;
}
